/**
 * GlobalSign Atlas as a profile's issuing CA. Atlas has no idempotency key, so "submit once per
 * enrollment" is ours to keep: the upstream_submissions row is written BEFORE the POST, and a retry
 * reads it to resume polling instead of submitting again.
 */
import { asyncLocalStorage } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { eq } from 'drizzle-orm';
import * as pkijs from 'pkijs';
import type { Profile } from '../../config/profile-types.js';
import type { Database } from '../../db/client.js';
import { upstreamSubmissions } from '../../db/schema.js';
import { issuingCertificateLabel } from '../../hsm/provision.js';
import type { HsmToken } from '../../hsm/token.js';
import { certificateInfo } from '../../pki/x509/certificate.js';
import { type CsrInfo, parseCsr } from '../../pki/x509/csr.js';
import { stringValue } from '../../pki/x509/name.js';
import type { IssuedCertificate } from '../../workflows/definitions.js';
import type { IssueCertificateInput } from '../types.js';
import {
  type AtlasCertificateRequest,
  type AtlasClient,
  type AtlasConfig,
  AtlasPolicyError,
  AtlasUnavailableError,
  atlasClientFromConfig,
} from './atlas-client.js';
import type { CertificateIssuer } from './issuer.js';

export interface AtlasIssuerDeps {
  db: Database;
  env?: NodeJS.ProcessEnv;
  /** Defaults to the running activity's heartbeat (the activity has a heartbeat timeout). */
  heartbeat?: (details: unknown) => void;
  /** Defaults to the activity context's sleep, which ends early when the activity is cancelled. */
  sleep?: (ms: number) => Promise<void>;
  /** Tests inject a client; otherwise one is built from the config. */
  client?: AtlasClient;
}

export function atlasIssuer(cfg: AtlasConfig, profile: Profile, deps: AtlasIssuerDeps): CertificateIssuer {
  const client = deps.client ?? atlasClientFromConfig(cfg, deps.env);
  const heartbeat = deps.heartbeat ?? ((d: unknown) => asyncLocalStorage.getStore()?.heartbeat(d));
  const sleep =
    deps.sleep ??
    ((ms: number) => asyncLocalStorage.getStore()?.sleep(ms) ?? new Promise<void>((r) => setTimeout(r, ms)));
  const { db } = deps;

  async function poll(enrollmentId: string, serial: string, csr: CsrInfo): Promise<IssuedCertificate> {
    for (let round = 1; ; round++) {
      const found = await call(() => client.get(serial));
      if (found.kind === 'ready') {
        if (found.status.toUpperCase() === 'REVOKED') {
          throw ApplicationFailure.nonRetryable(
            `Atlas certificate ${serial} was revoked before it was delivered`,
            'UpstreamCertificateRevoked',
          );
        }
        const issued = toIssued(found.certificatePem, profile.name, csr);
        await setState(enrollmentId, 'issued', serial);
        return issued;
      }
      if (found.kind === 'not-found') {
        // Atlas gave us this serial; losing it is not the device's fault. Retries, then escalation.
        throw new Error(`Atlas does not know certificate ${serial} (404) it assigned to this enrollment`);
      }
      heartbeat({ upstreamId: serial, round });
      await sleep(cfg.pollIntervalMs);
    }
  }

  async function setState(enrollmentId: string, state: 'submitted' | 'issued', upstreamId: string) {
    await db
      .update(upstreamSubmissions)
      .set({ state, upstreamId, updatedAt: new Date() })
      .where(eq(upstreamSubmissions.enrollmentId, enrollmentId));
  }

  return {
    async issue(input: IssueCertificateInput): Promise<IssuedCertificate> {
      const csr = await readCsr(input.csr);
      const [existing] = await db
        .select()
        .from(upstreamSubmissions)
        .where(eq(upstreamSubmissions.enrollmentId, input.enrollmentId));
      if (existing) return resume(existing, csr);

      const claimed = await db
        .insert(upstreamSubmissions)
        .values({ enrollmentId: input.enrollmentId, profile: profile.name, state: 'submitting' })
        .onConflictDoNothing()
        .returning({ id: upstreamSubmissions.enrollmentId });
      if (claimed.length === 0) {
        // Another attempt claimed it between our read and insert: follow its row.
        const [row] = await db
          .select()
          .from(upstreamSubmissions)
          .where(eq(upstreamSubmissions.enrollmentId, input.enrollmentId));
        if (!row) throw new Error(`upstream submission of ${input.enrollmentId} vanished`);
        return resume(row, csr);
      }

      let serial: string;
      try {
        serial = await client.submit(requestBody(input, csr, profile));
      } catch (e) {
        // Atlas certainly created nothing: forget the claim so a retry (or an operator's) can submit.
        if (
          e instanceof AtlasPolicyError ||
          (e instanceof AtlasUnavailableError && !e.mayHaveBeenProcessed)
        ) {
          await db
            .delete(upstreamSubmissions)
            .where(eq(upstreamSubmissions.enrollmentId, input.enrollmentId));
        }
        throw mapError(e);
      }
      await setState(input.enrollmentId, 'submitted', serial);
      return poll(input.enrollmentId, serial, csr);
    },
  };

  function resume(row: typeof upstreamSubmissions.$inferSelect, csr: CsrInfo): Promise<IssuedCertificate> {
    if ((row.state === 'submitted' || row.state === 'issued') && row.upstreamId) {
      return poll(row.enrollmentId, row.upstreamId, csr);
    }
    throw ApplicationFailure.nonRetryable(
      `Atlas submission of enrollment ${row.enrollmentId} (profile ${row.profile}) was started at ` +
        `${row.createdAt.toISOString()} but its outcome is unknown, check Atlas before retrying`,
      'UpstreamSubmissionUnknown',
    );
  }

  async function call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw mapError(e);
    }
  }
}

