/**
 * Nothing secret in Temporal (DESIGN.md "Trust model"): every payload this product gives Temporal
 * (workflow inputs with the CSR and its challenge, activity inputs and results, signals, updates,
 * queries) is encrypted before it leaves the process, AES-256-GCM with a data key of this process.
 * The data key is wrapped by a key-encryption key that never leaves the HSM (the data token), and
 * travels wrapped in each payload's metadata with the KEK's label, so any process holding the data
 * token (and the codec server, for operators in the Web UI) can open it, and nobody else.
 *
 * Rotation: a process makes a new data key at start and every `dataKeyLifetimeMs`; a new KEK is a
 * new label (`payload-kek/2`): encoding uses the configured one, decoding whichever a payload names,
 * so histories written under an older KEK keep opening as long as that KEK stays in the token.
 * Payloads that are not encrypted (histories from before the codec) pass through decode unchanged.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import type { Payload, PayloadCodec } from '@temporalio/common';
// CommonJS: Node's ESM loader sees its default export only.
import proto from '@temporalio/proto';
import type { Sealer } from '../hsm/token.js';

export const ENCRYPTED_ENCODING = 'binary/encrypted';
const META = {
  encoding: 'encoding',
  keyId: 'encryption-key-id',
  wrappedKey: 'encryption-wrapped-key',
  kek: 'encryption-kek',
} as const;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const text = (s: string) => new TextEncoder().encode(s);
const read = (bytes: Uint8Array | null | undefined) => (bytes ? new TextDecoder().decode(bytes) : undefined);

export interface PayloadCodecOptions {
  /** The KEK that wraps new data keys (a label in the data token). */
  kekLabel: string;
  /** The KEK of a label, as a sealer in the HSM (AES-GCM inside the token). */
  kek(label: string): Promise<Sealer>;
  /** How long one data key encrypts before the next is made. Default 24 h. */
  dataKeyLifetimeMs?: number;
}

interface DataKey {
  id: string;
  key: Buffer;
  wrapped: Uint8Array;
  kekLabel: string;
  madeAt: number;
}

export class HsmPayloadCodec implements PayloadCodec {
  private current: Promise<DataKey> | undefined;
  /** Opened data keys by id: one HSM operation per data key, not per payload. */
  private readonly opened = new Map<string, Promise<Buffer>>();

  constructor(private readonly opts: PayloadCodecOptions) {}

  async encode(payloads: Payload[]): Promise<Payload[]> {
    if (payloads.length === 0) return payloads;
    const dek = await this.dataKey();
    return payloads.map((payload) => {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', dek.key, iv);
      cipher.setAAD(Buffer.from(dek.id));
      const plain = proto.temporal.api.common.v1.Payload.encode(payload).finish();
      const sealed = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
      return {
        metadata: {
          [META.encoding]: text(ENCRYPTED_ENCODING),
          [META.keyId]: text(dek.id),
          [META.kek]: text(dek.kekLabel),
          [META.wrappedKey]: dek.wrapped,
        },
        data: new Uint8Array(sealed),
      };
    });
  }

  async decode(payloads: Payload[]): Promise<Payload[]> {
    return Promise.all(
      payloads.map(async (payload) => {
        const metadata = payload.metadata ?? {};
        if (read(metadata[META.encoding]) !== ENCRYPTED_ENCODING) return payload;
        const id = read(metadata[META.keyId]);
        const kekLabel = read(metadata[META.kek]);
        const wrapped = metadata[META.wrappedKey];
        if (!id || !kekLabel || !wrapped || !payload.data)
          throw new Error('encrypted payload without its key id, KEK label, wrapped key or data');
        const key = await this.openDataKey(id, kekLabel, wrapped);
        const data = Buffer.from(payload.data);
        if (data.length < IV_BYTES + TAG_BYTES) throw new Error('encrypted payload too short');
        const decipher = createDecipheriv('aes-256-gcm', key, data.subarray(0, IV_BYTES));
        decipher.setAAD(Buffer.from(id));
        decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
        const plain = Buffer.concat([
          decipher.update(data.subarray(IV_BYTES, data.length - TAG_BYTES)),
          decipher.final(),
        ]);
        return proto.temporal.api.common.v1.Payload.decode(plain) as Payload;
      }),
    );
  }

  /** The data key new payloads are encrypted with: made (and wrapped in the HSM) when due. */
  private async dataKey(): Promise<DataKey> {
    const lifetime = this.opts.dataKeyLifetimeMs ?? 24 * 3600_000;
    const current = await this.current;
    if (current && Date.now() - current.madeAt < lifetime) return current;
    this.current = this.makeDataKey();
    this.current.catch(() => {
      this.current = undefined;
    });
    return this.current;
  }

  private async makeDataKey(): Promise<DataKey> {
    const key = randomBytes(32);
    const kekLabel = this.opts.kekLabel;
    const wrapped = await (await this.opts.kek(kekLabel)).seal(key, wrapAad(kekLabel));
    const id = createHash('sha256').update(wrapped).digest('hex').slice(0, 32);
    this.opened.set(id, Promise.resolve(key));
    return { id, key, wrapped, kekLabel, madeAt: Date.now() };
  }

  private openDataKey(id: string, kekLabel: string, wrapped: Uint8Array): Promise<Buffer> {
    // The id is the digest of the wrapped key: a payload cannot name one key and carry another.
    if (createHash('sha256').update(wrapped).digest('hex').slice(0, 32) !== id)
      return Promise.reject(new Error(`payload key ${id} does not match the wrapped key it carries`));
    let opened = this.opened.get(id);
    if (!opened) {
      opened = this.opts
        .kek(kekLabel)
        .then((kek) => kek.open(wrapped, wrapAad(kekLabel)))
        .then((key) => Buffer.from(key));
      opened.catch(() => this.opened.delete(id));
      this.opened.set(id, opened);
    }
    return opened;
  }
}

/** Binds a wrapped data key to its purpose and KEK: it cannot be passed off as a field-encryption blob. */
const wrapAad = (kekLabel: string) => text(`device-pki payload data key|${kekLabel}`);
