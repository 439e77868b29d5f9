/**
 * The product's only door to PKCS#11. Everything that touches a private or secret key goes through
 * here, and no key material ever leaves the token.
 */

import { createHash, randomBytes } from 'node:crypto';
import * as graphene from 'graphene-pk11';
import type { HashName, KeyAlgorithm, KeyTransportDecrypter, Signer } from '../pki/keys.js';
import { timedHsmOperation } from '../runtime/metrics/process.js';
import {
  type CurveAlgorithm,
  certificateFields,
  curveOf,
  ecdsaSigValue,
  ecSpki,
  namedCurveParams,
  rsaSpki,
} from './der.js';
import { closeQuietly, SessionPool } from './session-pool.js';
import { whileSoftHsmLocked } from './softhsm-lock.js';

export interface HsmConfig {
  library: string;
  tokenLabel: string;
  pin: string;
  /** Sessions opened for concurrent operations (default 4). */
  poolSize?: number;
}

/**
 * What a key is for, and so what it may do (key custody: a key can do only its job).
 * - `signing`: root and issuing CA keys, OCSP responder keys: sign only.
 * - `ra`: the SCEP RA key: decrypts devices' envelopes (RSA key transport) and signs CertReps.
 * - `device`: a key that stands for a device in benchmarks and tests: signs and decrypts like one.
 * No key may wrap, unwrap or derive; every private key is sensitive and never extractable.
 */
export type KeyRole = 'signing' | 'ra' | 'device';
const KEY_USAGE: Record<KeyRole, { sign: boolean; decrypt: boolean }> = {
  signing: { sign: true, decrypt: false },
  ra: { sign: true, decrypt: true },
  device: { sign: true, decrypt: true },
};

export class HsmKeyNotFoundError extends Error {
  constructor(
    readonly tokenLabel: string,
    readonly keyLabel: string,
    kind: string,
  ) {
    super(`HSM token "${tokenLabel}" has no ${kind} labelled "${keyLabel}"`);
    this.name = 'HsmKeyNotFoundError';
  }
}

/**
 * The token could not be found or logged in to just now, for a reason that may pass: the library
 * lists no token with this label, or could not read a slot, or took the token for one without a user
 * PIN. Either the token is not there, or (SoftHSM) another process was rewriting the token's file
 * at that moment, as SoftHSM does at every login: processes starting together see this.
 */
export class HsmTokenUnavailableError extends Error {
  constructor(
    readonly tokenLabel: string,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'HsmTokenUnavailableError';
  }
}

/** AES-256-GCM inside the HSM. Sealed form: iv (12) || ciphertext || tag (16). */
export interface Sealer {
  seal(plain: Uint8Array, aad: Uint8Array): Promise<Uint8Array>;
  open(sealed: Uint8Array, aad: Uint8Array): Promise<Uint8Array>;
}

const RSA_SIGN_MECHANISMS: Record<HashName, string> = {
  'SHA-1': 'SHA1_RSA_PKCS',
  'SHA-256': 'SHA256_RSA_PKCS',
  'SHA-384': 'SHA384_RSA_PKCS',
  'SHA-512': 'SHA512_RSA_PKCS',
};

const NODE_HASHES: Record<HashName, string> = {
  'SHA-1': 'sha1',
  'SHA-256': 'sha256',
  'SHA-384': 'sha384',
  'SHA-512': 'sha512',
};

const RSA_BITS: Record<number, KeyAlgorithm> = { 2048: 'rsa-2048', 3072: 'rsa-3072', 4096: 'rsa-4096' };
const GCM_IV_BYTES = 12;
const GCM_TAG_BYTES = 16;
const CKF_OS_LOCKING_OK = 2;

interface LoadedModule {
  module: graphene.Module;
  users: number;
  /** Login state is per application and slot, not per session: count the HsmTokens relying on it. */
  logins: Map<string, number>;
}

