/**
 * SCEP codec against messages captured from real clients (test/fixtures/scep, see its README), with
 * the fixture RA key imported into a fresh SoftHSM token. Responses are judged by the openssl command
 * line, an implementation independent of pkijs.
 *
 * Run with NODE_OPTIONS=--openssl-legacy-provider (scepclient encrypts with single DES).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureSoftHsmToken } from '../../hsm/softhsm.js';
import { HsmToken } from '../../hsm/token.js';
import type { KeyTransportDecrypter, Signer } from '../../pki/keys.js';
import { CAPABILITIES, capabilitiesText } from '../../pki/scep/capabilities.js';
import { decodeGetMessageParam, decodePkiMessage } from '../../pki/scep/decode.js';
import { encodeCertRep, encodeCertsOnly } from '../../pki/scep/encode.js';
import { CMS, DIGEST, SCEP_ATTR } from '../../pki/scep/oids.js';
import type { ScepDecodeResult, ScepRequest } from '../../pki/scep/types.js';

const FIXTURES = join(import.meta.dirname, '..', 'fixtures', 'scep');
const fixture = (name: string): Buffer => readFileSync(join(FIXTURES, name));
const fixturePath = (name: string): string => join(FIXTURES, name);
const pemToDer = (pem: string): Uint8Array =>
  Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');

const RA_DER = fixture('ra.der');
const CA_DER = fixture('ca.der');

let work: string;
let token: HsmToken;
let hsmDecrypter: KeyTransportDecrypter;
let hsmSigner: Signer;
let decryptCalls = 0;

/** Counts HSM decryptions, to show the key transport really went through the token. */
const countingDecrypter: KeyTransportDecrypter = {
  decrypt: (encryptedKey) => {
    decryptCalls += 1;
    return hsmDecrypter.decrypt(encryptedKey);
  },
};
const raKeys = (certificates: Uint8Array[] = [RA_DER]) => ({ certificates, decrypter: countingDecrypter });

function openssl(args: string[], input?: Uint8Array): Buffer {
  return execFileSync('openssl', args, { input, stdio: ['pipe', 'pipe', 'pipe'] });
}

function tmpFile(name: string, data: Uint8Array | string): string {
  const path = join(work, name);
  writeFileSync(path, data);
  return path;
}

function expectOk(result: ScepDecodeResult): ScepRequest {
  if (!result.ok) throw new Error(`decode failed: ${JSON.stringify(result.error)}`);
  return result.request;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'scep-codec-'));
  const config = await ensureSoftHsmToken({
    dir: join(work, 'hsm'),
    label: 'scep-codec',
    pin: '1234',
    soPin: '5678',
  });
  execFileSync(
    'softhsm2-util',
    [
      '--import',
      fixturePath('ra.pk8'),
      '--token',
      'scep-codec',
      '--label',
      'ra',
      '--id',
      '01',
      '--pin',
      '1234',
    ],
    { stdio: 'ignore' },
  );
  token = await HsmToken.open(config);
  hsmDecrypter = await token.decrypter('ra');
  hsmSigner = await token.signer('ra');
});

