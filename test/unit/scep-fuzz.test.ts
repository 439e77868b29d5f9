/**
 * Property-based robustness of the SCEP decoder: mutated real client messages (test/fixtures/scep) go
 * to decodePkiMessage, with the fixture RA key in a SoftHSM token, and to decodeGetMessageParam.
 * Whatever the input, the decoder resolves to a well-formed ScepDecodeResult, never throws, never
 * hangs, and whatever it resolves to can be answered (a CertRep FAILURE can be encoded and signed).
 *
 * Three layers are fuzzed:
 * 1. the raw message bytes (bit flips, truncation, insertion, deletion, splices between clients,
 *    DER-ish prefixes, huge or indefinite length fields, structure-aware TLV swaps);
 * 2. the pkcsPKIEnvelope and the signed attributes, RE-SIGNED with the client's key, so mutations get
 *    past the signature check into envelope parsing, HSM key transport, decryption and inner parsing;
 * 3. the GET `message=` text.
 *
 * fast-check seeds are random per run; a failure prints the seed and the shrunk counterexample.
 */
import { createHash, createPrivateKey, sign, X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeGetMessageParam, decodePkiMessage } from '../../pki/scep/decode.js';
import { encodeCertRep } from '../../pki/scep/encode.js';
import type { ScepDecodeResult } from '../../pki/scep/types.js';
import {
  type FixtureRaToken,
  openFixtureRaToken,
  scepFixture,
  scepFixturePath,
} from '../support/fixture-ra-token.js';
import {
  assembleSignedData,
  buildPkiMessage,
  der,
  issuerAndSerial,
  makeDevice,
  OPENSSL_CIPHERS,
  openssl,
} from '../support/openssl-scep.js';

const RA_DER = new Uint8Array(scepFixture('ra.der'));
const CA_DER = new Uint8Array(scepFixture('ca.der'));
/** A decode of one input must finish within this (a valid one takes a few ms). */
const CASE_TIMEOUT_MS = 3_000;

let ra: FixtureRaToken;
let decryptCalls = 0;
const raKeys = () => ({
  certificates: [RA_DER, CA_DER],
  decrypter: {
    decrypt: (key: Uint8Array) => {
      decryptCalls++;
      return ra.decrypter.decrypt(key);
    },
  },
});

interface Client {
  name: string;
  der: Uint8Array;
  key: ReturnType<typeof createPrivateKey>;
  certDer: Uint8Array;
}
const clients: Client[] = [];
/** Valid envelopes for the RA: the clients' own, and openssl-made ones for every cipher and content. */
const envelopes: Uint8Array[] = [];
const outcomes = { ok: 0, http400: 0, certrepFailure: 0, decrypts: 0 };
const unanticipated = new Set<string>();
let trailingCsrEnvelope = 0;

beforeAll(async () => {
  ra = await openFixtureRaToken('scep-fuzz');
  const load = (name: string, msg: string, key: string) => ({
    name,
    der: new Uint8Array(scepFixture(msg)),
    key: createPrivateKey(scepFixture(key)),
    certDer: new Uint8Array(new X509Certificate(scepFixture(`${name}-signer.pem`)).raw),
  });
  clients.push(
    load('certmonger', 'certmonger-pkcsreq.der', 'certmonger-key.pem'),
    load('scepclient', 'scepclient-pkcsreq.der', 'scepclient-key.pem'),
    { ...load('certmonger', 'certmonger-certpoll.der', 'certmonger-key.pem'), name: 'certmonger-poll' },
  );
  for (const c of clients) envelopes.push(eContentOf(c.der));

  const device = await makeDevice(ra.dir, 'fuzz-device', 'secret');
  const { issuer, serial } = issuerAndSerial(CA_DER);
  const contents = [
    device.csrDer,
    der.seq(issuer, subjectOf(device.certDer)),
    der.seq(issuer, serial),
    Uint8Array.of(0x02, 0x01, 0x05),
    Uint8Array.of(0x30, 0x00),
    Uint8Array.of(0xff),
    // A CSR with trailing bytes after its DER.
    cat(device.csrDer, Uint8Array.of(0x00, 0x00)),
  ];
  trailingCsrEnvelope = envelopes.length + contents.length - 1;
  for (const [i, content] of contents.entries()) {
    const cipher = OPENSSL_CIPHERS[i % OPENSSL_CIPHERS.length]!;
    const built = await buildPkiMessage({
      dir: ra.dir,
      recipients: [scepFixturePath('ra.pem')],
      signer: device,
      cipher,
      digest: 'sha256',
      messageType: 19,
      transactionId: `seed-${i}`,
      content,
    });
    envelopes.push(built.envelope);
  }
  // The remaining ciphers with a CSR, so every cipher is a starting point.
  for (const cipher of OPENSSL_CIPHERS.slice(1)) {
    const file = `${ra.dir}/csr-${cipher}.der`;
    writeFileSync(file, device.csrDer);
    envelopes.push(
      new Uint8Array(
        await openssl([
          'cms',
          '-encrypt',
          '-binary',
          '-outform',
          'DER',
          `-${cipher}`,
          '-in',
          file,
          scepFixturePath('ra.pem'),
        ]),
      ),
    );
  }
});