/** C_Initialize may run once per process and library; HsmTokens on the same library share it. */
const modules = new Map<string, LoadedModule>();

type KeyInfo = { key: graphene.PrivateKey; keyAlgorithm: KeyAlgorithm };

/** A usage PKCS#11 lets a key have (CKA_SIGN, CKA_DECRYPT, ...), as the token reports it. */
export type KeyUsageFlag = 'sign' | 'decrypt' | 'encrypt' | 'unwrap' | 'derive';
const USAGE_FLAGS: readonly KeyUsageFlag[] = ['sign', 'decrypt', 'encrypt', 'unwrap', 'derive'];

/** One key of a token as the key inventory sees it (activities/keys/): attributes only, no key material. */
export interface TokenKey {
  label: string;
  kind: 'private' | 'secret';
  /** `rsa-2048`, `ec-p256`, ... for key pairs; `aes-256` for secret keys. */
  algorithm: string;
  usages: KeyUsageFlag[];
  extractable: boolean;
  /** CKA_START_DATE / CKA_END_DATE when set (keys this product generates carry their start date). */
  startDate?: Date;
  endDate?: Date;
  /** The certificate stored under the key's label, if any. */
  certificate?: Uint8Array;
}

export class HsmToken {
  private readonly privateKeys = new Map<string, Promise<KeyInfo>>();
  private readonly signatureListeners = new Set<(keyLabel: string) => void>();
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly config: HsmConfig,
    private readonly loaded: LoadedModule,
    private readonly slotId: string,
    private readonly pool: SessionPool,
  ) {}

  static open(config: HsmConfig): Promise<HsmToken> {
    return whileSoftHsmLocked(config.library, async () => {
      const loaded = loadModule(config.library);
      let pool: SessionPool | undefined;
      try {
        const slot = findSlot(loaded.module, config.tokenLabel);
        const slotId = slot.handle.toString('hex');
        pool = new SessionPool(
          () => slot.open(graphene.SessionFlag.SERIAL_SESSION | graphene.SessionFlag.RW_SESSION),
          Math.max(1, config.poolSize ?? 4),
          `HSM token "${config.tokenLabel}"`,
        );
        const logins = loaded.logins.get(slotId) ?? 0;
        if (logins === 0) login(pool.first, config);
        loaded.logins.set(slotId, logins + 1);
        return new HsmToken(config, loaded, slotId, pool);
      } catch (e) {
        if (pool) for (const s of await pool.drain()) closeQuietly(s);
        releaseModule(config.library, loaded);
        throw e;
      }
    });
  }

  get tokenLabel(): string {
    return this.config.tokenLabel;
  }

  async signer(keyLabel: string): Promise<Signer> {
    const { key, keyAlgorithm } = await this.privateKey(keyLabel);
    const rsa = keyAlgorithm.startsWith('rsa-');
    return {
      keyAlgorithm,
      sign: (data, hash) =>
        timedHsmOperation('sign', async () => {
          let signature: Uint8Array;
          try {
            if (rsa)
              signature = await this.pool.use((s) => signOnce(s, RSA_SIGN_MECHANISMS[hash], key, data));
            else {
              // SoftHSM has no CKM_ECDSA_SHA256: hash here, sign the digest in the token.
              const digest = createHash(NODE_HASHES[hash]).update(data).digest();
              signature = ecdsaSigValue(await this.pool.use((s) => signOnce(s, 'ECDSA', key, digest)));
            }
          } catch (e) {
            throw this.failure(`signing (${hash}) with key "${keyLabel}"`, e);
          }
          for (const listener of this.signatureListeners) listener(keyLabel);
          return signature;
        }),
    };
  }

  /**
   * Calls `listener` after each signature this process makes (the key inventory counts them).
   * Synchronous and cheap by contract: it runs on the signing path. Returns the unsubscribe.
   */
  onSignature(listener: (keyLabel: string) => void): () => void {
    this.signatureListeners.add(listener);
    return () => this.signatureListeners.delete(listener);
  }

  /** Every private and secret key of the token, with its usage attributes and certificate. */
  async listKeys(): Promise<TokenKey[]> {
    return this.pool.use((session) => {
      const keys: TokenKey[] = [];
      const certificates = new Map<string, Uint8Array>();
      for (const cert of findObjects(session, { class: graphene.ObjectClass.CERTIFICATE }))
        certificates.set(
          cert.getAttribute('label') as string,
          new Uint8Array(cert.getAttribute('value') as Buffer),
        );
      for (const [kind, cls] of [
        ['private', graphene.ObjectClass.PRIVATE_KEY],
        ['secret', graphene.ObjectClass.SECRET_KEY],
      ] as const) {
        for (const object of findObjects(session, { class: cls })) {
          const label = object.getAttribute('label') as string;
          const usages = USAGE_FLAGS.filter((flag) => optionalAttribute(object, flag) === true);
          // A key pair's dates are read off its public key (see START_DATE).
          const dated =
            kind === 'private'
              ? (findObjects(session, { class: graphene.ObjectClass.PUBLIC_KEY, label })[0] ?? object)
              : object;
          const startDate = dateAttribute(dated, CKA_START_DATE);
          const endDate = dateAttribute(dated, CKA_END_DATE);
          const certificate = certificates.get(label);
          keys.push({
            label,
            kind,
            algorithm:
              kind === 'private'
                ? this.keyAlgorithmOf(object.toType<graphene.PrivateKey>(), label)
                : `aes-${(object.getAttribute('valueLen') as number) * 8}`,
            usages,
            extractable: optionalAttribute(object, 'extractable') === true,
            ...(startDate ? { startDate } : {}),
            ...(endDate ? { endDate } : {}),
            ...(certificate ? { certificate } : {}),
          });
        }
      }
      return keys.sort((a, b) => a.label.localeCompare(b.label));
    });
  }

  async decrypter(keyLabel: string): Promise<KeyTransportDecrypter> {
    const { key, keyAlgorithm } = await this.privateKey(keyLabel);
    if (!keyAlgorithm.startsWith('rsa-')) {
      throw new Error(`HSM token "${this.tokenLabel}": key "${keyLabel}" is ${keyAlgorithm}, not RSA`);
    }
    return {
      decrypt: (encryptedKey) =>
        timedHsmOperation('decrypt', async () => {
          try {
            return await this.pool.use((s) =>
              cryptOnce(s.createDecipher('RSA_PKCS', key), encryptedKey, encryptedKey.length),
            );
          } catch (e) {
            throw this.failure(`RSA PKCS#1 v1.5 decryption with key "${keyLabel}"`, e);
          }
        }),
    };
  }

  async generateKeyPair(keyLabel: string, alg: KeyAlgorithm, role: KeyRole): Promise<{ spki: Uint8Array }> {
    return this.pool.use(async (session) => {
      if (findObjects(session, { class: graphene.ObjectClass.PRIVATE_KEY, label: keyLabel }).length > 0) {
        throw new Error(`HSM token "${this.tokenLabel}" already has a private key labelled "${keyLabel}"`);
      }
      const common = { token: true, label: keyLabel, id: randomBytes(16) };
      const isRsa = alg.startsWith('rsa-');
      const usage = KEY_USAGE[role];
      if (usage.decrypt && !isRsa) throw new Error(`a ${role} key decrypts: it must be RSA, not ${alg}`);
      const publicTemplate: graphene.ITemplate = {
        ...common,
        class: graphene.ObjectClass.PUBLIC_KEY,
        private: false,
        // When the key was made, for the key inventory's age (PKCS#11 keeps no creation time). On the
        // public key only: SoftHSM answers CKR_GENERAL_ERROR when asked a private object's date.
        [START_DATE]: ckDate(new Date()),
        verify: true,
        // Stated for every key type: SoftHSM (like several HSMs) defaults unstated usages to true.
        encrypt: usage.decrypt,
        wrap: false,
        derive: false,
        ...(isRsa
          ? {
              keyType: graphene.KeyType.RSA,
              modulusBits: Number(alg.slice(4)),
              publicExponent: Buffer.from([1, 0, 1]),
            }
          : { keyType: graphene.KeyType.EC, paramsEC: namedCurveParams(alg as CurveAlgorithm) }),
      };
      const privateTemplate: graphene.ITemplate = {
        ...common,
        class: graphene.ObjectClass.PRIVATE_KEY,
        keyType: isRsa ? graphene.KeyType.RSA : graphene.KeyType.EC,
        private: true,
        sensitive: true,
        extractable: false,
        sign: usage.sign,
        decrypt: usage.decrypt,
        unwrap: false,
        derive: false,
      };
      const mechanism = isRsa ? graphene.KeyGenMechanism.RSA : graphene.KeyGenMechanism.EC;
      let pair: graphene.IKeyPair;
      try {
        pair = await new Promise<graphene.IKeyPair>((resolve, reject) =>
          session.generateKeyPair(mechanism, publicTemplate, privateTemplate, (err, kp) =>
            err || !kp ? reject(err ?? new Error('no key pair returned')) : resolve(kp),
          ),
        );
      } catch (e) {
        throw this.failure(`generating ${alg} key pair "${keyLabel}"`, e);
      }
      return { spki: publicKeySpki(pair.publicKey) };
    });
  }

  /**
   * Brings an existing key pair (made by an older version) to its role's usage: a CA key made able
   * to decrypt and unwrap loses both. PKCS#11 lets usage attributes go from TRUE to FALSE. Returns
   * the attributes that were turned off.
   */
  async enforceKeyUsage(keyLabel: string, role: KeyRole): Promise<string[]> {
    const usage = KEY_USAGE[role];
    return this.pool.use((session) => {
      const turnedOff: string[] = [];
      const turnOff = (object: graphene.SessionObject | undefined, wanted: Record<string, boolean>) => {
        if (!object) return;
        for (const [name, allowed] of Object.entries(wanted)) {
          if (allowed) continue;
          let current: unknown;
          try {
            current = object.getAttribute(name);
          } catch {
            continue; // an attribute this token does not keep for the key type
          }
          if (current !== true) continue;
          object.setAttribute({ [name]: false });
          turnedOff.push(name);
        }
      };
      const privateKey = this.findOne(
        session,
        { class: graphene.ObjectClass.PRIVATE_KEY, label: keyLabel },
        'private key',
      );
      if (privateKey)
        turnOff(privateKey, {
          sign: usage.sign,
          decrypt: usage.decrypt,
          unwrap: false,
          derive: false,
        });
      const publicKey = this.findOne(
        session,
        { class: graphene.ObjectClass.PUBLIC_KEY, label: keyLabel },
        'public key',
      );
      if (publicKey) turnOff(publicKey, { encrypt: usage.decrypt, wrap: false });
      return turnedOff;
    });
  }

  /**
   * A retired CA key (NIST SP 800-57 "deactivated"): the private key may no longer sign. PKCS#11
   * never lets CKA_SIGN go back to TRUE, so this is final. Returns whether a key was found.
   */
  async deactivateKey(keyLabel: string): Promise<boolean> {
    this.privateKeys.delete(keyLabel);
    return this.pool.use((session) => {
      const key = this.findOne(
        session,
        { class: graphene.ObjectClass.PRIVATE_KEY, label: keyLabel },
        'private key',
      );
      if (!key) return false;
      if (key.getAttribute('sign') === true) key.setAttribute({ sign: false });
      return true;
    });
  }

  /** Deletes the key pair and the certificate under a label ("destroyed"). Returns how many objects went. */
  async destroyKey(keyLabel: string): Promise<number> {
    this.privateKeys.delete(keyLabel);
    return this.pool.use((session) => {
      let destroyed = 0;
      for (const cls of [
        graphene.ObjectClass.PRIVATE_KEY,
        graphene.ObjectClass.PUBLIC_KEY,
        graphene.ObjectClass.CERTIFICATE,
      ])
        destroyed += session.destroy({ class: cls, label: keyLabel });
      return destroyed;
    });
  }

  async publicKey(keyLabel: string): Promise<Uint8Array | undefined> {
    return this.pool.use((session) => {
      const found = this.findOne(
        session,
        { class: graphene.ObjectClass.PUBLIC_KEY, label: keyLabel },
        'public key',
      );
      return found ? publicKeySpki(found.toType<graphene.PublicKey>()) : undefined;
    });
  }

  async storeCertificate(label: string, der: Uint8Array): Promise<void> {
    const { subject, issuer, serial } = certificateFields(der);
    await this.pool.use((session) => {
      const key = this.findOne(session, { class: graphene.ObjectClass.PRIVATE_KEY, label }, 'private key');
      // Destroy first: two certificates under one label would make certificate() ambiguous.
      session.destroy({ class: graphene.ObjectClass.CERTIFICATE, label });
      session.create({
        class: graphene.ObjectClass.CERTIFICATE,
        certType: graphene.CertificateType.X_509,
        token: true,
        private: false,
        label,
        subject,
        issuer,
        serial,
        value: Buffer.from(der),
        // Sharing CKA_ID with the key lets PKCS#11 tools (pkcs11-tool, p11-kit) pair them.
        ...(key ? { id: key.getAttribute('id') as Buffer } : {}),
      });
    });
  }

  async certificate(label: string): Promise<Uint8Array | undefined> {
    return this.pool.use((session) => {
      const found = this.findOne(session, { class: graphene.ObjectClass.CERTIFICATE, label }, 'certificate');
      return found ? new Uint8Array(found.getAttribute('value') as Buffer) : undefined;
    });
  }

  async generateSecretKey(label: string): Promise<void> {
    await this.pool.use(async (session) => {
      if (findObjects(session, { class: graphene.ObjectClass.SECRET_KEY, label }).length > 0) {
        throw new Error(`HSM token "${this.tokenLabel}" already has a secret key labelled "${label}"`);
      }
      // A data key (field encryption, payload key-encryption): encrypts and decrypts, nothing else.
      const template: graphene.ITemplate = {
        class: graphene.ObjectClass.SECRET_KEY,
        keyType: graphene.KeyType.AES,
        valueLen: 32,
        token: true,
        private: true,
        sensitive: true,
        extractable: false,
        encrypt: true,
        decrypt: true,
        sign: false,
        verify: false,
        wrap: false,
        unwrap: false,
        derive: false,
        label,
        id: randomBytes(16),
      };
      try {
        await new Promise<graphene.SecretKey>((resolve, reject) =>
          session.generateKey(graphene.KeyGenMechanism.AES, template, (err, key) =>
            err || !key ? reject(err ?? new Error('no key returned')) : resolve(key),
          ),
        );
      } catch (e) {
        throw this.failure(`generating AES-256 key "${label}"`, e);
      }
    });
  }

  async sealer(label: string): Promise<Sealer> {
    const key = await this.pool.use((session) => {
      const found = this.findOne(session, { class: graphene.ObjectClass.SECRET_KEY, label }, 'secret key');
      if (!found) throw new HsmKeyNotFoundError(this.tokenLabel, label, 'secret key');
      return found.toType<graphene.SecretKey>();
    });
    const gcm = (iv: Uint8Array, aad: Uint8Array): graphene.IAlgorithm => ({
      name: 'AES_GCM',
      params: new graphene.AesGcmParams(Buffer.from(iv), Buffer.from(aad), GCM_TAG_BYTES * 8),
    });
    return {
      seal: (plain, aad) =>
        timedHsmOperation('seal', async () => {
          const iv = randomBytes(GCM_IV_BYTES);
          try {
            const sealed = await this.pool.use((s) => {
              const cipher = s.createCipher(gcm(iv, aad), key);
              // SoftHSM refuses C_Encrypt on empty input (CKR_ARGUMENTS_BAD); C_EncryptFinal yields the tag.
              if (plain.length === 0) return new Uint8Array(cipher.final());
              return cryptOnce(cipher, plain, plain.length + GCM_TAG_BYTES);
            });
            return Buffer.concat([iv, sealed]);
          } catch (e) {
            throw this.failure(`sealing with key "${label}"`, e);
          }
        }),
      open: (sealed, aad) =>
        timedHsmOperation('open', async () => {
          if (sealed.length < GCM_IV_BYTES + GCM_TAG_BYTES) {
            throw new Error(`sealed data is too short (${sealed.length} bytes) to come from key "${label}"`);
          }
          const iv = sealed.subarray(0, GCM_IV_BYTES);
          const body = sealed.subarray(GCM_IV_BYTES);
          try {
            return await this.pool.use((s) =>
              cryptOnce(s.createDecipher(gcm(iv, aad), key), body, body.length),
            );
          } catch (e) {
            // SoftHSM reports a failed tag check as CKR_GENERAL_ERROR, so the cause cannot be narrower.
            throw this.failure(
              `opening sealed data with key "${label}" (tampered data, wrong AAD or wrong key)`,
              e,
            );
          }
        }),
    };
  }

  /**
   * Readiness: a session of the pool answers C_GetSessionInfo and is still logged in (a token that
   * was removed, or an HSM that restarted and dropped its logins, fails here, not at the next signature).
   */
  async ping(): Promise<void> {
    if (this.closing) throw new Error(`HSM token "${this.config.tokenLabel}" is closing`);
    await this.pool.use((session) => {
      // graphene keeps C_GetSessionInfo protected; it is the call that asks the token, not a cache.
      (session as unknown as { getInfo(): void }).getInfo();
      const state = session.state;
      // CKS_RO_USER_FUNCTIONS (1) and CKS_RW_USER_FUNCTIONS (3): the user is logged in.
      if (state !== 1 && state !== 3)
        throw new Error(`HSM token "${this.config.tokenLabel}": session not logged in (state ${state})`);
    });
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    const sessions = await this.pool.drain();
    await whileSoftHsmLocked(this.config.library, async () => {
      const logins = (this.loaded.logins.get(this.slotId) ?? 1) - 1;
      this.loaded.logins.set(this.slotId, logins);
      try {
        if (logins === 0 && sessions[0]) sessions[0].logout();
      } catch {
        // Already logged out (token removed, or finalize raced): nothing left to protect.
      }
      for (const s of sessions) closeQuietly(s);
      this.privateKeys.clear();
      releaseModule(this.config.library, this.loaded);
    });
  }

  private privateKey(keyLabel: string): Promise<KeyInfo> {
    let info = this.privateKeys.get(keyLabel);
    if (!info) {
      info = this.pool.use((session) => {
        const found = this.findOne(
          session,
          { class: graphene.ObjectClass.PRIVATE_KEY, label: keyLabel },
          'private key',
        );
        if (!found) throw new HsmKeyNotFoundError(this.tokenLabel, keyLabel, 'private key');
        const key = found.toType<graphene.PrivateKey>();
        return { key, keyAlgorithm: this.keyAlgorithmOf(key, keyLabel) };
      });
      this.privateKeys.set(keyLabel, info);
      // Only found keys are cached: a key generated later must be found on the next call.
      info.catch(() => this.privateKeys.delete(keyLabel));
    }
    return info;
  }

  private keyAlgorithmOf(key: graphene.PrivateKey, keyLabel: string): KeyAlgorithm {
    const type = key.getAttribute('keyType') as number;
    if (type === graphene.KeyType.RSA) {
      const bits = (key.getAttribute('modulus') as Buffer).length * 8;
      const alg = RSA_BITS[bits];
      if (alg) return alg;
      throw new Error(`HSM token "${this.tokenLabel}": RSA key "${keyLabel}" has unsupported size ${bits}`);
    }
    if (type === graphene.KeyType.EC) {
      const curve = curveOf(ecParams(key));
      if (curve) return curve;
      throw new Error(`HSM token "${this.tokenLabel}": EC key "${keyLabel}" is on an unsupported curve`);
    }
    throw new Error(`HSM token "${this.tokenLabel}": key "${keyLabel}" has unsupported key type ${type}`);
  }

  private findOne(
    session: graphene.Session,
    template: graphene.ITemplate,
    kind: string,
  ): graphene.SessionObject | undefined {
    const found = findObjects(session, template);
    if (found.length > 1) {
      throw new Error(
        `HSM token "${this.tokenLabel}" has ${found.length} objects of kind ${kind} labelled "${template.label}"`,
      );
    }
    return found[0];
  }

  private failure(what: string, cause: unknown): Error {
    const reason = cause instanceof Error ? cause.message : String(cause);
    return new Error(`HSM token "${this.tokenLabel}": ${what} failed: ${reason}`, { cause });
  }
}

