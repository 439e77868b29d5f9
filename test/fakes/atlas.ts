/**
 * A fake GlobalSign Atlas HVCA speaking the wire contract (shared/reference/contracts.md) over HTTPS
 * that REQUIRES a client certificate. Its TLS and issuing hierarchies are throwaway, made with
 * OpenSSL at start; issued certificates are real (signed by the fake's issuing CA) so tests can
 * judge them with `openssl verify`.
 */
import { execFile } from 'node:child_process';
import { createPrivateKey, createPublicKey, type KeyObject, randomBytes, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { KeyUsageName } from '../../config/profile-types.js';
import type { HashName, Signer } from '../../pki/keys.js';
import { toPem } from '../../pki/pem.js';
import { buildCertificate } from '../../pki/x509/certificate.js';
import { encodeName } from '../../pki/x509/name.js';

const run = promisify(execFile);

export interface AtlasCall {
  method: string;
  path: string;
  status: number;
  body?: unknown;
}

export interface FakeAtlasOptions {
  apiKey?: string;
  apiSecret?: string;
}

interface Issued {
  pem: string;
  status: 'ISSUED' | 'REVOKED';
  pendingLeft: number;
  revocation?: { reason: string; time: number };
}

export interface FakeAtlas {
  /** Base URL, like https://emea.api.hvca.globalsign.com:8443/v2. */
  baseUrl: string;
  apiKey: string;
  apiSecret: string;
  /** PEM files a client needs: its certificate and key, and the CA that signed the server's cert. */
  files: { clientCert: string; clientKey: string; serverCa: string; dir: string };
  /**
   * A profile's `ca` for this fake: the credentials in ATLAS_API_KEY / ATLAS_API_SECRET (the test
   * sets them), its mTLS files, quick polling.
   */
  caConfig(): Record<string, unknown>;
  /** The issuing hierarchy: what GET /trustchain returns. */
  chain: { issuingPem: string; rootPem: string };
  calls: AtlasCall[];
  certificates: Map<string, Issued>;
  /** GET /certificates/{serial} answers 202 this many times per certificate before 200. */
  pendingRounds: number;
  /** A common_name the validation policy refuses (422). */
  rejectCommonName: string | undefined;
  /** The next `count` authenticated requests (not /login) answer `status` (503 by default). */
  failNext(count: number, status?: number): void;
  /** Invalidates every issued access token: the next call gets 401, as after the 10-minute expiry. */
  expireTokens(): void;
  count(method: string, pathPrefix: string): number;
  close(): Promise<void>;
}

const EXTENSIONS = `
[req]
distinguished_name = dn
[dn]
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[v3_sub_ca]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[v3_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1
[v3_client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
`;

const SUBJECT_ATTRIBUTES: Array<[string, string]> = [
  ['country', 'C'],
  ['state', 'ST'],
  ['locality', 'L'],
  ['street_address', 'street'],
  ['organization', 'O'],
  ['serial_number', 'serialNumber'],
  ['given_name', 'GN'],
  ['surname', 'SN'],
  ['email', 'emailAddress'],
];

const KEY_USAGES: Record<string, KeyUsageName> = {
  digital_signature: 'digitalSignature',
  content_commitment: 'nonRepudiation',
  key_encipherment: 'keyEncipherment',
  data_encipherment: 'dataEncipherment',
  key_agreement: 'keyAgreement',
};

export async function startFakeAtlas(opts: FakeAtlasOptions = {}): Promise<FakeAtlas> {
  const dir = mkdtempSync(join(tmpdir(), 'fake-atlas-'));
  const pki = await makeHierarchies(dir);
  const apiKey = opts.apiKey ?? 'atlas-key';
  const apiSecret = opts.apiSecret ?? 'atlas-secret';
  const tokens = new Set<string>();
  const certificates = new Map<string, Issued>();
  const calls: AtlasCall[] = [];
  let failures = { count: 0, status: 503 };

  const server: Server = createServer({
    key: readFileSync(join(dir, 'server.key')),
    cert: readFileSync(join(dir, 'server.pem')),
    ca: readFileSync(join(dir, 'tls-ca.pem')),
    requestCert: true,
    rejectUnauthorized: true,
  });

  const fake: FakeAtlas = {
    baseUrl: '',
    apiKey,
    apiSecret,
    files: {
      clientCert: join(dir, 'client.pem'),
      clientKey: join(dir, 'client.key'),
      serverCa: join(dir, 'tls-ca.pem'),
      dir,
    },
    caConfig() {
      return {
        type: 'globalsign-atlas',
        baseUrl: fake.baseUrl,
        apiKeyEnv: 'ATLAS_API_KEY',
        apiSecretEnv: 'ATLAS_API_SECRET',
        clientCertFile: fake.files.clientCert,
        clientKeyFile: fake.files.clientKey,
        serverCaFile: fake.files.serverCa,
        pollIntervalMs: 300,
      };
    },
    chain: { issuingPem: pki.issuingPem, rootPem: pki.rootPem },
    calls,
    certificates,
    pendingRounds: 0,
    rejectCommonName: undefined,
    failNext(count, status = 503) {
      failures = { count, status };
    },
    expireTokens() {
      tokens.clear();
    },
    count(method, pathPrefix) {
      return calls.filter((c) => c.method === method && c.path.startsWith(pathPrefix)).length;
    },
    close() {
      server.closeAllConnections();
      return new Promise((resolve) =>
        server.close(() => {
          rmSync(dir, { recursive: true, force: true });
          resolve();
        }),
      );
    },
  };

  server.on('request', (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const body = raw === '' ? undefined : safeJson(raw);
      const path = (req.url ?? '/').replace(/^\/v2/, '').split('?')[0] ?? '/';
      const method = req.method ?? 'GET';
      const reply = (status: number, payload?: unknown, headers: Record<string, string> = {}) => {
        calls.push({ method, path, status, ...(body !== undefined ? { body } : {}) });
        const problem = status >= 400;
        const text = payload === undefined ? '' : JSON.stringify(payload);
        res.writeHead(status, {
          ...(text ? { 'content-type': problem ? 'application/problem+json' : 'application/json' } : {}),
          ...headers,
        });
        res.end(text);
      };
      handle(method, path, body, req.headers.authorization, reply).catch((e: Error) =>
        reply(500, { description: `fake Atlas failed: ${e.message}` }),
      );
    });
  });

  async function handle(
    method: string,
    path: string,
    body: unknown,
    authorization: string | undefined,
    reply: (status: number, payload?: unknown, headers?: Record<string, string>) => void,
  ): Promise<void> {
    if (method === 'POST' && path === '/login') {
      const b = body as { api_key?: string; api_secret?: string } | undefined;
      if (b?.api_key !== apiKey || b?.api_secret !== apiSecret) {
        return reply(401, { description: 'invalid API credentials' });
      }
      const token = randomBytes(16).toString('hex');
      tokens.add(token);
      return reply(200, { access_token: token });
    }
    const token = /^Bearer (.+)$/.exec(authorization ?? '')?.[1];
    if (!token || !tokens.has(token)) return reply(401, { description: 'access token expired or invalid' });
    if (failures.count > 0) {
      failures.count--;
      return reply(failures.status, { description: 'service temporarily unavailable' });
    }

    if (method === 'GET' && path === '/trustchain') return reply(200, [pki.issuingPem, pki.rootPem]);
    if (method === 'POST' && path === '/certificates') {
      const request = body as CertificateRequestBody;
      const cn = request?.subject_dn?.common_name;
      if (fake.rejectCommonName !== undefined && cn === fake.rejectCommonName) {
        return reply(422, { description: `common_name "${cn}" is not permitted by the validation policy` });
      }
      const serial = positiveSerial();
      const pem = await issueFrom(request, serial, pki, dir);
      certificates.set(serial, { pem, status: 'ISSUED', pendingLeft: fake.pendingRounds });
      return reply(201, undefined, { location: `${fake.baseUrl}/certificates/${serial}` });
    }
    const match = /^\/certificates\/([0-9A-Fa-f]+)$/.exec(path);
    const record = match ? certificates.get(match[1]!.toUpperCase()) : undefined;
    if (match && !record) return reply(404, { description: 'certificate not found' });
    if (record && method === 'GET') {
      if (record.pendingLeft > 0) {
        record.pendingLeft--;
        return reply(202);
      }
      return reply(200, { certificate: record.pem, status: record.status, updated_at: Date.now() / 1000 });
    }
    if (record && method === 'PATCH') {
      const b = body as { revocation_reason?: string; revocation_time?: number };
      record.status = 'REVOKED';
      record.revocation = { reason: String(b?.revocation_reason), time: Number(b?.revocation_time) };
      return reply(204);
    }
    return reply(404, { description: `no route ${method} ${path}` });
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.baseUrl = `https://127.0.0.1:${(server.address() as AddressInfo).port}/v2`;
  return fake;
}