afterAll(async () => {
  await ra?.close();
  console.log(`[scep-fuzz] outcomes ${JSON.stringify({ ...outcomes, decrypts: decryptCalls })}`);
  console.log(`[scep-fuzz] unanticipated exceptions: ${JSON.stringify([...unanticipated], null, 1)}`);
});

// ---------------------------------------------------------------------------------------------------
// The property every input must satisfy

async function decodeChecked(body: Uint8Array): Promise<ScepDecodeResult> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([
    decodePkiMessage(body, raKeys()),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`decode hung > ${CASE_TIMEOUT_MS} ms`)), CASE_TIMEOUT_MS);
    }),
  ]).finally(() => clearTimeout(timer));
  // A synchronous stall would beat the timer: measure as well.
  expect(performance.now() - started).toBeLessThan(CASE_TIMEOUT_MS);
  expectWellFormed(result);
  await expectAnswerable(result);
  return result;
}

const MESSAGE_TYPES = ['PKCSReq', 'RenewalReq', 'CertPoll', 'GetCert', 'GetCRL'];
const CIPHERS = ['des-cbc', 'des-ede3-cbc', 'aes-128-cbc', 'aes-192-cbc', 'aes-256-cbc'];
const DIGESTS = ['SHA-1', 'SHA-256', 'SHA-384', 'SHA-512'];
const FAIL_INFOS = ['badAlg', 'badMessageCheck', 'badRequest', 'badTime', 'badCertId'];

function expectWellFormed(result: ScepDecodeResult): void {
  expect(typeof result).toBe('object');
  if (result.ok) {
    outcomes.ok++;
    const r = result.request;
    expect(MESSAGE_TYPES).toContain(r.messageType);
    expect(typeof r.transactionId).toBe('string');
    expect(r.transactionId.length).toBeGreaterThan(0);
    expect(r.senderNonce).toBeInstanceOf(Uint8Array);
    expect(r.senderNonce.length).toBeGreaterThan(0);
    expect(r.signerCertificate).toBeInstanceOf(Uint8Array);
    expect(DIGESTS).toContain(r.digest);
    expect(CIPHERS).toContain(r.contentCipher);
    switch (r.messageType) {
      case 'PKCSReq':
      case 'RenewalReq':
        expect(isWholeDerSequence(r.csr)).toBe(true);
        break;
      case 'CertPoll':
        expect(isWholeDerSequence(r.issuer) && isWholeDerSequence(r.subject)).toBe(true);
        break;
      case 'GetCert':
      case 'GetCRL':
        expect(isWholeDerSequence(r.issuerAndSerial.issuer)).toBe(true);
        expect(r.issuerAndSerial.serialNumber).toBeInstanceOf(Uint8Array);
        break;
    }
    return;
  }
  const e = result.error;
  expect(typeof e.message).toBe('string');
  if (e.reply === 'http-400') {
    outcomes.http400++;
    // An exception the decoder did not anticipate, caught by its last-resort catch: every failure
    // should have its own typed reason (and after the signature check, a signed FAILURE).
    if (e.message.startsWith('malformed pkiMessage:')) unanticipated.add(e.message.slice(0, 120));
    expect(e.message).not.toMatch(/^malformed pkiMessage:/);
    return;
  }
  outcomes.certrepFailure++;
  expect(e.reply).toBe('certrep-failure');
  expect(FAIL_INFOS).toContain(e.failInfo);
  expect(typeof e.transactionId).toBe('string');
  expect(e.transactionId.length).toBeGreaterThan(0);
  expect(e.senderNonce.length).toBeGreaterThan(0);
  expect(DIGESTS).toContain(e.digest);
}

