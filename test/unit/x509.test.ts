import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalCaConfig, PkiConfig, Profile } from '../../config/profile-types.js';
import { profileSchema } from '../../config/profile-types.js';
import { ensurePkiHierarchy, issuingCertificateLabel, loadProfileChain } from '../../hsm/provision.js';
import type { HsmToken } from '../../hsm/token.js';
import type { TokenSet } from '../../hsm/token-set.js';
import { toPem } from '../../pki/pem.js';
import { buildCertificate, certificateInfo } from '../../pki/x509/certificate.js';
import { parseCsr } from '../../pki/x509/csr.js';
import { encodeName, nameToText } from '../../pki/x509/name.js';
import { openThrowawayToken } from '../support/throwaway-token.js';

const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

function profile(name: string, keyAlgorithm: LocalCaConfig['keyAlgorithm']): Profile & { ca: LocalCaConfig } {
  // Through the schema, so the operator defaults are filled as for a real profiles file.
  return profileSchema.parse({
    name,
    mdm: { type: 'static-challenge', challenge: 'secret' },
    ca: {
      type: 'local-hsm',
      keyLabel: `issuing-ca/${name}`,
      keyAlgorithm,
      subject: [
        ['CN', `Issuing CA ${name}`],
        ['O', 'Test PKI'],
      ],
    },
    template: {
      validitySeconds: 30 * 86400,
      keyUsages: ['digitalSignature', 'keyEncipherment'],
      extendedKeyUsages: [CLIENT_AUTH],
      minRsaBits: 2048,
      allowedCurves: ['P-256', 'P-384'],
      requesterChosenCommonName: true,
    },
    enrollmentWaitMs: 10_000,
  }) as Profile & { ca: LocalCaConfig };
}

const config: PkiConfig = {
  rootCa: {
    keyLabel: 'root-ca',
    keyAlgorithm: 'rsa-2048',
    subject: [
      ['CN', 'Test Root CA'],
      ['O', 'Test PKI'],
      ['C', 'DE'],
    ],
    validityDays: 3650,
  },
  ra: {
    keyLabel: 'scep-ra',
    keyAlgorithm: 'rsa-2048',
    subject: [
      ['CN', 'Test SCEP RA'],
      ['O', 'Test PKI'],
    ],
  },
  profiles: [profile('laptops', 'ec-p256'), profile('servers', 'rsa-2048')],
  events: { deadLetterAfterSeconds: 86400, maxRetryIntervalSeconds: 600, timeoutMs: 10_000 },
  reports: {
    time: '06:00',
    timeZone: 'UTC',
    renewSoonDays: 7,
    trendReports: 14,
    notifications: { webhooks: [] },
  },
  keys: { maxAgeDays: 1095, expiryWarningDays: 60, refreshSeconds: 300, notifications: { webhooks: [] } },
};

let dir: string;
let token: HsmToken;
let tokens: TokenSet;
let closeToken: () => Promise<void>;

beforeAll(async () => {
  ({ dir, token, tokens, close: closeToken } = await openThrowawayToken('x509-test'));
  await ensurePkiHierarchy(tokens, config);
});

afterAll(async () => {
  await closeToken?.();
});

function writePem(name: string, der: Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, toPem(der));
  return path;
}

function openssl(args: string[], input?: string | Buffer): string {
  return execFileSync('openssl', args, { encoding: 'utf8', input, stdio: ['pipe', 'pipe', 'pipe'] });
}

function opensslVerify(root: Uint8Array, issuing: Uint8Array, leaf: Uint8Array, name: string): string {
  return openssl([
    'verify',
    '-CAfile',
    writePem(`${name}-root.pem`, root),
    '-untrusted',
    writePem(`${name}-issuing.pem`, issuing),
    writePem(`${name}-leaf.pem`, leaf),
  ]).trim();
}

function authorityKeyId(der: Uint8Array): Uint8Array | undefined {
  const ext = pkijs.Certificate.fromBER(der).extensions?.find((e) => e.extnID === '2.5.29.35');
  if (!ext) return undefined;
  const aki = pkijs.AuthorityKeyIdentifier.fromBER(ext.extnValue.valueBlock.valueHexView);
  return aki.keyIdentifier?.valueBlock.valueHexView;
}