afterAll(async () => {
  await token?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('decodePkiMessage on captured client messages', () => {
  it('micromdm scepclient PKCSReq: SHA-1, DES-CBC, base64 transactionID', async () => {
    decryptCalls = 0;
    const req = expectOk(await decodePkiMessage(fixture('scepclient-pkcsreq.der'), raKeys([RA_DER, CA_DER])));
    expect(req.messageType).toBe('PKCSReq');
    expect(req.transactionId).toMatch(/^[A-Za-z0-9+/]+=*$/);
    expect(req.senderNonce).toHaveLength(16);
    expect(req.digest).toBe('SHA-1');
    expect(req.contentCipher).toBe('des-cbc');
    expect(Buffer.from(req.signerCertificate)).toEqual(
      Buffer.from(pemToDer(fixture('scepclient-signer.pem').toString())),
    );
    expect(decryptCalls).toBe(1);
    if (req.messageType !== 'PKCSReq') throw new Error('unreachable');
    expectCsr(req.csr);
  });

  it('certmonger PKCSReq: SHA-256 with rsaEncryption, AES-256-CBC, decimal transactionID', async () => {
    decryptCalls = 0;
    const req = expectOk(await decodePkiMessage(fixture('certmonger-pkcsreq.der'), raKeys()));
    expect(req.messageType).toBe('PKCSReq');
    expect(req.transactionId).toMatch(/^\d{20,}$/);
    expect(req.senderNonce).toHaveLength(16);
    expect(req.digest).toBe('SHA-256');
    expect(req.contentCipher).toBe('aes-256-cbc');
    expect(decryptCalls).toBe(1);
    if (req.messageType !== 'PKCSReq') throw new Error('unreachable');
    expectCsr(req.csr);
  });

  it('certmonger GetCertInitial (CertPoll): same transaction, IssuerAndSubject', async () => {
    const enroll = expectOk(await decodePkiMessage(fixture('certmonger-pkcsreq.der'), raKeys()));
    const poll = expectOk(await decodePkiMessage(fixture('certmonger-certpoll.der'), raKeys()));
    expect(poll.messageType).toBe('CertPoll');
    expect(poll.transactionId).toBe(enroll.transactionId);
    // certmonger generates both messages at once and reuses the senderNonce: nonce-based replay
    // checks must not reject its polls.
    expect(Buffer.from(poll.senderNonce)).toEqual(Buffer.from(enroll.senderNonce));
    if (poll.messageType !== 'CertPoll') throw new Error('unreachable');
    const subject = pkijs.RelativeDistinguishedNames.fromBER(poll.subject);
    expect(subject.typesAndValues.map((tv) => [tv.type, tv.value.valueBlock.value])).toEqual([
      ['2.5.4.3', 'laptop-001'],
    ]);
    const issuer = pkijs.RelativeDistinguishedNames.fromBER(poll.issuer);
    expect(issuer.typesAndValues.map((tv) => tv.value.valueBlock.value)).toContain('SCEP Fixture CA');
  });

  function expectCsr(csr: Uint8Array): void {
    const text = openssl(['req', '-inform', 'DER', '-verify', '-noout', '-text'], csr).toString();
    expect(text).toMatch(/Subject:.*CN ?= ?laptop-001/);
    expect(text).toMatch(/challengePassword\s*:\s*secret/);
  }
});

describe('decodePkiMessage failures', () => {
  it.each([
    ['empty body', new Uint8Array()],
    ['truncated body', fixture('certmonger-pkcsreq.der').subarray(0, 700)],
    ['random bytes', randomBytes(600)],
    ['a DER SEQUENCE that is no ContentInfo', new Uint8Array([0x30, 0x03, 0x02, 0x01, 0x05])],
    ['a certs-only SignedData (no signer)', encodeCertsOnly([RA_DER])],
  ])('%s -> http-400', async (_name, body) => {
    const result = await decodePkiMessage(body, raKeys());
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error.reply).toBe('http-400');
  });

  it('a flipped signature byte -> certrep-failure badMessageCheck, with the transaction readable', async () => {
    const body = Buffer.from(fixture('certmonger-pkcsreq.der'));
    const signed = new pkijs.SignedData({ schema: pkijs.ContentInfo.fromBER(body).content });
    const signature = Buffer.from(signed.signerInfos[0]!.signature.valueBlock.valueHexView);
    const at = body.indexOf(signature);
    expect(at).toBeGreaterThan(0);
    body[at + 10]! ^= 0x01;
    const result = await decodePkiMessage(body, raKeys());
    expect(result.ok).toBe(false);
    if (result.ok || result.error.reply !== 'certrep-failure') throw new Error('expected certrep-failure');
    expect(result.error.failInfo).toBe('badMessageCheck');
    expect(result.error.transactionId).toMatch(/^\d+$/);
    expect(result.error.senderNonce).toHaveLength(16);
  });

  it('an envelope not encrypted to our RA certificate -> badMessageCheck', async () => {
    const stranger = pemToDer(fixture('certmonger-signer.pem').toString());
    const result = await decodePkiMessage(fixture('certmonger-pkcsreq.der'), raKeys([stranger]));
    expect(!result.ok && result.error.reply === 'certrep-failure' && result.error.failInfo).toBe(
      'badMessageCheck',
    );
  });

  it('the recipient for another certificate, decrypted with the RA key -> badMessageCheck', async () => {
    // scepclient encrypts to every GetCACert certificate; claiming the CA's recipient must fail cleanly.
    const result = await decodePkiMessage(fixture('scepclient-pkcsreq.der'), raKeys([CA_DER]));
    expect(!result.ok && result.error.reply === 'certrep-failure' && result.error.failInfo).toBe(
      'badMessageCheck',
    );
  });

  it('a decrypter that throws -> badMessageCheck, never a throw', async () => {
    const failing = {
      certificates: [RA_DER],
      decrypter: { decrypt: () => Promise.reject(new Error('CKR_DEVICE_ERROR')) },
    };
    const result = await decodePkiMessage(fixture('certmonger-pkcsreq.der'), failing);
    expect(!result.ok && result.error.reply === 'certrep-failure' && result.error.failInfo).toBe(
      'badMessageCheck',
    );
  });
});

describe('single DES without the legacy provider', () => {
  it('answers badAlg with a hint instead of throwing', () => {
    // A child Node without --openssl-legacy-provider; key transport by the openssl command line there.
    const script = tmpFile(
      'no-legacy.mts',
      `import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { decodePkiMessage } from ${JSON.stringify(join(import.meta.dirname, '..', '..', 'pki', 'scep', 'decode.ts'))};
const key = ${JSON.stringify(fixturePath('ra.pk8'))};
const decrypter = { decrypt: async (k: Uint8Array) => execFileSync('openssl', ['pkeyutl', '-decrypt', '-inkey', key, '-pkeyopt', 'rsa_padding_mode:pkcs1'], { input: k }) };
const result = await decodePkiMessage(readFileSync(${JSON.stringify(fixturePath('scepclient-pkcsreq.der'))}), { certificates: [readFileSync(${JSON.stringify(fixturePath('ra.der'))})], decrypter });
console.log(JSON.stringify(result.ok ? { ok: true } : { reply: result.error.reply, failInfo: 'failInfo' in result.error ? result.error.failInfo : undefined, message: result.error.message }));
`,
    );
    const env = { ...process.env, NODE_OPTIONS: '' };
    const tsx = join(import.meta.dirname, '..', '..', 'node_modules', '.bin', 'tsx');
    const out = JSON.parse(execFileSync(tsx, [script], { env, encoding: 'utf8' }).trim().split('\n').pop()!);
    expect(out).toMatchObject({ reply: 'certrep-failure', failInfo: 'badAlg' });
    expect(out.message).toContain('--openssl-legacy-provider');
  });
});

describe('decodeGetMessageParam', () => {
  const der = Buffer.from(fixture('certmonger-pkcsreq.der'));
  const b64 = der.toString('base64');
  it('accepts standard, URL-safe, +-as-space and wrapped base64', () => {
    expect(b64).toContain('+');
    for (const text of [
      b64,
      der.toString('base64url'),
      b64.replace(/\+/g, ' '),
      b64.replace(/.{64}/g, '$&\r\n'),
    ]) {
      expect(Buffer.from(decodeGetMessageParam(text) ?? [])).toEqual(der);
    }
  });
  it('rejects what is not base64', () => {
    expect(decodeGetMessageParam('')).toBeUndefined();
    expect(decodeGetMessageParam('abc!def')).toBeUndefined();
    expect(decodeGetMessageParam('abcde')).toBeUndefined();
  });
});

describe('capabilities', () => {
  it('lists one capability per line, GetNextCACert on request', () => {
    expect(capabilitiesText().trim().split('\n')).toEqual([...CAPABILITIES]);
    expect(capabilitiesText({ nextCa: true }).trim().split('\n')).toContain('GetNextCACert');
  });
});

describe('encode', () => {
  it('encodeCertsOnly: a degenerate SignedData openssl reads, certificates in order', () => {
    const text = openssl(
      ['pkcs7', '-inform', 'DER', '-print_certs', '-noout'],
      encodeCertsOnly([RA_DER, CA_DER]),
    );
    expect(text.toString()).toMatch(/subject=O ?= ?Fixture, CN ?= ?SCEP Fixture RA[\s\S]*SCEP Fixture CA/);
  });

  /** Issues a dummy device certificate for the request's CSR with the fixture CA (openssl). */
  function issue(csr: Uint8Array, serial: string): Uint8Array {
    const csrFile = tmpFile(`csr-${serial}.der`, csr);
    return openssl([
      'x509',
      '-req',
      '-inform',
      'DER',
      '-in',
      csrFile,
      '-CA',
      fixturePath('ca.pem'),
      '-CAkey',
      fixturePath('ca.key.pem'),
      '-set_serial',
      serial,
      '-days',
      '1',
      '-outform',
      'DER',
    ]);
  }

  /** openssl cms -verify with the RA certificate; returns the signed content. */
  function opensslVerify(rep: Uint8Array, name: string): Buffer {
    const file = tmpFile(`${name}.der`, rep);
    const out = join(work, `${name}.content`);
    openssl([
      'cms',
      '-verify',
      '-noverify',
      '-inform',
      'DER',
      '-in',
      file,
      '-certfile',
      fixturePath('ra.pem'),
      '-binary',
      '-out',
      out,
    ]);
    return readFileSync(out);
  }

  function signedAttributes(rep: Uint8Array): { der: Buffer[]; get: (oid: string) => asn1js.AsnType } {
    const signed = new pkijs.SignedData({ schema: pkijs.ContentInfo.fromBER(rep).content });
    expect(signed.signerInfos).toHaveLength(1);
    const attrs = signed.signerInfos[0]!.signedAttrs!.attributes;
    return {
      der: attrs.map((a) => Buffer.from(a.toSchema().toBER())),
      get: (oid) => {
        const found = attrs.filter((a) => a.type === oid);
        expect(found, oid).toHaveLength(1);
        return found[0]!.values[0] as asn1js.AsnType;
      },
    };
  }
  const text = (value: asn1js.AsnType) => (value as asn1js.PrintableString).valueBlock.value;
  const bytes = (value: asn1js.AsnType) => Buffer.from((value as asn1js.OctetString).valueBlock.valueHexView);

  it.each([
    ['certmonger', 'certmonger-pkcsreq.der', 'aes-256-cbc', []],
    ['scepclient', 'scepclient-pkcsreq.der', 'des-cbc', ['-provider', 'default', '-provider', 'legacy']],
  ] as const)(
    'CertRep SUCCESS for %s: openssl verifies with the RA cert and decrypts as the client',
    async (client, msg, cipher, providers) => {
      const req = expectOk(await decodePkiMessage(fixture(msg), raKeys([RA_DER, CA_DER])));
      if (req.messageType !== 'PKCSReq') throw new Error('unreachable');
      expect(req.contentCipher).toBe(cipher);
      const issued = issue(req.csr, '0x4242');
      const rep = await encodeCertRep(
        {
          status: 'SUCCESS',
          transactionId: req.transactionId,
          recipientNonce: req.senderNonce,
          digest: req.digest,
          content: { kind: 'certificates', certificates: [issued] },
          recipientCertificate: req.signerCertificate,
          contentCipher: req.contentCipher,
        },
        { certificate: RA_DER, signer: hsmSigner },
      );

      const envelope = opensslVerify(rep, `${client}-success`);
      const attrs = signedAttributes(rep);
      const sorted = [...attrs.der].sort(Buffer.compare);
      expect(attrs.der).toEqual(sorted);
      expect(text(attrs.get(SCEP_ATTR.messageType))).toBe('3');
      expect(text(attrs.get(SCEP_ATTR.pkiStatus))).toBe('0');
      expect(text(attrs.get(SCEP_ATTR.transactionID))).toBe(req.transactionId);
      expect(bytes(attrs.get(SCEP_ATTR.recipientNonce))).toEqual(Buffer.from(req.senderNonce));
      expect(bytes(attrs.get(SCEP_ATTR.senderNonce))).toHaveLength(16);
      expect((attrs.get(CMS.contentType) as asn1js.ObjectIdentifier).valueBlock.toString()).toBe(CMS.data);
      attrs.get(CMS.signingTime);
      attrs.get(CMS.messageDigest);

      // The device's view: decrypt the pkcsPKIEnvelope with its own key.
      const signer = `${client}-signer.pem`;
      const certsOnly = openssl([
        'cms',
        '-decrypt',
        ...providers,
        '-inform',
        'DER',
        '-recip',
        fixturePath(signer),
        '-inkey',
        fixturePath(`${client}-key.pem`),
        '-binary',
        '-in',
        tmpFile(`${client}-envelope.der`, envelope),
      ]);
      const certs = openssl(['pkcs7', '-inform', 'DER', '-print_certs'], certsOnly).toString();
      const pems = certs.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
      expect(pems.map((p) => Buffer.from(pemToDer(p)))).toEqual([Buffer.from(issued)]);
    },
  );

  it('CertRep FAILURE badRequest: pkiStatus 2, failInfo 2, nonces, SHA-256 for a SHA-1 request', async () => {
    const req = expectOk(await decodePkiMessage(fixture('scepclient-pkcsreq.der'), raKeys([RA_DER, CA_DER])));
    expect(req.digest).toBe('SHA-1');
    const rep = await encodeCertRep(
      {
        status: 'FAILURE',
        failInfo: 'badRequest',
        transactionId: req.transactionId,
        recipientNonce: req.senderNonce,
        digest: req.digest,
      },
      { certificate: RA_DER, signer: hsmSigner },
    );
    expect(opensslVerify(rep, 'failure')).toHaveLength(0);
    const attrs = signedAttributes(rep);
    expect(attrs.der).toEqual([...attrs.der].sort(Buffer.compare));
    expect(text(attrs.get(SCEP_ATTR.messageType))).toBe('3');
    expect(text(attrs.get(SCEP_ATTR.pkiStatus))).toBe('2');
    expect(text(attrs.get(SCEP_ATTR.failInfo))).toBe('2');
    expect(text(attrs.get(SCEP_ATTR.transactionID))).toBe(req.transactionId);
    expect(bytes(attrs.get(SCEP_ATTR.recipientNonce))).toEqual(Buffer.from(req.senderNonce));
    const signed = new pkijs.SignedData({ schema: pkijs.ContentInfo.fromBER(rep).content });
    expect(signed.signerInfos[0]!.digestAlgorithm.algorithmId).toBe(DIGEST.sha256);
  });

  it('CertRep PENDING: pkiStatus 3, no failInfo', async () => {
    const rep = await encodeCertRep(
      {
        status: 'PENDING',
        transactionId: 'tx-1',
        recipientNonce: new Uint8Array(16).fill(7),
        digest: 'SHA-512',
      },
      { certificate: RA_DER, signer: hsmSigner },
    );
    opensslVerify(rep, 'pending');
    const attrs = signedAttributes(rep);
    expect(text(attrs.get(SCEP_ATTR.pkiStatus))).toBe('3');
    const signed = new pkijs.SignedData({ schema: pkijs.ContentInfo.fromBER(rep).content });
    expect(signed.signerInfos[0]!.signedAttrs!.attributes.some((a) => a.type === SCEP_ATTR.failInfo)).toBe(
      false,
    );
    expect(signed.signerInfos[0]!.digestAlgorithm.algorithmId).toBe(DIGEST.sha512);
  });
});
