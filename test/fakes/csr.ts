/** Real CSRs and certificates for the MDM adapter tests, made by OpenSSL (not by our own code). */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../config/load.js';

export interface CsrSpec {
  /** [['CN', 'laptop-001'], ['serialNumber', 'C02XYZ']] */
  subject: Array<[string, string]>;
  challenge?: string;
  dns?: string[];
  ip?: string[];
  email?: string[];
  uri?: string[];
}

/** DER PKCS#10 with an EC P-256 key (fast to generate; the adapters do not care about the key). */
export function makeCsr(spec: CsrSpec): Uint8Array {
  const dir = mkdtempSync(join(tmpdir(), 'mdm-csr-'));
  try {
    // A section, one name per line: values may hold commas (Intune's tag: URIs do).
    const sans = [
      ...(spec.dns ?? []).map((v, i) => `DNS.${i} = ${v}`),
      ...(spec.ip ?? []).map((v, i) => `IP.${i} = ${v}`),
      ...(spec.email ?? []).map((v, i) => `email.${i} = ${v}`),
      ...(spec.uri ?? []).map((v, i) => `URI.${i} = ${v}`),
    ];
    // -subj would drop [req_attributes]: the subject goes in [dn], prompt = no.
    const config = [
      '[req]',
      'prompt = no',
      'distinguished_name = dn',
      ...(spec.challenge !== undefined ? ['attributes = req_attributes'] : []),
      ...(sans.length ? ['req_extensions = ext'] : []),
      '[dn]',
      // OpenSSL config strips quotes and backslashes unless escaped.
      ...spec.subject.map(([k, v], i) => `${i}.${k} = ${v.replace(/(["\\])/g, '\\$1')}`),
      ...(spec.challenge !== undefined ? ['[req_attributes]', `challengePassword = ${spec.challenge}`] : []),
      ...(sans.length ? ['[ext]', 'subjectAltName = @alt', '[alt]', ...sans] : []),
    ].join('\n');
    writeFileSync(join(dir, 'req.cnf'), `${config}\n`);
    execFileSync(
      'openssl',
      [
        'req',
        '-new',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-config',
        join(dir, 'req.cnf'),
        '-keyout',
        join(dir, 'key.pem'),
        '-outform',
        'DER',
        '-out',
        join(dir, 'req.der'),
      ],
      { stdio: 'pipe' },
    );
    return new Uint8Array(readFileSync(join(dir, 'req.der')));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const FIXTURE_CA = join(PROJECT_ROOT, 'test', 'fixtures', 'scep');

/** Signs the CSR with the fixture CA (OpenSSL), returns the certificate and CA DER. */
export function signWithFixtureCa(csr: Uint8Array, days = 30): { certificate: Uint8Array; ca: Uint8Array } {
  const dir = mkdtempSync(join(tmpdir(), 'mdm-cert-'));
  try {
    writeFileSync(join(dir, 'req.der'), csr);
    const run = (args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
    run(['req', '-inform', 'DER', '-in', join(dir, 'req.der'), '-out', join(dir, 'req.pem')]);
    run([
      'x509',
      '-req',
      '-in',
      join(dir, 'req.pem'),
      '-CA',
      join(FIXTURE_CA, 'ca.pem'),
      '-CAkey',
      join(FIXTURE_CA, 'ca.key.pem'),
      '-set_serial',
      '0x0A1B2C3D4E5F',
      '-days',
      String(days),
      '-outform',
      'DER',
      '-out',
      join(dir, 'cert.der'),
    ]);
    return {
      certificate: new Uint8Array(readFileSync(join(dir, 'cert.der'))),
      ca: new Uint8Array(readFileSync(join(FIXTURE_CA, 'ca.der'))),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What OpenSSL says about a certificate: SHA-1 fingerprint (upper hex, no colons) and serial. */
export function opensslFacts(certificate: Uint8Array): { sha1: string; serial: string; issuer: string } {
  const dir = mkdtempSync(join(tmpdir(), 'mdm-facts-'));
  try {
    writeFileSync(join(dir, 'cert.der'), certificate);
    const out = execFileSync(
      'openssl',
      ['x509', '-inform', 'DER', '-in', join(dir, 'cert.der'), '-noout', '-fingerprint', '-sha1', '-serial'],
      { encoding: 'utf8' },
    );
    const sha1 = /Fingerprint=([0-9A-F:]+)/.exec(out)?.[1]?.replaceAll(':', '') ?? '';
    const serial = /serial=([0-9A-F]+)/i.exec(out)?.[1] ?? '';
    return { sha1, serial, issuer: 'O=Fixture,CN=SCEP Fixture CA' };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