function loadModule(library: string): LoadedModule {
  const existing = modules.get(library);
  if (existing) {
    existing.users++;
    return existing;
  }
  let module: graphene.Module;
  try {
    module = graphene.Module.load(library, 'pkcs11');
    // CKF_OS_LOCKING_OK: without it, async operations on several sessions crashed SoftHSM.
    module.initialize({ flags: CKF_OS_LOCKING_OK });
  } catch (e) {
    throw new Error(`cannot load PKCS#11 library ${library}: ${(e as Error).message}`, { cause: e });
  }
  const loaded: LoadedModule = { module, users: 1, logins: new Map() };
  modules.set(library, loaded);
  return loaded;
}

function releaseModule(library: string, loaded: LoadedModule): void {
  loaded.users--;
  if (loaded.users > 0) return;
  modules.delete(library);
  try {
    loaded.module.finalize();
  } finally {
    loaded.module.close();
  }
}

function findSlot(module: graphene.Module, tokenLabel: string): graphene.Slot {
  const slots = module.getSlots(true);
  const labels: string[] = [];
  const unreadable: string[] = [];
  for (let i = 0; i < slots.length; i++) {
    const slot = slots.items(i);
    let label: string;
    try {
      label = slot.getToken().label.trim();
    } catch (e) {
      // SoftHSM: another process is rewriting this token's file; it may well be the one we want.
      unreadable.push((e as Error).message.split('\n')[0] ?? String(e));
      continue;
    }
    if (label === tokenLabel) return slot;
    labels.push(JSON.stringify(label));
  }
  const present = labels.join(', ') || 'none';
  const others = unreadable.length > 0 ? `; ${unreadable.length} unreadable: ${unreadable.join(', ')}` : '';
  throw new HsmTokenUnavailableError(
    tokenLabel,
    `no PKCS#11 token labelled "${tokenLabel}" (tokens present: ${present}${others})`,
  );
}