/**
 * Fetches Atlas' trust chain and keeps it in the token: the issuing CA under
 * issuingCertificateLabel(profile) (what loadProfileChain reads) and the Atlas root beside it, so
 * GetCACert can serve both. Storing an unchanged certificate again is skipped.
 */
export async function provisionAtlasChain(
  token: HsmToken,
  profile: Profile,
  cfg: AtlasConfig,
  env: NodeJS.ProcessEnv = process.env,
  client: AtlasClient = atlasClientFromConfig(cfg, env),
): Promise<{ issuing: Uint8Array; root: Uint8Array | undefined }> {
  const chain = (await client.trustchain()).map(pemToDer);
  const [issuing, root] = chain;
  if (!issuing) throw new Error(`Atlas returned an empty trust chain for profile ${profile.name}`);
  if (!certificateInfo(issuing).isCa) {
    throw new Error(`Atlas trust chain of profile ${profile.name} starts with a non-CA certificate`);
  }
  await storeIfChanged(token, issuingCertificateLabel(profile), issuing);
  if (root) await storeIfChanged(token, upstreamRootLabel(profile), root);
  return { issuing, root };
}

export function upstreamRootLabel(profile: Profile): string {
  return `upstream-root/${profile.name}`;
}

async function storeIfChanged(token: HsmToken, label: string, der: Uint8Array): Promise<void> {
  const current = await token.certificate(label);
  if (current && Buffer.from(current).equals(Buffer.from(der))) return;
  await token.storeCertificate(label, der);
}

async function readCsr(base64Der: string): Promise<CsrInfo> {
  const parsed = await parseCsr(Buffer.from(base64Der, 'base64'));
  if (!parsed.ok || !parsed.csr.signatureValid) {
    throw ApplicationFailure.nonRetryable(
      parsed.ok ? 'CSR signature does not verify' : parsed.message,
      'InvalidCsr',
    );
  }
  return parsed.csr;
}

function mapError(e: unknown): Error {
  if (e instanceof AtlasPolicyError) {
    // The workflow turns this type into a SCEP FAILURE badRequest carrying the description.
    return ApplicationFailure.nonRetryable(e.description, 'UpstreamPolicyViolation');
  }
  // Plain errors are retried by Temporal, then escalated to operators.
  return e instanceof Error ? e : new Error(String(e));
}

