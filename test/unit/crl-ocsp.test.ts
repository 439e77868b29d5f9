import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as pkijs from 'pkijs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PkiConfig, pkiConfigSchema } from '../../config/profile-types.js';
import { ensurePkiHierarchy, loadProfileChain } from '../../hsm/provision.js';
import type { HsmToken } from '../../hsm/token.js';
import type { TokenSet } from '../../hsm/token-set.js';
import type { HashName, Signer } from '../../pki/keys.js';
import { buildOcspResponse, certIdNamesIssuer, ocspError, parseOcspRequest } from '../../pki/ocsp.js';
import { toPem } from '../../pki/pem.js';
import { buildCertificate, certificateInfo, rawSubject } from '../../pki/x509/certificate.js';
import { buildCrl, crlInfo } from '../../pki/x509/crl.js';
import { encodeName } from '../../pki/x509/name.js';
import { openThrowawayToken } from '../support/throwaway-token.js';

/** Through the schema, so every default a profile has today is filled in. */
const profile = (name: string, keyAlgorithm: string) => ({
  name,
  mdm: { type: 'static-challenge', challenge: 'secret' },
  ca: {
    type: 'local-hsm',
    keyLabel: `issuing-ca/${name}`,
    keyAlgorithm,
    subject: [
      ['CN', `Issuing CA ${name}`],
      ['O', 'Revocation Tests'],
    ],
  },
  template: {
    validitySeconds: 86400,
    keyUsages: ['digitalSignature'],
    extendedKeyUsages: ['1.3.6.1.5.5.7.3.2'],
    minRsaBits: 2048,
    allowedCurves: ['P-256', 'P-384'],
    requesterChosenCommonName: true,
  },
  enrollmentWaitMs: 10_000,
});

const config: PkiConfig = pkiConfigSchema.parse({
  rootCa: {
    keyLabel: 'root-ca',
    keyAlgorithm: 'rsa-2048',
    subject: [
      ['CN', 'Revocation Test Root'],
      ['O', 'Revocation Tests'],
    ],
    validityDays: 30,
  },
  ra: { keyLabel: 'scep-ra', keyAlgorithm: 'rsa-2048', subject: [['CN', 'Revocation Test RA']] },
  profiles: [profile('rsa', 'rsa-2048'), profile('ec', 'ec-p256')],
});

let dir: string;
let token: HsmToken;
let tokens: TokenSet;
let closeToken: () => Promise<void>;

beforeAll(async () => {
  ({ dir, token, tokens, close: closeToken } = await openThrowawayToken('crl-ocsp-test'));
  await ensurePkiHierarchy(tokens, config);
});

afterAll(async () => {
  await closeToken?.();
});

let fileCounter = 0;
function file(name: string, content: string | Uint8Array): string {
  const path = join(dir, `${++fileCounter}-${name}`);
  writeFileSync(path, content);
  return path;
}

/** OpenSSL's output and exit code (it reports failures on stderr with a non-zero code). */
function openssl(args: string[]): { code: number; output: string } {
  const run = spawnSync('openssl', args, { encoding: 'utf8' });
  return { code: run.status ?? -1, output: `${run.stdout}${run.stderr}` };
}

/** A software signer: pure code tested without the HSM. */
function softwareCa(): { signer: Signer; spki: Uint8Array } {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const nodeHash: Record<HashName, string> = {
    'SHA-1': 'sha1',
    'SHA-256': 'sha256',
    'SHA-384': 'sha384',
    'SHA-512': 'sha512',
  };
  return {
    signer: {
      keyAlgorithm: 'rsa-2048',
      sign: async (data, hash) => new Uint8Array(sign(nodeHash[hash], data, privateKey)),
    },
    spki: new Uint8Array(publicKey.export({ format: 'der', type: 'spki' })),
  };
}

function leafSpki(): Uint8Array {
  const { publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return new Uint8Array(publicKey.export({ format: 'der', type: 'spki' }));
}

async function issueLeaf(issuer: Uint8Array, signer: Signer, cn: string): Promise<Uint8Array> {
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x01;
  return buildCertificate({
    serialNumber: serial,
    subject: encodeName([['CN', cn]]),
    subjectPublicKeyInfo: leafSpki(),
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 86_400_000),
    issuer: { kind: 'ca', certificate: issuer, signer },
    extensions: {
      keyUsages: ['digitalSignature'],
      crlDistributionPoints: ['http://pki.example/crl/rsa.crl'],
      authorityInfoAccessOcsp: ['http://pki.example/ocsp'],
    },
  });
}