interface CertificateRequestBody {
  validity: { not_before: number; not_after: number };
  subject_dn: Record<string, unknown> & { common_name?: string; organizational_unit?: string[] };
  san?: { dns_names?: string[]; emails?: string[]; ip_addresses?: string[]; uris?: string[] };
  extended_key_usages?: string[];
  key_usages?: Record<string, boolean>;
  public_key: string;
}

interface FakePki {
  issuingPem: string;
  rootPem: string;
  issuingDer: Uint8Array;
  issuingKey: KeyObject;
}

/** Like Atlas: the subject comes from subject_dn, the key from the (verified) CSR. */
async function issueFrom(request: CertificateRequestBody, serial: string, pki: FakePki, dir: string) {
  const csrFile = join(dir, `req-${serial}.pem`);
  writeFileSync(csrFile, request.public_key);
  const { stdout } = await run('openssl', ['req', '-in', csrFile, '-verify', '-noout', '-pubkey']);
  const spki = createPublicKey(stdout).export({ type: 'spki', format: 'der' });
  const dn = request.subject_dn;
  const rdns: Array<[string, string]> = [];
  for (const [field, short] of SUBJECT_ATTRIBUTES) {
    if (typeof dn[field] === 'string') rdns.push([short, dn[field] as string]);
  }
  for (const ou of dn.organizational_unit ?? []) rdns.push(['OU', ou]);
  if (dn.common_name) rdns.push(['CN', dn.common_name]);
  const usages = Object.entries(request.key_usages ?? { digital_signature: true })
    .filter(([, on]) => on)
    .flatMap(([name]) => (KEY_USAGES[name] ? [KEY_USAGES[name]] : []));
  const der = await buildCertificate({
    serialNumber: Buffer.from(serial, 'hex'),
    subject: encodeName(rdns),
    subjectPublicKeyInfo: new Uint8Array(spki),
    notBefore: new Date(request.validity.not_before * 1000),
    notAfter: new Date(request.validity.not_after * 1000),
    issuer: { kind: 'ca', certificate: pki.issuingDer, signer: softwareSigner(pki.issuingKey) },
    extensions: {
      keyUsages: usages,
      extendedKeyUsages: request.extended_key_usages ?? [],
      subjectAltNames: {
        dns: request.san?.dns_names ?? [],
        email: request.san?.emails ?? [],
        ip: request.san?.ip_addresses ?? [],
        uri: request.san?.uris ?? [],
      },
    },
  });
  return toPem(der);
}