/** What the API would send back must be buildable: a FAILURE CertRep for a certrep-failure. */
async function expectAnswerable(result: ScepDecodeResult): Promise<void> {
  if (result.ok || result.error.reply !== 'certrep-failure') return;
  const e = result.error;
  const rep = await encodeCertRep(
    {
      status: 'FAILURE',
      failInfo: e.failInfo,
      transactionId: e.transactionId,
      recipientNonce: e.senderNonce,
      digest: e.digest,
    },
    { certificate: RA_DER, signer: ra.signer },
  );
  expect(rep.length).toBeGreaterThan(0);
}

function isWholeDerSequence(bytes: Uint8Array): boolean {
  const tlv = der.read(bytes);
  return !!tlv && tlv.tag === 0x30 && tlv.bytes.length === bytes.length;
}

// ---------------------------------------------------------------------------------------------------
// Mutations

type Mutation = (input: Uint8Array) => Uint8Array;

const pick = <T>(items: readonly T[], n: number): T => items[n % items.length]!;
const cat = (...parts: Uint8Array[]) => new Uint8Array(Buffer.concat(parts));

/** Length encodings that lie: huge, long-form with too many octets, indefinite, reserved. */
const HUGE_LENGTHS = [
  [0x84, 0xff, 0xff, 0xff, 0xff],
  [0x84, 0x7f, 0xff, 0xff, 0xff],
  [0x88, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
  [0x89, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
  [0x80],
  [0xff],
  [0x83, 0x01, 0x00, 0x00],
].map((b) => Uint8Array.from(b));

const bitFlips = fc
  .array(fc.record({ at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }), { minLength: 1, maxLength: 8 })
  .map(
    (flips): Mutation =>
      (input) => {
        const out = new Uint8Array(input);
        for (const f of flips) out[f.at % out.length]! ^= 1 << f.bit;
        return out;
      },
  );
const truncation = fc.nat().map(
  (n): Mutation =>
    (input) =>
      input.subarray(0, n % input.length),
);
const insertion = fc.record({ at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }).map(
  ({ at, bytes }): Mutation =>
    (input) => {
      const i = at % (input.length + 1);
      return cat(input.subarray(0, i), bytes, input.subarray(i));
    },
);
const deletion = fc.record({ at: fc.nat(), length: fc.integer({ min: 1, max: 256 }) }).map(
  ({ at, length }): Mutation =>
    (input) => {
      const i = at % input.length;
      return cat(input.subarray(0, i), input.subarray(i + length));
    },
);
/** The head of one client's message on the tail of another's (or of a different part of itself). */
const splice = fc.record({ other: fc.nat(), cutA: fc.nat(), cutB: fc.nat() }).map(
  ({ other, cutA, cutB }): Mutation =>
    (input) => {
      const donor = pick(clients, other).der;
      return cat(input.subarray(0, cutA % input.length), donor.subarray(cutB % donor.length));
    },
);
/** A DER-looking header (SEQUENCE, SET, [0], OCTET STRING...) with a plausible or lying length. */
const derPrefix = fc
  .record({
    tags: fc.array(fc.constantFrom(0x30, 0x31, 0xa0, 0x04, 0x24, 0x02, 0x06, 0x80, 0x1f, 0x00), {
      minLength: 1,
      maxLength: 6,
    }),
    lengths: fc.array(fc.nat(), { minLength: 6, maxLength: 6 }),
    replace: fc.boolean(),
  })
  .map(
    ({ tags, lengths, replace }): Mutation =>
      (input) => {
        const header = tags.flatMap((tag, i) => {
          const n = lengths[i]!;
          const length =
            n % 3 === 0
              ? [...pick(HUGE_LENGTHS, n)]
              : [...der.length((n % 3 === 1 ? input.length : n) % 70000)];
          return [tag, ...length];
        });
        // Either wraps the message, or overwrites its own header.
        return cat(Uint8Array.from(header), replace ? input.subarray(4) : input);
      },
  );
/** The length of one real TLV (anywhere in the tree) replaced by a huge/indefinite/bogus one. */
const hugeLength = fc.record({ which: fc.nat(), length: fc.nat() }).map(
  ({ which, length }): Mutation =>
    (input) => {
      const tlvs = der.walk(input);
      if (tlvs.length === 0) return input;
      const t = pick(tlvs, which);
      return cat(
        input.subarray(0, t.start + 1),
        pick(HUGE_LENGTHS, length),
        input.subarray(t.start + t.headerLength),
      );
    },
);

interface Node {
  tag: number;
  children?: Node[];
  value: Uint8Array;
}
function parseTree(bytes: Uint8Array): Node[] | undefined {
  const nodes: Node[] = [];
  for (let at = 0; at < bytes.length; ) {
    const t = der.read(bytes, at);
    if (!t) return undefined;
    const children = t.tag & 0x20 ? parseTree(t.value) : undefined;
    nodes.push({ tag: t.tag, value: t.value, ...(children ? { children } : {}) });
    at += t.bytes.length;
  }
  return nodes;
}
const serialize = (nodes: Node[]): Uint8Array =>
  cat(...nodes.map((n) => der.tlv(n.tag, n.children ? serialize(n.children) : n.value)));
const flatten = (nodes: Node[], out: Node[] = []): Node[] => {
  for (const n of nodes) {
    out.push(n);
    if (n.children) flatten(n.children, out);
  }
  return out;
};

/**
 * Structure-aware: one TLV's content (anywhere in the tree) replaced by another TLV's from the same
 * or another message, dropped, duplicated, re-tagged or emptied, with every enclosing length fixed up,
 * so the result is well-formed DER that reaches deeper into the CMS/pkijs schema checks.
 */
const treeEdit = fc
  .record({
    target: fc.nat(),
    donor: fc.nat(),
    donorNode: fc.nat(),
    op: fc.constantFrom('swap', 'drop', 'duplicate', 'retag', 'empty', 'random'),
    tag: fc.constantFrom(0x30, 0x31, 0x04, 0x02, 0x06, 0x13, 0x0c, 0x05, 0xa0, 0xa1, 0x80, 0x17),
    bytes: fc.uint8Array({ maxLength: 40 }),
  })
  .map(
    ({ target, donor, donorNode, op, tag, bytes }): Mutation =>
      (input) => {
        const tree = parseTree(input);
        if (!tree) return input;
        const all = flatten(tree);
        const node = pick(all, target);
        // A tree of no nodes (e.g. the input was cut to nothing): nothing to mutate.
        if (!node) return input;
        switch (op) {
          case 'swap': {
            const donorTree = parseTree(pick([...clients.map((c) => c.der), ...envelopes], donor)) ?? [];
            const other = pick(flatten(donorTree), donorNode);
            if (other) Object.assign(node, { tag: other.tag, value: other.value, children: other.children });
            break;
          }
          case 'drop':
          case 'duplicate': {
            const parent = all.find((n) => n.children?.includes(node));
            if (parent?.children) {
              const i = parent.children.indexOf(node);
              parent.children.splice(i, op === 'drop' ? 1 : 0, ...(op === 'drop' ? [] : [node]));
            }
            break;
          }
          case 'retag':
            node.tag = tag;
            if (!(tag & 0x20)) node.children = undefined;
            break;
          case 'empty':
            node.children = node.children ? [] : undefined;
            node.value = new Uint8Array();
            break;
          case 'random':
            node.children = undefined;
            node.value = bytes;
            break;
        }
        return serialize(tree);
      },
  );

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  bitFlips,
  truncation,
  insertion,
  deletion,
  splice,
  derPrefix,
  hugeLength,
  treeEdit,
);
const mutations = fc.array(mutation, { minLength: 1, maxLength: 3 });
const applyAll = (input: Uint8Array, ms: Mutation[]) => ms.reduce((acc, m) => m(acc), input);

// ---------------------------------------------------------------------------------------------------
// Re-signing: mutations past the signature

function eContentOf(message: Uint8Array): Uint8Array {
  const signedData = der.children(der.children(message)[1]!.bytes)[0]!;
  const encap = der.children(signedData.bytes)[2]!;
  const explicit = der.children(encap.bytes)[1]!;
  const octets = der.children(explicit.bytes)[0]!;
  // Go clients send a constructed OCTET STRING: concatenate its pieces.
  return octets.tag === 0x24
    ? cat(...der.children(octets.bytes).map((c) => c.value))
    : new Uint8Array(octets.value);
}

function subjectOf(certDer: Uint8Array): Uint8Array {
  const fields = der.children(der.children(certDer)[0]!.bytes);
  return fields[(fields[0]?.tag === 0xa0 ? 1 : 0) + 4]!.bytes;
}

const OIDS = {
  contentType: '1.2.840.113549.1.9.3',
  messageDigest: '1.2.840.113549.1.9.4',
  messageType: '2.16.840.1.113733.1.9.2',
  senderNonce: '2.16.840.1.113733.1.9.5',
  transactionID: '2.16.840.1.113733.1.9.7',
  data: '1.2.840.113549.1.7.1',
};
const attribute = (oid: string, ...values: Uint8Array[]) => der.seq(der.oid(oid), der.tlv(0x31, ...values));

interface SignedParts {
  client: number;
  envelope: number;
  envelopeMutations: Mutation[];
  messageType: Uint8Array;
  transactionId: Uint8Array;
  senderNonce: Uint8Array;
  digest: 'sha1' | 'sha256' | 'sha512';
  attributeEdits: Mutation[];
  dropAttribute: number | undefined;
}

const DIGEST_OIDS = {
  sha1: '1.3.14.3.2.26',
  sha256: '2.16.840.1.101.3.4.2.1',
  sha512: '2.16.840.1.101.3.4.2.3',
};
const printable = (text: string) => der.tlv(0x13, new Uint8Array(Buffer.from(text, 'latin1')));

/** Mostly valid choices, so that most cases get past the attribute checks into the envelope. */
const mostly = <T>(valid: fc.Arbitrary<T>, ...odd: fc.Arbitrary<T>[]) =>
  fc.oneof(
    { arbitrary: valid, weight: 3 * odd.length },
    ...odd.map((arbitrary) => ({ arbitrary, weight: 1 })),
  );

const signedParts: fc.Arbitrary<SignedParts> = fc.record({
  client: fc.nat(),
  envelope: fc.nat(),
  envelopeMutations: mostly(fc.constant([]), fc.array(mutation, { minLength: 1, maxLength: 2 })),
  messageType: mostly(
    fc.constantFrom('19', '17', '20', '21', '22').map(printable),
    fc.constantFrom('3', '0', '019', ' 19', '1e1', '').map(printable),
    fc.string({ maxLength: 4 }).map((s) => der.tlv(0x0c, new Uint8Array(Buffer.from(s)))),
    fc.uint8Array({ maxLength: 6 }).map((b) => der.tlv(0x04, b)),
  ),
  transactionId: mostly(
    fc.constantFrom('1234567890123456789012', 'dGVzdA==', 'a'.repeat(200), 'tx-1').map(printable),
    fc.constantFrom('tx 1', '', 'x'.repeat(5000)).map(printable),
    fc.string({ unit: 'binary', maxLength: 40 }).map((s) => der.tlv(0x0c, new Uint8Array(Buffer.from(s)))),
    fc.uint8Array({ maxLength: 40 }).map((b) => der.tlv(0x13, b)),
  ),
  senderNonce: mostly(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.uint8Array({ maxLength: 40 })),
  digest: fc.constantFrom('sha1', 'sha256', 'sha512'),
  attributeEdits: mostly(fc.constant([]), fc.array(treeEdit, { minLength: 1, maxLength: 1 })),
  dropAttribute: mostly(fc.constant(undefined), fc.nat({ max: 4 })),
});

/** A correctly signed SignedData around a (possibly mutated) envelope with (possibly odd) attributes. */
function resign(p: SignedParts): Uint8Array {
  const client = pick(clients, p.client);
  const envelope = applyAll(pick(envelopes, p.envelope), p.envelopeMutations);
  const attrs = [
    attribute(OIDS.contentType, der.oid(OIDS.data)),
    attribute(OIDS.messageDigest, der.tlv(0x04, createHash(p.digest).update(envelope).digest())),
    attribute(OIDS.messageType, p.messageType),
    attribute(OIDS.transactionID, p.transactionId),
    attribute(OIDS.senderNonce, der.tlv(0x04, p.senderNonce)),
  ];
  if (p.dropAttribute !== undefined) attrs.splice(p.dropAttribute, 1);
  const set = applyAll(der.tlv(0x31, ...attrs), p.attributeEdits);
  if (set[0] !== 0x31) return set; // an edit re-tagged the SET itself: not signable as such
  return assembleSignedData({
    digestOid: DIGEST_OIDS[p.digest],
    signatureOid: '1.2.840.113549.1.1.1',
    eContent: envelope,
    certificates: [client.certDer],
    signerCertificate: client.certDer,
    signedAttrsSet: set,
    signature: new Uint8Array(sign(p.digest, set, client.key)),
  });
}

// ---------------------------------------------------------------------------------------------------

describe('decodePkiMessage on mutated client messages', () => {
  it('the unmutated fixtures and seeds decode (the starting points are valid)', async () => {
    for (const c of clients) expect((await decodeChecked(c.der)).ok).toBe(true);
  });

  it('raw byte mutations: always a typed result, never a throw or a hang (1000 runs)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.nat(), mutations, async (which, ms) => {
        await decodeChecked(applyAll(pick(clients, which).der, ms));
      }),
      { numRuns: 1000 },
    );
  });

  it('re-signed envelope and attribute mutations reach decryption: typed result, never a throw (600 runs)', async () => {
    const before = decryptCalls;
    await fc.assert(
      fc.asyncProperty(signedParts, async (parts) => {
        const result = await decodeChecked(resign(parts));
        // A valid signature over a known messageType and a readable nonce is never an HTTP 400
        // for the envelope's sake: the device learns why with a signed FAILURE.
        if (!result.ok && result.error.reply === 'http-400') {
          expect(result.error.message).not.toMatch(/envelope|decrypt|cipher|IV/i);
        }
      }),
      { numRuns: 600 },
    );
    // The property really exercised the HSM key transport.
    expect(decryptCalls - before).toBeGreaterThan(100);
  });
});

