/**
 * GlobalSign Atlas as a profile's issuing CA, reached over mutual TLS from the `pki` queue. Atlas
 * has no idempotency key, so "submit once per enrollment" is ours to keep: the upstream_submissions
 * row is written BEFORE the POST, and a retry reads it to resume polling instead of submitting
 * again. What is asked of Atlas is the profile's template applied to the admitted identity, never the
 * CSR's own subject; Atlas publishes the CRL and OCSP of what it issues, so a revocation is sent there.
 */
import { asyncLocalStorage } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { and, eq } from 'drizzle-orm';
import type { Profile } from '../../../config/profile-types.js';
import type { Database } from '../../../db/client.js';
import { certificates, upstreamSubmissions } from '../../../db/schema.js';
import { fromPem, toPem } from '../../../pki/pem.js';
import { attributeType } from '../../../pki/x509/attribute-types.js';
import { certificateInfo } from '../../../pki/x509/certificate.js';
import { FAILURE, TASK_QUEUE } from '../../../workflows/definitions.js';
import type { CaAdapter } from '../adapter.js';
import type { IssuanceRequest } from '../issuance-request.js';
import {
  type AtlasCertificateRequest,
  type AtlasClient,
  type AtlasConfig,
  AtlasPolicyError,
  AtlasUnavailableError,
  atlasClientFromConfig,
} from './client.js';

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

/** The issuing CA name certificates.issuing_ca records for an Atlas profile. */
export const atlasIssuingCa = (profile: Profile) => `atlas/${profile.name}`;

