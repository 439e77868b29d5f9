/**
 * The CA hierarchy inside the tokens, one key domain each (config/runtime.ts TokenRole): the root
 * and the issuing CAs in the CA token (the root in its own token when there is one), the RA key, its
 * certificates, the OCSP responder keys and copies of the public CA certificates in the RA token
 * (all the API needs), the field-encryption key in the data token. A key ceremony: only provisioning
 * opens every token. Idempotent: each run creates only what is missing, so a profile added to the
 * config gets its CA on the next run and nothing existing is ever replaced; keys made by older
 * versions lose any usage their role does not have.
 */

import { randomBytes } from 'node:crypto';
import type { LocalCaConfig, PkiConfig, Profile } from '../config/profile-types.js';
import type { HashName, KeyAlgorithm, Signer } from '../pki/keys.js';
import { buildCertificate, type CertificateParams, certificateInfo } from '../pki/x509/certificate.js';
import { encodeName } from '../pki/x509/name.js';
import { componentLogger } from '../runtime/log.js';
import { HsmKeyNotFoundError, type HsmToken, type KeyRole } from './token.js';
import type { TokenSet } from './token-set.js';

export const FIELD_ENCRYPTION_KEY_LABEL = 'field-encryption';
/** The key-encryption key of Temporal payloads (runtime/payload-codec.ts), in the data token. */
export const PAYLOAD_KEK_LABEL = 'payload-kek/1';

/** The OCSP responder key of an issuing CA, in the RA token (RFC 6960 4.2.2.2 delegated responder). */
export const ocspResponderLabel = (issuingCa: string) => `ocsp/${issuingCa}`;

export const DAY_MS = 86_400_000;
const ISSUING_CA_VALIDITY_MS = 5 * 365 * DAY_MS;
const RA_VALIDITY_MS = 2 * 365 * DAY_MS;
// Devices with a lagging clock must still accept a chain minted a moment ago.
export const BACKDATE_MS = 60 * 60 * 1000;

export function raCertificateLabel(config: PkiConfig, profileName: string): string {
  return `${config.ra.keyLabel}/${profileName}`;
}

/** Provisioning runs on one set of tokens are serialized: two at once would both create the missing keys. */
const provisioning = new WeakMap<HsmToken, Promise<void>>();

export function ensurePkiHierarchy(
  tokens: TokenSet,
  config: PkiConfig,
  now: Date = new Date(),
): Promise<void> {
  const ca = tokens.get('ca');
  const previous = provisioning.get(ca) ?? Promise.resolve();
  const run = previous.catch(() => {}).then(() => provision(tokens, config, now));
  provisioning.set(ca, run);
  return run;
}

async function provision(tokens: TokenSet, config: PkiConfig, now: Date): Promise<void> {
  const notBefore = new Date(now.getTime() - BACKDATE_MS);
  const rootToken = tokens.get('root');
  const caToken = tokens.get('ca');
  const raToken = tokens.get('ra');
  const root = config.rootCa;
  const rootSpki = await ensureKeyPair(rootToken, root.keyLabel, root.keyAlgorithm, 'signing');
  const rootCert = await ensureCertificate(rootToken, root.keyLabel, rootSpki, async () => {
    const signer = await rootToken.signer(root.keyLabel);
    return buildCertificate({
      serialNumber: newSerial(),
      subject: encodeName(root.subject),
      subjectPublicKeyInfo: rootSpki,
      notBefore,
      notAfter: new Date(now.getTime() + root.validityDays * DAY_MS),
      issuer: { kind: 'self', signer },
      hash: hashFor(signer),
      extensions: { ca: {}, keyUsages: ['keyCertSign', 'cRLSign'] },
    });
  });

  // The API reads the chain from the RA token: a copy of every public CA certificate it serves.
  await ensureCopy(raToken, root.keyLabel, rootCert);

  const raSpki = await ensureKeyPair(raToken, config.ra.keyLabel, config.ra.keyAlgorithm, 'ra');
  for (const profile of config.profiles) {
    // A profile whose CA is upstream (e.g. Atlas) has no key here: its RA certificate comes from our root.
    const ca = profile.ca;
    const raIssuer =
      ca.type === 'local-hsm'
        ? {
            token: caToken,
            keyLabel: ca.keyLabel,
            cert:
              (await retiredByRotation(caToken, raToken, ca.keyLabel)) ??
              (await ensureIssuingCa(caToken, rootToken, ca, root.keyLabel, rootCert, notBefore)),
          }
        : { token: rootToken, keyLabel: root.keyLabel, cert: rootCert };
    const issuingCert = raIssuer.cert;
    if (ca.type === 'local-hsm') {
      await ensureCopy(raToken, ca.keyLabel, issuingCert);
      await ensureKeyPair(raToken, ocspResponderLabel(ca.keyLabel), 'ec-p256', 'signing');
    }
    const raLabel = raCertificateLabel(config, profile.name);
    await ensureCertificate(raToken, raLabel, raSpki, () =>
      issue(raIssuer.token, raIssuer.keyLabel, issuingCert, {
        subject: encodeName([...config.ra.subject, ['OU', profile.name]]),
        subjectPublicKeyInfo: raSpki,
        notBefore,
        notAfter: capped(now.getTime() + RA_VALIDITY_MS, issuingCert),
        extensions: { keyUsages: ['digitalSignature', 'keyEncipherment'] },
      }),
    );
  }

  const data = tokens.get('data');
  for (const label of [FIELD_ENCRYPTION_KEY_LABEL, PAYLOAD_KEK_LABEL])
    try {
      await data.sealer(label);
    } catch (e) {
      if (!(e instanceof HsmKeyNotFoundError)) throw e;
      await data.generateSecretKey(label);
    }
}

