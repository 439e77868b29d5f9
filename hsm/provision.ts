/**
 * The CA hierarchy inside the token: root, one issuing CA per profile, the RA certificates, and the
 * field-encryption key. Idempotent: each start creates only what is missing, so a profile added to
 * the config gets its CA on the next start and nothing existing is ever replaced.
 */
import { randomBytes } from 'node:crypto';
import type { LocalCaConfig, PkiConfig, Profile } from '../config/profile-types.js';
import type { HashName, KeyAlgorithm, Signer } from '../pki/keys.js';
import { buildCertificate, type CertificateParams, certificateInfo } from '../pki/x509/certificate.js';
import { encodeName } from '../pki/x509/name.js';
import { HsmKeyNotFoundError, type HsmToken } from './token.js';

export const FIELD_ENCRYPTION_KEY_LABEL = 'field-encryption';

const DAY_MS = 86_400_000;
const ISSUING_CA_VALIDITY_MS = 5 * 365 * DAY_MS;
const RA_VALIDITY_MS = 2 * 365 * DAY_MS;
// Devices with a lagging clock must still accept a chain minted a moment ago.
const BACKDATE_MS = 60 * 60 * 1000;

export function raCertificateLabel(config: PkiConfig, profileName: string): string {
  return `${config.ra.keyLabel}/${profileName}`;
}

/** Provisioning runs of one token are serialized: two at once would both create the missing keys. */
const provisioning = new WeakMap<HsmToken, Promise<void>>();

export function ensurePkiHierarchy(
  token: HsmToken,
  config: PkiConfig,
  now: Date = new Date(),
): Promise<void> {
  const previous = provisioning.get(token) ?? Promise.resolve();
  const run = previous.catch(() => {}).then(() => provision(token, config, now));
  provisioning.set(token, run);
  return run;
}

async function provision(token: HsmToken, config: PkiConfig, now: Date): Promise<void> {
  const notBefore = new Date(now.getTime() - BACKDATE_MS);
  const root = config.rootCa;
  const rootSpki = await ensureKeyPair(token, root.keyLabel, root.keyAlgorithm);
  const rootCert = await ensureCertificate(token, root.keyLabel, rootSpki, async () => {
    const signer = await token.signer(root.keyLabel);
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

  const raSpki = await ensureKeyPair(token, config.ra.keyLabel, config.ra.keyAlgorithm);
  for (const profile of config.profiles) {
    // A profile whose CA is upstream (e.g. Atlas) has no key here: its RA certificate comes from our root.
    const ca = profile.ca;
    const raIssuer =
      ca.type === 'local-hsm'
        ? {
            keyLabel: ca.keyLabel,
            cert: await ensureIssuingCa(token, ca, root.keyLabel, rootCert, notBefore),
          }
        : { keyLabel: root.keyLabel, cert: rootCert };
    const issuingCert = raIssuer.cert;
    const raLabel = raCertificateLabel(config, profile.name);
    await ensureCertificate(token, raLabel, raSpki, () =>
      issue(token, raIssuer.keyLabel, issuingCert, {
        subject: encodeName([...config.ra.subject, ['OU', profile.name]]),
        subjectPublicKeyInfo: raSpki,
        notBefore,
        notAfter: capped(now.getTime() + RA_VALIDITY_MS, issuingCert),
        extensions: { keyUsages: ['digitalSignature', 'keyEncipherment'] },
      }),
    );
  }

  try {
    await token.sealer(FIELD_ENCRYPTION_KEY_LABEL);
  } catch (e) {
    if (!(e instanceof HsmKeyNotFoundError)) throw e;
    await token.generateSecretKey(FIELD_ENCRYPTION_KEY_LABEL);
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

async function ensureIssuingCa(
  token: HsmToken,
  ca: LocalCaConfig,
  rootKeyLabel: string,
  rootCert: Uint8Array,
  notBefore: Date,
): Promise<Uint8Array> {
  const { keyLabel, keyAlgorithm, subject } = ca;
  const spki = await ensureKeyPair(token, keyLabel, keyAlgorithm);
  return ensureCertificate(token, keyLabel, spki, () =>
    issue(token, rootKeyLabel, rootCert, {
      subject: encodeName(subject),
      subjectPublicKeyInfo: spki,
      notBefore,
      notAfter: capped(notBefore.getTime() + BACKDATE_MS + ISSUING_CA_VALIDITY_MS, rootCert),
      extensions: { ca: { pathLength: 0 }, keyUsages: ['keyCertSign', 'cRLSign', 'digitalSignature'] },
    }),
  );
}

async function ensureKeyPair(token: HsmToken, label: string, alg: KeyAlgorithm): Promise<Uint8Array> {
  const existing = await token.publicKey(label);
  if (existing) return existing;
  return (await token.generateKeyPair(label, alg)).spki;
}

/** Returns the stored certificate, after checking it certifies `spki`, or builds and stores one. */
async function ensureCertificate(
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

async function issue(
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

function capped(notAfterMs: number, issuerCert: Uint8Array): Date {
  return new Date(Math.min(notAfterMs, certificateInfo(issuerCert).notAfter.getTime()));
}

function hashFor(signer: Signer): HashName {
  return signer.keyAlgorithm === 'ec-p384' ? 'SHA-384' : 'SHA-256';
}

/** 128 random bits, positive (RFC 5280 4.1.2.2; CA/B Forum asks for at least 64 bits of entropy). */
function newSerial(): Uint8Array {
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
 * CA rollover (RFC 8894 4.7, GetNextCACert): the profile's next issuing CA lives beside the current
 * one, key and certificate under `<keyLabel>/next`, until an operator promotes it.
 */
export function nextIssuingCaLabel(profile: Profile): string | undefined {
  return profile.ca.type === 'local-hsm' ? `${profile.ca.keyLabel}/next` : undefined;
}

/** The next issuing CA certificate of a profile, when a rollover has been prepared. */
export async function nextIssuingCertificate(
  token: HsmToken,
  config: PkiConfig,
  profileName: string,
): Promise<Uint8Array | undefined> {
  const profile = config.profiles.find((p) => p.name === profileName);
  const label = profile && nextIssuingCaLabel(profile);
  return label ? token.certificate(label) : undefined;
}

/**
 * Creates the next issuing CA of a local-hsm profile: a new key in the token and a certificate from
 * the root, same subject and extensions as the current CA. Idempotent: an existing next CA is kept.
 */
export async function createNextIssuingCa(
  token: HsmToken,
  config: PkiConfig,
  profileName: string,
  now: Date = new Date(),
): Promise<{ certificate: Uint8Array; created: boolean }> {
  const profile = config.profiles.find((p) => p.name === profileName);
  if (!profile) throw new Error(`no profile named "${profileName}" in the PKI configuration`);
  if (profile.ca.type !== 'local-hsm')
    throw new Error(`profile "${profileName}" has an upstream CA: its rollover happens at that CA`);
  const label = nextIssuingCaLabel(profile)!;
  const existing = await token.certificate(label);
  if (existing) return { certificate: existing, created: false };
  const rootCert = await token.certificate(config.rootCa.keyLabel);
  if (!rootCert)
    throw new Error(`HSM token "${token.tokenLabel}" has no root CA certificate; run \`npm run hsm:init\``);
  const notBefore = new Date(now.getTime() - BACKDATE_MS);
  const certificate = await ensureIssuingCa(
    token,
    { ...profile.ca, keyLabel: label },
    config.rootCa.keyLabel,
    rootCert,
    notBefore,
  );
  return { certificate, created: true };
}