function login(session: graphene.Session, config: HsmConfig): void {
  try {
    session.login(config.pin, graphene.UserType.USER);
  } catch (e) {
    const message = (e as Error).message;
    // Another library user in this process logged in already: the login state is shared.
    if (message.includes('CKR_USER_ALREADY_LOGGED_IN')) return;
    const failure = `login to HSM token "${config.tokenLabel}" failed: ${message}`;
    // SoftHSM read the token's file while another process rewrote it: worth another try. A wrong or
    // locked PIN never is (each try would count against the PIN).
    if (/CKR_USER_PIN_NOT_INITIALIZED|CKR_GENERAL_ERROR/.test(message))
      throw new HsmTokenUnavailableError(config.tokenLabel, failure, { cause: e });
    throw new Error(failure, { cause: e });
  }
}

/**
 * CKA_START_DATE / CKA_END_DATE as raw CK_DATE bytes: graphene's own `startDate` passes the Date
 * object itself to pkcs11js (SoftHSM then crashes the process) and reads months off by one in local
 * time (an unset date as 1899), so the product writes a buffer and reads through pkcs11js.
 */
const CKA_START_DATE = 0x110;
const CKA_END_DATE = 0x111;
const START_DATE = 'ckaStartDateRaw';
graphene.registerAttribute(START_DATE, CKA_START_DATE, 'buffer');