export async function loadProfileChain(
  token: HsmToken,
  config: PkiConfig,
  profileName: string,
): Promise<{ ra: Uint8Array; issuing: Uint8Array; root: Uint8Array }> {
  const profile = config.profiles.find((p) => p.name === profileName);
  if (!profile) throw new Error(`no profile named "${profileName}" in the PKI configuration`);
  const labels = {
    ra: raCertificateLabel(config, profileName),
    issuing: issuingCertificateLabel(profile),
    root: config.rootCa.keyLabel,
  };
  const [ra, issuing, root] = await Promise.all([
    token.certificate(labels.ra),
    token.certificate(labels.issuing),
    token.certificate(labels.root),
  ]);
  const missing = Object.entries({ ra, issuing, root })
    .filter(([, der]) => der === undefined)
    .map(([role]) => `${role} ("${labels[role as keyof typeof labels]}")`);
  if (!ra || !issuing || !root) {
    throw new Error(
      `HSM token "${token.tokenLabel}" lacks the ${missing.join(', ')} certificate(s) of profile "${profileName}"; ` +
        'run `npm run hsm:init` (or start the stack) to provision them',
    );
  }
  return { ra, issuing, root };
}

/**
 * The configured CA of a profile whose key a rotation destroyed (workflows/ca-rotation.ts): the key
 * is gone from the CA token but the RA token still keeps its certificate. Provisioning must not
 * make a new key under that label; the profile issues from a later generation (ca_generations).
 */
async function retiredByRotation(
  caToken: HsmToken,
  raToken: HsmToken,
  keyLabel: string,
): Promise<Uint8Array | undefined> {
  if (await caToken.publicKey(keyLabel)) return undefined;
  return raToken.certificate(keyLabel);
}

async function ensureIssuingCa(
  token: HsmToken,
  rootToken: HsmToken,
  ca: LocalCaConfig,
  rootKeyLabel: string,
  rootCert: Uint8Array,
  notBefore: Date,
): Promise<Uint8Array> {
  const { keyLabel, keyAlgorithm, subject } = ca;
  const spki = await ensureKeyPair(token, keyLabel, keyAlgorithm, 'signing');
  return ensureCertificate(token, keyLabel, spki, () =>
    issue(rootToken, rootKeyLabel, rootCert, {
      subject: encodeName(subject),
      subjectPublicKeyInfo: spki,
      notBefore,
      notAfter: capped(notBefore.getTime() + BACKDATE_MS + ISSUING_CA_VALIDITY_MS, rootCert),
      extensions: { ca: { pathLength: 0 }, keyUsages: ['keyCertSign', 'cRLSign', 'digitalSignature'] },
    }),
  );
}

export async function ensureKeyPair(
  token: HsmToken,
  label: string,
  alg: KeyAlgorithm,
  role: KeyRole,
): Promise<Uint8Array> {
  const existing = await token.publicKey(label);
  if (!existing) return (await token.generateKeyPair(label, alg, role)).spki;
  const turnedOff = await token.enforceKeyUsage(label, role);
  if (turnedOff.length > 0)
    componentLogger('hsm').warn(
      { key: label, tokenLabel: token.tokenLabel, turnedOff },
      'key usages turned off (the key may no longer do these)',
    );
  return existing;
}

/** A public certificate kept in another token (the RA token holds copies of the CA certificates). */
export async function ensureCopy(token: HsmToken, label: string, der: Uint8Array): Promise<void> {
  const current = await token.certificate(label);
  if (current && Buffer.from(current).equals(Buffer.from(der))) return;
  await token.storeCertificate(label, der);
}