function toIssued(pem: string, profileName: string, csr: CsrInfo): IssuedCertificate {
  const der = pemToDer(pem);
  const info = certificateInfo(der);
  if (!Buffer.from(info.subjectPublicKeyInfo).equals(Buffer.from(csr.subjectPublicKeyInfo))) {
    // Wrong record (e.g. a mixed-up serial): handing it out would give the device someone else's cert.
    throw ApplicationFailure.nonRetryable(
      `Atlas certificate ${info.serialHex} does not certify the key of this request`,
      'UpstreamCertificateMismatch',
    );
  }
  return {
    certificate: Buffer.from(der).toString('base64'),
    serialHex: info.serialHex,
    issuingCa: `atlas/${profileName}`,
    notBefore: info.notBefore.toISOString(),
    notAfter: info.notAfter.toISOString(),
    sha256Hex: info.sha256Hex,
  };
}

// Atlas subject_dn field per attribute OID; other attributes travel as extra_attributes.
const SUBJECT_FIELDS: Record<string, string> = {
  '2.5.4.3': 'common_name',
  '2.5.4.6': 'country',
  '2.5.4.8': 'state',
  '2.5.4.7': 'locality',
  '2.5.4.9': 'street_address',
  '2.5.4.10': 'organization',
  '2.5.4.5': 'serial_number',
  '2.5.4.4': 'surname',
  '2.5.4.42': 'given_name',
  '1.2.840.113549.1.9.1': 'email',
};
const OU = '2.5.4.11';

const KEY_USAGE_FIELDS: Record<string, string> = {
  digitalSignature: 'digital_signature',
  nonRepudiation: 'content_commitment',
  keyEncipherment: 'key_encipherment',
  dataEncipherment: 'data_encipherment',
  keyAgreement: 'key_agreement',
  keyCertSign: 'key_certificate_sign',
  cRLSign: 'crl_sign',
};

export function requestBody(
  input: IssueCertificateInput,
  csr: CsrInfo,
  profile: Profile,
): AtlasCertificateRequest {
  const san = Object.fromEntries(
    Object.entries({
      dns_names: csr.subjectAltNames.dns,
      emails: csr.subjectAltNames.email,
      ip_addresses: csr.subjectAltNames.ip,
      uris: csr.subjectAltNames.uri,
    }).filter(([, v]) => v.length > 0),
  );
  // RFC 5480: an EC key cannot encipher keys.
  const usages = profile.template.keyUsages.filter(
    (u) => !(csr.publicKey.algorithm === 'ec' && u === 'keyEncipherment'),
  );
  return {
    validity: { not_before: unixSeconds(input.notBefore), not_after: unixSeconds(input.notAfter) },
    subject_dn: subjectDn(csr.subject),
    ...(Object.keys(san).length > 0 ? { san } : {}),
    extended_key_usages: profile.template.extendedKeyUsages,
    ...(usages.length > 0
      ? { key_usages: Object.fromEntries(usages.map((u) => [KEY_USAGE_FIELDS[u] ?? u, true])) }
      : {}),
    public_key: derToPem(csr.der, 'CERTIFICATE REQUEST'),
  };
}

function subjectDn(nameDer: Uint8Array): Record<string, unknown> {
  const dn: Record<string, unknown> = {};
  const units: string[] = [];
  const extra: Array<{ type: string; value: string }> = [];
  for (const tv of pkijs.RelativeDistinguishedNames.fromBER(nameDer).typesAndValues) {
    const value = stringValue(tv.value);
    if (value === undefined) {
      throw ApplicationFailure.nonRetryable(`subject attribute ${tv.type} is not text`, 'InvalidCsr');
    }
    const field = SUBJECT_FIELDS[tv.type];
    if (tv.type === OU) units.push(value);
    else if (field && !(field in dn)) dn[field] = value;
    else extra.push({ type: tv.type, value });
  }
  if (units.length > 0) dn.organizational_unit = units;
  if (extra.length > 0) dn.extra_attributes = extra;
  return dn;
}

const unixSeconds = (iso: string) => Math.floor(new Date(iso).getTime() / 1000);

function pemToDer(pem: string): Uint8Array {
  const body = /-----BEGIN [^-]+-----([\s\S]+?)-----END [^-]+-----/.exec(pem)?.[1];
  if (!body) throw new Error('Atlas returned a certificate that is not PEM');
  return new Uint8Array(Buffer.from(body.replace(/\s+/g, ''), 'base64'));
}

function derToPem(der: Uint8Array, label: string): string {
  const lines =
    Buffer.from(der)
      .toString('base64')
      .match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
