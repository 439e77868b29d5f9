/**
 * TLS of the operator listener. Its server certificate is this product's own, from the operators'
 * CA (config `operators.profile`, else the first local CA), made in a ceremony (it needs the CA key);
 * its private key is a software key in a 0600 file (Node's TLS cannot use a PKCS#11 key), or
 * OPERATOR_TLS_CERT / OPERATOR_TLS_KEY name the organisation's own. Clients presenting a certificate
 * are checked against the operators' CA, which the server names in its CertificateRequest (the
 * trusted-issuer hint a client picks its certificate by).
 */
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { drawSerialHex } from '../activities/ca/local-hsm/serials.js';
import type { LocalCaConfig, PkiConfig, Profile } from '../config/profile-types.js';
import type { RuntimeSettings } from '../config/runtime.js';
import type { HsmToken } from '../hsm/token.js';
import type { TokenSet } from '../hsm/token-set.js';
import { toPem } from '../pki/pem.js';
import { buildCertificate, certificateInfo } from '../pki/x509/certificate.js';
import { encodeName } from '../pki/x509/name.js';

const VALIDITY_MS = 90 * 86_400_000;
const RENEW_BEFORE_MS = 30 * 86_400_000;
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const IP = /^(\d{1,3}(\.\d{1,3}){3}|[0-9a-f:]+:[0-9a-f:]*)$/i;

export interface OperatorTls {
  /** PEM: the server certificate, then its issuing CA. */
  cert: string;
  key: string;
  /** PEM of the client CAs TLS verifies against (the operators' issuing CA and its root). */
  clientCas: string[];
}

/** The profile whose CA certifies operators (and the listener itself). */
export function operatorsProfile(config: PkiConfig): Profile & { ca: LocalCaConfig } {
  const named = config.operators
    ? config.profiles.find((p) => p.name === config.operators!.profile)
    : undefined;
  const profile = named ?? config.profiles.find((p) => p.ca.type === 'local-hsm');
  if (profile?.ca.type !== 'local-hsm')
    throw new Error('the operator listener needs a profile with a local CA (config operators.profile)');
  return profile as Profile & { ca: LocalCaConfig };
}

/**
 * Makes (or renews, 30 days before it runs out or when the host names changed) the listener's
 * certificate and key files, unless they are the organisation's own (OPERATOR_TLS_CERT set).
 */
export async function ensureOperatorTlsCertificate(
  tokens: TokenSet,
  config: PkiConfig,
  settings: RuntimeSettings,
  now = new Date(),
): Promise<void> {
  const { certFile, keyFile, hostnames } = settings.operator;
  if (process.env.OPERATOR_TLS_CERT) return;
  // What clients trust the listener by (curl --cacert, SSL_CERT_FILE for the temporal CLI).
  const root = await tokens.get('root').certificate(config.rootCa.keyLabel);
  if (root) {
    mkdirSync(dirname(certFile), { recursive: true });
    writeFileSync(rootCaFile(settings), toPem(root));
  }
  if (
    existsSync(certFile) &&
    existsSync(keyFile) &&
    stillGood(readFileSync(certFile, 'utf8'), hostnames, now)
  )
    return;
  const profile = operatorsProfile(config);
  const ca: HsmToken = tokens.get('ca');
  const issuer = await ca.certificate(profile.ca.keyLabel);
  if (!issuer)
    throw new Error(`no certificate for "${profile.ca.keyLabel}": provision the CA hierarchy first`);
  const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const notAfter = new Date(
    Math.min(now.getTime() + VALIDITY_MS, certificateInfo(issuer).notAfter.getTime()),
  );
  const der = await buildCertificate({
    serialNumber: Buffer.from(drawSerialHex(), 'hex'),
    subject: encodeName([
      ['CN', hostnames[0] ?? 'localhost'],
      ['O', 'device-pki operator listener'],
    ]),
    subjectPublicKeyInfo: new Uint8Array(publicKey.export({ format: 'der', type: 'spki' })),
    notBefore: new Date(now.getTime() - 5 * 60_000),
    notAfter,
    issuer: { kind: 'ca', certificate: issuer, signer: await ca.signer(profile.ca.keyLabel) },
    extensions: {
      keyUsages: ['digitalSignature'],
      extendedKeyUsages: [SERVER_AUTH],
      subjectAltNames: {
        dns: hostnames.filter((h) => !IP.test(h)),
        ip: hostnames.filter((h) => IP.test(h)),
        email: [],
        uri: [],
      },
    },
  });
  mkdirSync(dirname(certFile), { recursive: true });
  mkdirSync(dirname(keyFile), { recursive: true });
  writeFileSync(keyFile, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 });
  writeFileSync(certFile, `${toPem(der)}${toPem(issuer)}`);
}

/** The root CA certificate beside the listener's files, for clients to trust it by. */
export function rootCaFile(settings: RuntimeSettings): string {
  return join(dirname(settings.operator.certFile), 'root-ca.pem');
}

/** What the listener serves with: its files, and the operators' CA from the RA token's copies. */
export async function loadOperatorTls(
  ra: HsmToken,
  config: PkiConfig,
  settings: RuntimeSettings,
): Promise<OperatorTls> {
  const { certFile, keyFile } = settings.operator;
  if (!existsSync(certFile) || !existsSync(keyFile))
    throw new Error(
      `the operator listener has no certificate (${certFile}): run provisioning (npm run hsm:init), or set OPERATOR_TLS_CERT and OPERATOR_TLS_KEY`,
    );
  const operatorsCa = await ra.certificate(operatorsProfile(config).ca.keyLabel);
  const root = await ra.certificate(config.rootCa.keyLabel);
  if (!operatorsCa || !root)
    throw new Error('the RA token holds no copy of the operators CA or root certificate: run provisioning');
  // OpenSSL (Node 20) verifies a chain only up to a self-signed anchor: the root is in the list so
  // TLS checks the whole chain; which certificates are operators' is the verifier's (on record, of
  // the operators' profile, not revoked: api/operator/certificate-auth.ts).
  return {
    cert: readFileSync(certFile, 'utf8'),
    key: readFileSync(keyFile, 'utf8'),
    clientCas: [toPem(operatorsCa), toPem(root)],
  };
}

function stillGood(chainPem: string, hostnames: string[], now: Date): boolean {
  const leaf = new X509Certificate(chainPem);
  if (Date.parse(leaf.validTo) - now.getTime() < RENEW_BEFORE_MS) return false;
  const sans = leaf.subjectAltName ?? '';
  return hostnames.every((h) => sans.includes(IP.test(h) ? `IP Address:${h}` : `DNS:${h}`));
}