export function atlasAdapter(cfg: AtlasConfig, profile: Profile, deps: AtlasIssuerDeps): CaAdapter {
  const client = deps.client ?? atlasClientFromConfig(cfg, deps.env);
  const heartbeat = deps.heartbeat ?? ((d: unknown) => asyncLocalStorage.getStore()?.heartbeat(d));
  const sleep =
    deps.sleep ??
    ((ms: number) => asyncLocalStorage.getStore()?.sleep(ms) ?? new Promise<void>((r) => setTimeout(r, ms)));
  const { db } = deps;

  async function poll(enrollmentId: string, serial: string, request: IssuanceRequest): Promise<Uint8Array> {
    for (let round = 1; ; round++) {
      const found = await call(() => client.get(serial));
      if (found.kind === 'ready') {
        if (found.status.toUpperCase() === 'REVOKED') {
          throw ApplicationFailure.nonRetryable(
            `Atlas certificate ${serial} was revoked before it was delivered`,
            'UpstreamCertificateRevoked',
          );
        }
        const der = certifiedKeyChecked(found.certificatePem, request);
        await setState(enrollmentId, 'issued', serial);
        return der;
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
    queue: TASK_QUEUE,
    owns: (issuingCa) => issuingCa === atlasIssuingCa(profile),

    async issue(request) {
      return { der: await submitOrResume(request), issuingCa: atlasIssuingCa(profile) };
    },

    async revoked(issuingCa, revoked) {
      for (const certificate of revoked) {
        // Atlas names the certificate by the serial it returned at submission, kept with the submission.
        const [row] = await db
          .select({ upstreamId: upstreamSubmissions.upstreamId })
          .from(certificates)
          .innerJoin(upstreamSubmissions, eq(upstreamSubmissions.enrollmentId, certificates.enrollmentId))
          .where(
            and(eq(certificates.issuingCa, issuingCa), eq(certificates.serialHex, certificate.serialHex)),
          );
        const serial = row?.upstreamId ?? certificate.serialHex.toUpperCase();
        // A retry asks first, so Atlas is asked to revoke once.
        const current = await call(() => client.get(serial));
        if (current.kind === 'ready' && current.status.toUpperCase() === 'REVOKED') continue;
        await call(() => client.revoke(serial, certificate.reason, certificate.revokedAt));
      }
    },
  };

  async function submitOrResume(input: IssuanceRequest): Promise<Uint8Array> {
    const [existing] = await db
      .select()
      .from(upstreamSubmissions)
      .where(eq(upstreamSubmissions.enrollmentId, input.enrollmentId));
    if (existing) return resume(existing, input);

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
      return resume(row, input);
    }

    let serial: string;
    try {
      serial = await client.submit(requestBody(input, profile));
    } catch (e) {
      // Atlas certainly created nothing: forget the claim so a retry (or an operator's) can submit.
      if (e instanceof AtlasPolicyError || (e instanceof AtlasUnavailableError && !e.mayHaveBeenProcessed)) {
        await db.delete(upstreamSubmissions).where(eq(upstreamSubmissions.enrollmentId, input.enrollmentId));
      }
      throw mapError(e);
    }
    await setState(input.enrollmentId, 'submitted', serial);
    return poll(input.enrollmentId, serial, input);
  }

  function resume(
    row: typeof upstreamSubmissions.$inferSelect,
    request: IssuanceRequest,
  ): Promise<Uint8Array> {
    if ((row.state === 'submitted' || row.state === 'issued') && row.upstreamId) {
      return poll(row.enrollmentId, row.upstreamId, request);
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

function mapError(e: unknown): Error {
  if (e instanceof AtlasPolicyError) {
    // The workflow turns this type into a SCEP FAILURE badRequest carrying the description.
    return ApplicationFailure.nonRetryable(e.description, FAILURE.upstreamPolicy);
  }
  // Plain errors are retried by Temporal, then escalated to operators.
  return e instanceof Error ? e : new Error(String(e));
}

/** The certificate Atlas returned, refused unless it certifies this request's key. */
function certifiedKeyChecked(pem: string, request: IssuanceRequest): Uint8Array {
  const der = pemToDer(pem);
  const info = certificateInfo(der);
  if (!Buffer.from(info.subjectPublicKeyInfo).equals(Buffer.from(request.csr.subjectPublicKeyInfo))) {
    // Wrong record (e.g. a mixed-up serial): handing it out would give the device someone else's cert.
    throw ApplicationFailure.nonRetryable(
      `Atlas certificate ${info.serialHex} does not certify the key of this request`,
      'UpstreamCertificateMismatch',
    );
  }
  return der;
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

/** The Atlas request for a checked issuance request: subject and SANs from the profile's template. */
export function requestBody(request: IssuanceRequest, profile: Profile): AtlasCertificateRequest {
  const { subjectAltNames } = request.certificate;
  const san = Object.fromEntries(
    Object.entries({
      dns_names: subjectAltNames.dns,
      emails: subjectAltNames.email,
      ip_addresses: subjectAltNames.ip,
      uris: subjectAltNames.uri,
    }).filter(([, v]) => v.length > 0),
  );
  // RFC 5480: an EC key cannot encipher keys.
  const usages = profile.template.keyUsages.filter(
    (u) => !(request.csr.publicKey.algorithm === 'ec' && u === 'keyEncipherment'),
  );
  return {
    validity: { not_before: unixSeconds(request.notBefore), not_after: unixSeconds(request.notAfter) },
    subject_dn: subjectDn(request.certificate.subject),
    ...(Object.keys(san).length > 0 ? { san } : {}),
    extended_key_usages: profile.template.extendedKeyUsages,
    ...(usages.length > 0
      ? { key_usages: Object.fromEntries(usages.map((u) => [KEY_USAGE_FIELDS[u] ?? u, true])) }
      : {}),
    public_key: toPem(request.csr.der, 'CERTIFICATE REQUEST'),
  };
}

function subjectDn(rdns: Array<[string, string]>): Record<string, unknown> {
  const dn: Record<string, unknown> = {};
  const units: string[] = [];
  const extra: Array<{ type: string; value: string }> = [];
  for (const [type, value] of rdns) {
    const oid = attributeType(type)?.oid ?? type;
    const field = SUBJECT_FIELDS[oid];
    if (oid === OU) units.push(value);
    else if (field && !(field in dn)) dn[field] = value;
    else extra.push({ type: oid, value });
  }
  if (units.length > 0) dn.organizational_unit = units;
  if (extra.length > 0) dn.extra_attributes = extra;
  return dn;
}

const unixSeconds = (at: Date) => Math.floor(at.getTime() / 1000);

/** Atlas speaks PEM; a body without a certificate in it is Atlas's error, named as such. */
export function pemToDer(pem: string): Uint8Array {
  try {
    return fromPem(pem);
  } catch {
    throw new Error('Atlas returned a certificate that is not PEM');
  }
}