const rawName = (der: Uint8Array, which: 'subject' | 'issuer') =>
  Buffer.from(pkijs.Certificate.fromBER(der)[which].toSchema().toBER());

/**
 * A CSR from OpenSSL. Subject and challengePassword both come from the config file: with -subj,
 * OpenSSL silently leaves out the [req_attributes].
 */
function opensslCsr(opts: {
  key: string[];
  subject: Array<[string, string]>;
  san?: string;
  challenge?: string;
}): Buffer {
  const work = mkdtempSync(join(dir, 'csr-'));
  const cnf = join(work, 'req.cnf');
  writeFileSync(
    cnf,
    [
      '[req]',
      'distinguished_name = dn',
      'attributes = req_attributes',
      'prompt = no',
      '[dn]',
      ...opts.subject.map(([type, value]) => `${type} = ${value}`),
      '[req_attributes]',
      ...(opts.challenge ? [`challengePassword = ${opts.challenge}`] : []),
    ].join('\n'),
  );
  const out = join(work, 'csr.der');
  execFileSync(
    'openssl',
    [
      'req',
      '-new',
      ...opts.key,
      '-nodes',
      '-keyout',
      join(work, 'key.pem'),
      '-config',
      cnf,
      ...(opts.san ? ['-addext', `subjectAltName=${opts.san}`] : []),
      '-outform',
      'DER',
      '-out',
      out,
    ],
    { stdio: 'ignore' },
  );
  return readFileSync(out);
}

describe('encodeName / nameToText', () => {
  it('puts one attribute in each RDN, in the order given', () => {
    const der = encodeName([
      ['CN', 'laptop-001'],
      ['O', 'Acme, Inc.'],
      ['OU', 'IT'],
      ['C', 'DE'],
      ['1.2.3.4', 'custom'],
    ]);
    const name = asn1js.fromBER(new Uint8Array(der).buffer).result as asn1js.Sequence;
    expect(name.valueBlock.value).toHaveLength(5);
    for (const rdn of name.valueBlock.value) expect((rdn as asn1js.Set).valueBlock.value).toHaveLength(1);
    expect(nameToText(der)).toBe('CN=laptop-001,O=Acme\\, Inc.,OU=IT,C=DE,1.2.3.4=custom');
    const parsed = openssl(['asn1parse', '-inform', 'DER'], Buffer.from(der));
    expect(parsed).toMatch(/PRINTABLESTRING\s+:DE/);
    expect(parsed).toMatch(/UTF8STRING\s+:laptop-001/);
  });

  it('encodes like OpenSSL does for the same subject', () => {
    const csr = opensslCsr({
      key: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'],
      subject: [
        ['CN', 'laptop-001'],
        ['O', 'Acme'],
      ],
    });
    const fromOpenssl = Buffer.from(pkijs.CertificationRequest.fromBER(csr).subject.toSchema().toBER());
    expect(
      Buffer.from(
        encodeName([
          ['CN', 'laptop-001'],
          ['O', 'Acme'],
        ]),
      ),
    ).toEqual(fromOpenssl);
  });

  it('refuses unknown attribute names and non-printable countries', () => {
    expect(() => encodeName([['XX', 'y']])).toThrow(/unknown name attribute/);
    expect(() => encodeName([['C', 'D@']])).toThrow(/PrintableString/);
  });
});