/** CK_DATE: "YYYYMMDD" in ASCII, the UTC date. */
function ckDate(date: Date): Buffer {
  return Buffer.from(date.toISOString().slice(0, 10).replaceAll('-', ''), 'ascii');
}

/** An attribute the token may not keep for this object type: undefined rather than an error. */
function optionalAttribute(object: graphene.SessionObject, name: string): unknown {
  try {
    return object.getAttribute(name);
  } catch {
    return undefined;
  }
}

/** CKA_START_DATE / CKA_END_DATE: empty (unset) on keys made elsewhere; undefined then. */
function dateAttribute(object: graphene.SessionObject, type: number): Date | undefined {
  let value: Buffer | undefined;
  try {
    // Straight to pkcs11js: graphene decodes the value under its own (broken) `startDate` name.
    value = object.lib.C_GetAttributeValue(object.session.handle, object.handle, [{ type }])[0]?.value as
      | Buffer
      | undefined;
  } catch {
    return undefined;
  }
  const match = /^(\d{4})(\d{2})(\d{2})$/.exec(value?.toString('ascii') ?? '');
  return match ? new Date(Date.UTC(+match[1]!, +match[2]! - 1, +match[3]!)) : undefined;
}

function findObjects(session: graphene.Session, template: graphene.ITemplate): graphene.SessionObject[] {
  const collection = session.find(template);
  const objects: graphene.SessionObject[] = [];
  for (let i = 0; i < collection.length; i++) objects.push(collection.items(i));
  return objects;
}