/** Returns the stored certificate, after checking it certifies `spki`, or builds and stores one. */
export async function ensureCertificate(
  token: HsmToken,
  label: string,
  spki: Uint8Array,
  build: () => Promise<Uint8Array>,
): Promise<Uint8Array> {
  const existing = await token.certificate(label);
  if (existing) {
    if (!Buffer.from(certificateInfo(existing).subjectPublicKeyInfo).equals(Buffer.from(spki))) {
      throw new Error(
        `HSM token "${token.tokenLabel}": certificate "${label}" does not certify the key it belongs to; ` +
          'remove the stale certificate to have it re-issued',
      );
    }
    return existing;
  }
  const der = await build();
  await token.storeCertificate(label, der);
  return der;
}

export async function issue(
  token: HsmToken,
  issuerKeyLabel: string,
  issuerCert: Uint8Array,
  params: Omit<CertificateParams, 'issuer' | 'serialNumber' | 'hash'>,
): Promise<Uint8Array> {
  const signer = await token.signer(issuerKeyLabel);
  return buildCertificate({
    ...params,
    serialNumber: newSerial(),
    issuer: { kind: 'ca', certificate: issuerCert, signer },
    hash: hashFor(signer),
  });
}

export function capped(notAfterMs: number, issuerCert: Uint8Array): Date {
  return new Date(Math.min(notAfterMs, certificateInfo(issuerCert).notAfter.getTime()));
}

export function hashFor(signer: Signer): HashName {
  return signer.keyAlgorithm === 'ec-p384' ? 'SHA-384' : 'SHA-256';
}

/** 128 random bits, positive (RFC 5280 4.1.2.2; CA/B Forum asks for at least 64 bits of entropy). */
export function newSerial(): Uint8Array {
  const serial = randomBytes(16);
  serial[0] = (serial[0]! & 0x7f) | 0x01;
  return serial;
}

/**
 * Where the issuing CA certificate of a profile is kept in the token: under the CA key's label for
 * our own CA, under `upstream-ca/<profile>` for an upstream CA (stored when its trust chain is fetched).
 */
export function issuingCertificateLabel(profile: Profile): string {
  return profile.ca.type === 'local-hsm' ? profile.ca.keyLabel : `upstream-ca/${profile.name}`;
}

/**
 * A new generation of a profile's issuing CA (workflows/ca-rotation.ts): its key under `keyLabel` in
 * the CA token, its certificate from the root, same subject and extensions as the configured CA.
 * Idempotent per label: a retry finds the key and certificate it made. The root key signs, so this
 * runs where the root is reachable: a `pki-hsm` worker when the root lives in the CA token, else the
 * ceremony (`npm run ca:rollover`).
 */
export async function createIssuingCaGeneration(
  tokens: TokenSet,
  config: PkiConfig,
  profileName: string,
  keyLabel: string,
  now: Date = new Date(),
): Promise<Uint8Array> {
  const profile = config.profiles.find((p) => p.name === profileName);
  if (!profile) throw new Error(`no profile named "${profileName}" in the PKI configuration`);
  if (profile.ca.type !== 'local-hsm')
    throw new Error(`profile "${profileName}" has an upstream CA: its rollover happens at that CA`);
  const rootToken = tokens.get('root');
  const rootCert = await rootToken.certificate(config.rootCa.keyLabel);
  if (!rootCert || !(await rootToken.publicKey(config.rootCa.keyLabel)))
    throw new RootUnreachableError(rootToken.tokenLabel);
  return ensureIssuingCa(
    tokens.get('ca'),
    rootToken,
    { ...profile.ca, keyLabel },
    config.rootCa.keyLabel,
    rootCert,
    new Date(now.getTime() - BACKDATE_MS),
  );
}

/** The root key is not in the tokens this process holds: the next CA is made by the ceremony. */
export class RootUnreachableError extends Error {
  constructor(tokenLabel: string) {
    super(
      `the root CA key is not in HSM token "${tokenLabel}": prepare the next CA with the ceremony ` +
        '(`npm run ca:rollover -- --profile <name>`), which opens the root token',
    );
    this.name = 'RootUnreachableError';
  }
}

/**
 * The RA certificate of a profile for the RA key `raSpki` (public), issued by one generation of its
 * CA: a rotation re-issues it so GetCACert's RA certificate chains to the CA that is current. The RA
 * key stays in the RA token; only its public key travels.
 */
export async function issueRaCertificate(
  caToken: HsmToken,
  config: PkiConfig,
  profileName: string,
  ca: { keyLabel: string; certificate: Uint8Array },
  raSpki: Uint8Array,
  now: Date = new Date(),
): Promise<Uint8Array> {
  return issue(caToken, ca.keyLabel, ca.certificate, {
    subject: encodeName([...config.ra.subject, ['OU', profileName]]),
    subjectPublicKeyInfo: raSpki,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: capped(now.getTime() + RA_VALIDITY_MS, ca.certificate),
    extensions: { keyUsages: ['digitalSignature', 'keyEncipherment'] },
  });
}