/** What the device is answered: ok, a signed FAILURE's failInfo, or a plain HTTP 400. */
const answerTo = (result: ScepDecodeResult) =>
  result.ok ? 'ok' : result.error.reply === 'certrep-failure' ? result.error.failInfo : 'http-400';

describe('regressions found by this fuzzer (signed by the client, so each deserves a signed FAILURE)', () => {
  const base: SignedParts = {
    client: 0,
    envelope: 0,
    envelopeMutations: [],
    messageType: printable('19'),
    transactionId: printable('regression-1'),
    senderNonce: new Uint8Array(16).fill(9),
    digest: 'sha256',
    attributeEdits: [],
    dropAttribute: undefined,
  };
  const failInfoOf = async (parts: SignedParts) => answerTo(await decodeChecked(resign(parts)));

  it('an envelope asn1js throws on (GeneralizedTime that is no time): badMessageCheck, was HTTP 400', async () => {
    const bogusTime: Mutation = () => Uint8Array.of(0x18, 0x02, 0x41, 0x41);
    expect(await failInfoOf({ ...base, envelopeMutations: [bogusTime] })).toBe('badMessageCheck');
  });

  it('a messageType attribute with an empty SET of values: badRequest, was HTTP 400 (TypeError)', async () => {
    // Replace the messageType attribute by SEQUENCE { OID, SET {} } after the SET is built, then sign.
    const withoutValues: Mutation = (set) => {
      const attrs = der.children(set).map((a) => a.bytes);
      const i = attrs.findIndex((a) => Buffer.from(a).includes(Buffer.from(der.oid(OIDS.messageType))));
      attrs[i] = der.seq(der.oid(OIDS.messageType), der.tlv(0x31));
      return der.tlv(0x31, ...attrs);
    };
    expect(await failInfoOf({ ...base, attributeEdits: [withoutValues] })).toBe('badRequest');
  });

  it('a CSR followed by trailing bytes in the envelope: badRequest, was accepted with the bytes', async () => {
    expect(await failInfoOf({ ...base, envelope: trailingCsrEnvelope })).toBe('badRequest');
    expect(await failInfoOf({ ...base, envelope: trailingCsrEnvelope - 6 })).toBe('ok');
  });
});