describe('buildCrl (pure, software key)', () => {
  it('builds a v2 CRL that OpenSSL verifies, with the issuer name, AKI, number and reasons', async () => {
    const ca = softwareCa();
    const caCert = await buildCertificate({
      serialNumber: Uint8Array.of(1),
      subject: encodeName([
        ['CN', 'Software CA'],
        ['O', 'Tests'],
      ]),
      subjectPublicKeyInfo: ca.spki,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 86_400_000),
      issuer: { kind: 'self', signer: ca.signer },
      extensions: { ca: {}, keyUsages: ['keyCertSign', 'cRLSign'] },
    });
    const thisUpdate = new Date();
    const crl = await buildCrl({
      issuerCertificate: caCert,
      signer: ca.signer,
      crlNumber: 7,
      thisUpdate,
      nextUpdate: new Date(thisUpdate.getTime() + 86_400_000),
      entries: [
        { serialHex: '8a01', revokedAt: new Date(thisUpdate.getTime() - 1000), reason: 'keyCompromise' },
        { serialHex: '0102', revokedAt: new Date(thisUpdate.getTime() - 2000), reason: 'unspecified' },
      ],
    });
    const ok = openssl([
      'crl',
      '-inform',
      'DER',
      '-in',
      file('soft.crl', crl),
      '-CAfile',
      file('soft-ca.pem', toPem(caCert)),
      '-noout',
      '-text',
    ]);
    expect(ok.code, ok.output).toBe(0);
    expect(ok.output).toMatch(/verify OK/);
    expect(ok.output).toMatch(/Version 2/);
    expect(ok.output).toMatch(/X509v3 CRL Number:\s*\n\s*7/);
    expect(ok.output).toMatch(/Serial Number: 8A01[\s\S]*Key Compromise/);
    // unspecified: no reasonCode entry extension (RFC 5280 5.3.1)
    expect(ok.output).not.toMatch(/Unspecified/);
    const parsed = pkijs.CertificateRevocationList.fromBER(crl);
    expect(Buffer.from(parsed.issuer.toSchema().toBER())).toEqual(Buffer.from(rawSubject(caCert)));
    expect(crlInfo(crl)).toMatchObject({ crlNumber: 7, serials: ['8a01', '0102'] });
  });

  it('leaves revokedCertificates out of an empty CRL and refuses a signer of another key', async () => {
    const ca = softwareCa();
    const caCert = await buildCertificate({
      serialNumber: Uint8Array.of(2),
      subject: encodeName([['CN', 'Empty CA']]),
      subjectPublicKeyInfo: ca.spki,
      notBefore: new Date(Date.now() - 60_000),
      notAfter: new Date(Date.now() + 86_400_000),
      issuer: { kind: 'self', signer: ca.signer },
      extensions: { ca: {}, keyUsages: ['keyCertSign', 'cRLSign'] },
    });
    const now = new Date();
    const params = {
      issuerCertificate: caCert,
      crlNumber: 1,
      thisUpdate: now,
      nextUpdate: new Date(now.getTime() + 3600_000),
      entries: [],
    };
    const crl = await buildCrl({ ...params, signer: ca.signer });
    const text = openssl([
      'crl',
      '-inform',
      'DER',
      '-in',
      file('empty.crl', crl),
      '-CAfile',
      file('empty-ca.pem', toPem(caCert)),
      '-noout',
      '-text',
    ]);
    expect(text.code, text.output).toBe(0);
    expect(text.output).toMatch(/No Revoked Certificates/);
    await expect(buildCrl({ ...params, signer: softwareCa().signer })).rejects.toThrow(/does not verify/);
  });
});