function signOnce(session: graphene.Session, mechanism: string, key: graphene.Key, data: Uint8Array) {
  return new Promise<Uint8Array>((resolve, reject) =>
    session
      .createSign(mechanism, key)
      .once(Buffer.from(data), (err, signature) => (err ? reject(err) : resolve(new Uint8Array(signature)))),
  );
}

function cryptOnce(op: graphene.Cipher | graphene.Decipher, input: Uint8Array, outputBytes: number) {
  return new Promise<Uint8Array>((resolve, reject) =>
    op.once(Buffer.from(input), Buffer.alloc(outputBytes), (err, output) =>
      err ? reject(err) : resolve(new Uint8Array(output)),
    ),
  );
}

/**
 * CKA_EC_PARAMS and CKA_ECDSA_PARAMS are the same attribute; graphene maps the number back to the
 * name it registered first, so getAttribute('paramsEC') comes back undefined.
 */
function ecParams(key: graphene.Key): Buffer {
  return key.getAttribute('paramsECDSA') as Buffer;
}

function publicKeySpki(key: graphene.PublicKey): Uint8Array {
  const type = key.getAttribute('keyType') as number;
  if (type === graphene.KeyType.RSA) {
    return rsaSpki(key.getAttribute('modulus') as Buffer, key.getAttribute('publicExponent') as Buffer);
  }
  if (type === graphene.KeyType.EC) {
    const curve = curveOf(ecParams(key));
    if (!curve) throw new Error('EC public key on an unsupported curve');
    return ecSpki(curve, key.getAttribute('pointEC') as Buffer);
  }
  throw new Error(`unsupported public key type ${type}`);
}