describe('regressions found by this fuzzer in raw messages', () => {
  it('an eContent that is a NULL, not an OCTET STRING: badMessageCheck, was HTTP 400 (TypeError)', async () => {
    // CI seed -1283965262 retagged certmonger's eContent; asn1js's OctetString.getValue read a NULL.
    // certmonger's eContent is a primitive OCTET STRING, the first in its SignedData.
    const tree = parseTree(clients[0]!.der)!;
    const eContent = flatten(tree).find((n) => n.tag === 0x04)!;
    Object.assign(eContent, { tag: 0x05, value: new Uint8Array(), children: undefined });
    expect(answerTo(await decodeChecked(serialize(tree)))).toBe('badMessageCheck');
  });
});

describe('decodeGetMessageParam on mutated base64', () => {
  const alphabets = (b: Buffer) => [
    b.toString('base64'),
    b.toString('base64url'),
    b.toString('base64').replace(/\+/g, ' '),
    b.toString('base64').replace(/.{76}/g, '$&\r\n'),
  ];

  it('text edits of real GET params: undefined or bytes, and decodable bytes decode safely (300 runs)', async () => {
    const texts = clients.flatMap((c) => alphabets(Buffer.from(c.der)));
    const edit = fc.oneof(
      fc.record({ at: fc.nat(), s: fc.string({ maxLength: 8 }) }).map(
        ({ at, s }) =>
          (t: string) =>
            t.slice(0, at % (t.length + 1)) + s + t.slice(at % (t.length + 1)),
      ),
      fc.nat().map((n) => (t: string) => t.slice(0, n % (t.length + 1))),
      fc.record({ at: fc.nat(), n: fc.integer({ min: 1, max: 20 }) }).map(
        ({ at, n }) =>
          (t: string) =>
            t.slice(0, at % (t.length + 1)) + t.slice((at % (t.length + 1)) + n),
      ),
      fc
        .constantFrom('=', '==', '===', '%2B', '\u0000', '\u00e9', '\ud83d\ude00', ' ', '\n')
        .map((s) => (t: string) => t + s),
    );
    await fc.assert(
      fc.asyncProperty(fc.nat(), fc.array(edit, { minLength: 1, maxLength: 3 }), async (which, edits) => {
        const text = edits.reduce((t, e) => e(t), pick(texts, which));
        const bytes = decodeGetMessageParam(text);
        if (bytes === undefined) return;
        expect(bytes).toBeInstanceOf(Uint8Array);
        // What the GET path hands on is then decoded like a POST body.
        await decodeChecked(bytes);
      }),
      { numRuns: 300 },
    );
  });

  it('arbitrary strings (and huge ones) never throw (300 runs)', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'binary', maxLength: 200 }),
          fc.string({ unit: fc.constantFrom(...'AZaz09+/-_= \r\n%'.split('')), maxLength: 400 }),
          fc.nat({ max: 2_000_000 }).map((n) => 'A'.repeat(n) + '='.repeat(n % 7)),
        ),
        (text) => {
          const bytes = decodeGetMessageParam(text);
          expect(bytes === undefined || bytes instanceof Uint8Array).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });

  it('every alphabet of every fixture round-trips', () => {
    for (const c of clients)
      for (const text of alphabets(Buffer.from(c.der)))
        expect(Buffer.from(decodeGetMessageParam(text) ?? [])).toEqual(Buffer.from(c.der));
  });
});