function softwareSigner(key: KeyObject): Signer {
  const hashes: Record<HashName, string> = {
    'SHA-1': 'sha1',
    'SHA-256': 'sha256',
    'SHA-384': 'sha384',
    'SHA-512': 'sha512',
  };
  return {
    keyAlgorithm: 'ec-p256',
    sign: async (data, hash) => new Uint8Array(sign(hashes[hash], data, { key, dsaEncoding: 'der' })),
  };
}

/** Two throwaway hierarchies: TLS (server and client certificates) and issuing (root, issuing CA). */
async function makeHierarchies(dir: string): Promise<FakePki> {
  const cnf = join(dir, 'openssl.cnf');
  writeFileSync(cnf, EXTENSIONS);
  const at = (name: string) => join(dir, name);
  const key = (name: string) =>
    run('openssl', ['genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256', '-out', at(name)]);
  const selfSigned = (name: string, subject: string) =>
    run('openssl', [
      'req',
      '-new',
      '-x509',
      '-key',
      at(`${name}.key`),
      '-subj',
      subject,
      '-days',
      '3',
      '-config',
      cnf,
      '-extensions',
      'v3_ca',
      '-out',
      at(`${name}.pem`),
    ]);
  const signed = async (name: string, subject: string, ca: string, ext: string) => {
    await run('openssl', [
      'req',
      '-new',
      '-key',
      at(`${name}.key`),
      '-subj',
      subject,
      '-config',
      cnf,
      '-out',
      at(`${name}.csr`),
    ]);
    await run('openssl', [
      'x509',
      '-req',
      '-in',
      at(`${name}.csr`),
      '-CA',
      at(`${ca}.pem`),
      '-CAkey',
      at(`${ca}.key`),
      '-set_serial',
      `0x${positiveSerial()}`,
      '-days',
      '3',
      '-extfile',
      cnf,
      '-extensions',
      ext,
      '-out',
      at(`${name}.pem`),
    ]);
  };
  await Promise.all(['tls-ca', 'server', 'client', 'root', 'issuing'].map((n) => key(`${n}.key`)));
  await selfSigned('tls-ca', '/CN=Fake Atlas TLS CA');
  await signed('server', '/CN=127.0.0.1', 'tls-ca', 'v3_server');
  await signed('client', '/CN=device-pki Atlas client', 'tls-ca', 'v3_client');
  await selfSigned('root', '/O=Fake GlobalSign/CN=Fake Atlas Root');
  await signed('issuing', '/O=Fake GlobalSign/CN=Fake Atlas Issuing CA', 'root', 'v3_sub_ca');
  const issuingPem = readFileSync(at('issuing.pem'), 'utf8');
  return {
    issuingPem,
    rootPem: readFileSync(at('root.pem'), 'utf8'),
    issuingDer: new Uint8Array(pemBody(issuingPem)),
    issuingKey: createPrivateKey(readFileSync(at('issuing.key'))),
  };
}

function pemBody(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

/** 16 random bytes, upper-case hex, first byte 0x01..0x7f: positive and without a leading zero. */
function positiveSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes.toString('hex').toUpperCase();
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return { unparsable: text };
  }
}