describe('ensurePkiHierarchy', () => {
  it.each(['laptops', 'servers'])('builds a chain OpenSSL verifies for profile %s', async (name) => {
    const chain = await loadProfileChain(token, config, name);
    expect(opensslVerify(chain.root, chain.issuing, chain.ra, `ra-${name}`)).toMatch(/: OK$/);
    writePem(`${name}-root-only.pem`, chain.root);
    expect(
      openssl([
        'verify',
        '-CAfile',
        join(dir, `${name}-root-only.pem`),
        writePem(`${name}-ca.pem`, chain.issuing),
      ]),
    ).toMatch(/: OK/);
  });

  it('gives each certificate the extensions its role needs', async () => {
    const chain = await loadProfileChain(token, config, 'laptops');
    const root = openssl(['x509', '-noout', '-text', '-in', writePem('root.pem', chain.root)]);
    expect(root).toMatch(/Basic Constraints: critical\s+CA:TRUE\n/);
    expect(root).toMatch(/Key Usage: critical\s+Certificate Sign, CRL Sign\n/);
    expect(root).toMatch(/Subject: CN = Test Root CA, O = Test PKI, C = DE/);
    expect(root).toMatch(/Signature Algorithm: sha256WithRSAEncryption/);

    const issuing = openssl(['x509', '-noout', '-text', '-in', writePem('issuing.pem', chain.issuing)]);
    expect(issuing).toMatch(/Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    expect(issuing).toMatch(/Key Usage: critical\s+Digital Signature, Certificate Sign, CRL Sign\n/);
    expect(issuing).toMatch(/Public Key Algorithm: id-ecPublicKey[\s\S]*NIST CURVE: P-256/);

    const ra = openssl(['x509', '-noout', '-text', '-in', writePem('ra.pem', chain.ra)]);
    expect(ra).toMatch(/Basic Constraints: critical\s+CA:FALSE/);
    expect(ra).toMatch(/Key Usage: critical\s+Digital Signature, Key Encipherment\n/);
    expect(ra).toMatch(/Subject: CN = Test SCEP RA, O = Test PKI, OU = laptops/);
    expect(ra).toMatch(/Signature Algorithm: ecdsa-with-SHA256/);
    expect(ra).toMatch(/Public-Key: \(2048 bit\)/);

    const raInfo = certificateInfo(chain.ra);
    const issuingInfo = certificateInfo(chain.issuing);
    const rootInfo = certificateInfo(chain.root);
    expect(raInfo.isCa).toBe(false);
    expect(issuingInfo.isCa).toBe(true);
    expect(raInfo.notAfter.getTime() - raInfo.notBefore.getTime()).toBeCloseTo(2 * 365 * 86400_000, -7);
    expect(issuingInfo.notAfter.getTime()).toBeLessThanOrEqual(rootInfo.notAfter.getTime());
  });

  it('copies the issuer SKI into the AKI and the issuer subject byte for byte', async () => {
    for (const name of ['laptops', 'servers']) {
      const { ra, issuing, root } = await loadProfileChain(token, config, name);
      const rootSki = certificateInfo(root).subjectKeyIdentifier!;
      const issuingSki = certificateInfo(issuing).subjectKeyIdentifier!;
      expect(Buffer.from(authorityKeyId(root)!)).toEqual(Buffer.from(rootSki));
      expect(Buffer.from(authorityKeyId(issuing)!)).toEqual(Buffer.from(rootSki));
      expect(Buffer.from(authorityKeyId(ra)!)).toEqual(Buffer.from(issuingSki));
      expect(rawName(issuing, 'issuer')).toEqual(rawName(root, 'subject'));
      expect(rawName(ra, 'issuer')).toEqual(rawName(issuing, 'subject'));
    }
  });

  it('creates nothing new when run again, and only the missing CA for an added profile', async () => {
    const before = await Promise.all(config.profiles.map((p) => loadProfileChain(token, config, p.name)));
    const raKey = await token.publicKey(config.ra.keyLabel);
    await ensurePkiHierarchy(tokens, config);
    const after = await Promise.all(config.profiles.map((p) => loadProfileChain(token, config, p.name)));
    expect(after).toEqual(before);
    expect(await token.publicKey(config.ra.keyLabel)).toEqual(raKey);

    const grown: PkiConfig = { ...config, profiles: [...config.profiles, profile('phones', 'ec-p384')] };
    await expect(loadProfileChain(token, grown, 'phones')).rejects.toThrow(
      /lacks the ra .*issuing .*"phones"/,
    );
    // Two starts at once (e.g. API and worker in one process) must not both create the new CA.
    await Promise.all([ensurePkiHierarchy(tokens, grown), ensurePkiHierarchy(tokens, grown)]);
    const grownChains = await Promise.all(grown.profiles.map((p) => loadProfileChain(token, grown, p.name)));
    expect(grownChains.slice(0, 2)).toEqual(before);
    const phones = grownChains[2]!;
    expect(opensslVerify(phones.root, phones.issuing, phones.ra, 'phones')).toMatch(/: OK$/);
    expect(openssl(['x509', '-noout', '-text', '-in', writePem('phones-ra.pem', phones.ra)])).toMatch(
      /ecdsa-with-SHA384/,
    );
  });

  it('refuses an unknown profile', async () => {
    await expect(loadProfileChain(token, config, 'nope')).rejects.toThrow(/no profile named "nope"/);
  });
});

describe('parseCsr', () => {
  it('reads an OpenSSL RSA CSR: challenge, CN, SANs, key size, signature', async () => {
    const csr = opensslCsr({
      key: ['-newkey', 'rsa:2048'],
      subject: [
        ['CN', 'laptop-001'],
        ['O', 'Acme'],
      ],
      san: 'DNS:laptop-001.example,IP:10.1.2.3,IP:2001:db8::1,email:it@acme.example,URI:urn:device:1',
      challenge: 'secret',
    });
    const result = await parseCsr(csr);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.csr).toMatchObject({
      commonName: 'laptop-001',
      subjectText: 'CN=laptop-001,O=Acme',
      challengePassword: 'secret',
      publicKey: { algorithm: 'rsa', bits: 2048 },
      signatureValid: true,
      subjectAltNames: {
        dns: ['laptop-001.example'],
        ip: ['10.1.2.3', '2001:db8::1'],
        email: ['it@acme.example'],
        uri: ['urn:device:1'],
      },
    });
    expect(Buffer.from(result.csr.der)).toEqual(csr);
  });

  it('reads EC keys and CSRs without challenge or SANs', async () => {
    const csr = opensslCsr({
      key: ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-384'],
      subject: [['CN', 'phone']],
    });
    const result = await parseCsr(csr);
    expect(result).toMatchObject({
      ok: true,
      csr: {
        publicKey: { algorithm: 'ec', curve: 'P-384' },
        signatureValid: true,
        subjectAltNames: { dns: [], ip: [], email: [], uri: [] },
      },
    });
    expect(result.ok && result.csr.challengePassword).toBeUndefined();
  });

  it('reports a tampered CSR as invalid', async () => {
    const csr = opensslCsr({
      key: ['-newkey', 'rsa:2048'],
      subject: [
        ['CN', 'laptop-001'],
        ['O', 'Acme'],
      ],
      challenge: 'secret',
    });
    const inSubject = Buffer.from(csr);
    const at = inSubject.indexOf('laptop-001');
    inSubject[at] = 'L'.charCodeAt(0);
    const inSignature = Buffer.from(csr);
    inSignature[inSignature.length - 5]! ^= 0xff;
    for (const tampered of [inSubject, inSignature]) {
      const result = await parseCsr(tampered);
      expect(result.ok ? result.csr.signatureValid : false).toBe(false);
    }
  });

  it('never throws on garbage', async () => {
    const csr = opensslCsr({ key: ['-newkey', 'rsa:2048'], subject: [['CN', 'x']] });
    const { root } = await loadProfileChain(token, config, 'servers');
    const inputs = [
      new Uint8Array(0),
      Buffer.from('hello'),
      randomBytes(512),
      Buffer.from([0x30, 0x82, 0xff, 0xff, 0x01]),
      csr.subarray(0, csr.length - 10),
      Buffer.concat([csr, Buffer.from([0])]),
      root,
    ];
    for (const input of inputs) {
      const result = await parseCsr(input);
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.message).toMatch(/PKCS#10/);
    }
  });
});