describe('CRL and OCSP signed in the HSM', () => {
  for (const name of ['rsa', 'ec'] as const) {
    it(`${name}: CRL with two revoked entries verifies and lists reasons; openssl verify -crl_check rejects them`, async () => {
      const chain = await loadProfileChain(token, config, name);
      const signer = await token.signer(`issuing-ca/${name}`);
      const [revoked1, revoked2, fine] = await Promise.all(
        ['r1', 'r2', 'ok'].map((cn) => issueLeaf(chain.issuing, signer, `${name}-${cn}`)),
      );
      const now = new Date();
      const crl = await buildCrl({
        issuerCertificate: chain.issuing,
        signer,
        crlNumber: 42,
        thisUpdate: now,
        nextUpdate: new Date(now.getTime() + 86_400_000),
        entries: [
          { serialHex: certificateInfo(revoked1!).serialHex, revokedAt: now, reason: 'keyCompromise' },
          { serialHex: certificateInfo(revoked2!).serialHex, revokedAt: now, reason: 'superseded' },
        ],
      });
      const chainFile = file(`${name}-chain.pem`, toPem(chain.issuing) + toPem(chain.root));
      const crlFile = file(`${name}.crl`, crl);
      const check = openssl([
        'crl',
        '-inform',
        'DER',
        '-in',
        crlFile,
        '-CAfile',
        chainFile,
        '-noout',
        '-text',
      ]);
      expect(check.code, check.output).toBe(0);
      expect(check.output).toMatch(/verify OK/);
      expect(check.output).toMatch(/Key Compromise/);
      expect(check.output).toMatch(/Superseded/);
      expect(check.output).toMatch(/X509v3 Authority Key Identifier/);

      const crlPem = file(`${name}-crl.pem`, toPem(crl, 'X509 CRL'));
      const verify = (leaf: Uint8Array) =>
        openssl([
          'verify',
          '-crl_check',
          '-CRLfile',
          crlPem,
          '-CAfile',
          chainFile,
          file('leaf.pem', toPem(leaf)),
        ]);
      const rejected = verify(revoked1!);
      expect(rejected.code).not.toBe(0);
      expect(rejected.output).toMatch(/certificate revoked/);
      expect(verify(fine!).output).toMatch(/: OK/);
    });
  }

  it('parses an OpenSSL OCSP request, and OpenSSL accepts the answer: good, revoked, unknown', async () => {
    const chain = await loadProfileChain(token, config, 'rsa');
    const signer = await token.signer('issuing-ca/rsa');
    const [good, revoked, unknown] = await Promise.all(
      ['good', 'revoked', 'unknown'].map((cn) => issueLeaf(chain.issuing, signer, `ocsp-${cn}`)),
    );
    const files = {
      issuer: file('issuer.pem', toPem(chain.issuing)),
      chain: file('chain.pem', toPem(chain.issuing) + toPem(chain.root)),
      good: file('good.pem', toPem(good!)),
      revoked: file('revoked.pem', toPem(revoked!)),
      unknown: file('unknown.pem', toPem(unknown!)),
      req: join(dir, 'ocsp-req.der'),
    };
    const certArgs = ['-cert', files.good, '-cert', files.revoked, '-cert', files.unknown];
    const made = openssl(['ocsp', '-issuer', files.issuer, ...certArgs, '-reqout', files.req]);
    expect(made.code, made.output).toBe(0);

    const parsed = parseOcspRequest(new Uint8Array(readFileSync(files.req)));
    if (!parsed.ok) throw new Error(parsed.message);
    expect(parsed.requests.map((r) => r.serialHex)).toEqual(
      [good, revoked, unknown].map((c) => certificateInfo(c!).serialHex),
    );
    expect(parsed.requests.every((r) => r.hash === 'SHA-1' && certIdNamesIssuer(r, chain.issuing))).toBe(
      true,
    );
    expect(
      certIdNamesIssuer(parsed.requests[0]!, (await loadProfileChain(token, config, 'ec')).issuing),
    ).toBe(false);
    expect(parsed.nonce).toBeDefined();

    const now = new Date();
    const revokedAt = new Date(now.getTime() - 3600_000);
    const statuses = [
      'good',
      { revoked: { at: revokedAt, reason: 'keyCompromise' as const } },
      'unknown',
    ] as const;
    const response = await buildOcspResponse({
      responderCertificate: chain.issuing,
      signer,
      producedAt: now,
      responses: parsed.requests.map((r, i) => ({
        certId: r.certId,
        status: statuses[i]!,
        thisUpdate: now,
        nextUpdate: new Date(now.getTime() + 3600_000),
      })),
      nonce: parsed.nonce,
    });
    const respFile = file('ocsp-resp.der', response);
    // With the original request: signature, chain and the echoed nonce.
    const nonceChecked = openssl(['ocsp', '-respin', respFile, '-reqin', files.req, '-CAfile', files.chain]);
    expect(nonceChecked.code, nonceChecked.output).toBe(0);
    expect(nonceChecked.output).toMatch(/Response verify OK/);
    expect(nonceChecked.output).not.toMatch(/nonce/i);
    // With the certificates named (openssl then builds a request of its own: no nonce to compare).
    const checked = openssl([
      'ocsp',
      '-respin',
      respFile,
      '-no_nonce',
      '-issuer',
      files.issuer,
      ...certArgs,
      '-CAfile',
      files.chain,
    ]);
    expect(checked.code, checked.output).toBe(0);
    expect(checked.output).toMatch(/Response verify OK/);
    expect(checked.output).toMatch(new RegExp(`${files.good}: good`));
    expect(checked.output).toMatch(new RegExp(`${files.revoked}: revoked[\\s\\S]*Reason: keyCompromise`));
    expect(checked.output).toMatch(new RegExp(`${files.unknown}: unknown`));
  });

  it('answers garbage with malformedRequest, never throwing', () => {
    for (const junk of [
      new Uint8Array(),
      Uint8Array.of(0x30, 0x03, 0x02, 0x01),
      new Uint8Array(randomBytes(200)),
      Uint8Array.of(0x30, 0x00),
    ]) {
      const parsed = parseOcspRequest(junk);
      expect(parsed.ok).toBe(false);
    }
    const text = openssl([
      'ocsp',
      '-respin',
      file('malformed.der', ocspError('malformedRequest')),
      '-resp_text',
      '-noverify',
    ]);
    expect(text.output).toMatch(/malformedrequest \(1\)/);
    const internal = openssl([
      'ocsp',
      '-respin',
      file('internal.der', ocspError('internalError')),
      '-resp_text',
      '-noverify',
    ]);
    expect(internal.output).toMatch(/internalerror \(2\)/);
  });
});