describe('buildCertificate for devices', () => {
  it.each([
    ['laptops', ['-newkey', 'rsa:2048']],
    ['servers', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256']],
  ])('issues from a CSR under profile %s, verifiable with the chain', async (name, key) => {
    const csr = opensslCsr({
      key,
      subject: [
        ['CN', 'laptop-001'],
        ['O', 'Acme'],
      ],
      san: 'DNS:laptop-001.example,IP:10.0.0.7',
      challenge: 'secret',
    });
    const parsed = await parseCsr(csr);
    if (!parsed.ok) throw new Error(parsed.message);
    const chain = await loadProfileChain(token, config, name);
    const p = config.profiles.find((x) => x.name === name)!;
    const notBefore = new Date();
    const der = await buildCertificate({
      serialNumber: Buffer.from('f0000000000000000000000000000001', 'hex'),
      subject: parsed.csr.subject,
      subjectPublicKeyInfo: parsed.csr.subjectPublicKeyInfo,
      notBefore,
      notAfter: new Date(notBefore.getTime() + p.template.validitySeconds * 1000),
      issuer: {
        kind: 'ca',
        certificate: chain.issuing,
        signer: await token.signer(issuingCertificateLabel(p)),
      },
      extensions: {
        keyUsages: p.template.keyUsages,
        extendedKeyUsages: p.template.extendedKeyUsages,
        subjectAltNames: parsed.csr.subjectAltNames,
        crlDistributionPoints: [`http://pki.example/crl/${name}.crl`],
      },
    });
    expect(opensslVerify(chain.root, chain.issuing, der, `leaf-${name}`)).toMatch(/: OK$/);
    const text = openssl(['x509', '-noout', '-text', '-in', join(dir, `leaf-${name}-leaf.pem`)]);
    expect(text).toMatch(/Basic Constraints: critical\s+CA:FALSE/);
    expect(text).toMatch(/Key Usage: critical\s+Digital Signature, Key Encipherment\n/);
    expect(text).toMatch(/Extended Key Usage:\s+TLS Web Client Authentication/);
    expect(text).toMatch(/DNS:laptop-001.example, IP Address:10.0.0.7/);
    expect(text).toMatch(/URI:http:\/\/pki.example\/crl/);
    expect(text).toMatch(/Serial Number:\s+(00:)?f0:00/);

    const info = certificateInfo(der);
    expect(info).toMatchObject({
      subject: 'CN=laptop-001,O=Acme',
      issuer: `CN=Issuing CA ${name},O=Test PKI`,
      isCa: false,
    });
    expect(info.serialHex).toBe('f0000000000000000000000000000001');
    expect(info.notBefore.getTime()).toBe(Math.floor(notBefore.getTime() / 1000) * 1000);
    expect(Buffer.from(info.subjectPublicKeyInfo)).toEqual(Buffer.from(parsed.csr.subjectPublicKeyInfo));
    expect(Buffer.from(authorityKeyId(der)!)).toEqual(
      Buffer.from(certificateInfo(chain.issuing).subjectKeyIdentifier!),
    );
  });

  it('keeps a high-bit serial positive', async () => {
    const { issuing } = await loadProfileChain(token, config, 'laptops');
    const der = await buildCertificate({
      serialNumber: Buffer.from('ff01', 'hex'),
      subject: encodeName([['CN', 'x']]),
      subjectPublicKeyInfo: certificateInfo(issuing).subjectPublicKeyInfo,
      notBefore: new Date('2030-01-01T00:00:00Z'),
      notAfter: new Date('2055-01-01T00:00:00Z'),
      issuer: { kind: 'ca', certificate: issuing, signer: await token.signer('issuing-ca/laptops') },
      extensions: { keyUsages: ['digitalSignature'] },
    });
    const cert = pkijs.Certificate.fromBER(der);
    expect(Buffer.from(cert.serialNumber.valueBlock.valueHexView).toString('hex')).toBe('00ff01');
    expect(certificateInfo(der).serialHex).toBe('ff01');
    // After 2049 RFC 5280 requires GeneralizedTime.
    expect(cert.notAfter.type).toBe(1);
    expect(cert.notBefore.type).toBe(0);
  });

  it('refuses to emit a certificate the issuer key did not sign', async () => {
    const { issuing } = await loadProfileChain(token, config, 'laptops');
    await expect(
      buildCertificate({
        serialNumber: Buffer.from([1]),
        subject: encodeName([['CN', 'x']]),
        subjectPublicKeyInfo: certificateInfo(issuing).subjectPublicKeyInfo,
        notBefore: new Date(),
        notAfter: new Date(Date.now() + 86400_000),
        issuer: { kind: 'ca', certificate: issuing, signer: await token.signer('issuing-ca/servers') },
        extensions: { keyUsages: ['digitalSignature'] },
      }),
    ).rejects.toThrow(/does not verify/);
  });

  it('certificateInfo throws on invalid DER', () => {
    expect(() => certificateInfo(Buffer.from('garbage'))).toThrow();
  });
});
