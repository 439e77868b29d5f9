/**
 * What every CA adapter checks before it signs anything, whatever the workflow sent: the request is
 * exactly the shape of IssueCertificateInput, it belongs to an enrollment of that profile that was
 * admitted (and approved where approval was needed) for this very CSR, the device was not revoked
 * since, the validity stays within the profile, and the subject is what the profile's template
 * gives the admitted identity. A forged workflow input cannot widen a certificate.
 */
import { createHash } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import { and, eq } from 'drizzle-orm';
import { z } from 'zod';
import type { Profile } from '../../config/profile-types.js';
import type { Database } from '../../db/client.js';
import { admissions, devices } from '../../db/schema.js';
import type { VerifiedIdentity } from '../../pki/admission/identity.js';
import { applySubjectTemplate, type CertificateSubject } from '../../pki/admission/subject-template.js';
import { type CsrInfo, parseCsr } from '../../pki/x509/csr.js';
import type { IssueCertificateInput } from '../../workflows/activities.js';
import { FAILURE } from '../../workflows/definitions.js';

/** A request the adapter may sign: everything in it comes from the profile and the admission. */
export interface IssuanceRequest {
  profile: Profile;
  enrollmentId: string;
  deviceId: string;
  identity: VerifiedIdentity;
  csr: CsrInfo;
  certificate: CertificateSubject;
  notBefore: Date;
  notAfter: Date;
}

/** Clock difference tolerated between the workflow (which chose the validity) and this activity. */
const CLOCK_SLACK_MS = 10 * 60 * 1000;

/** Exactly IssueCertificateInput: an extra field (a key label, an extension, a CA flag) is a forgery. */
const inputSchema = z
  .object({
    profile: z.string().min(1),
    enrollmentId: z.string().min(1),
    csr: z.string().min(1),
    notBefore: z.iso.datetime(),
    notAfter: z.iso.datetime(),
  })
  .strict();

/** The input as the workflow must have sent it; checks that need neither the database nor the clock. */
export type IssuanceInput = z.infer<typeof inputSchema>;

export function parseIssuanceInput(profile: Profile, raw: IssueCertificateInput): IssuanceInput {
  const parsed = inputSchema.safeParse(raw);
  if (!parsed.success)
    refuse(
      `malformed issuance request: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(input)'}: ${i.message}`).join('; ')}`,
    );
  const input = parsed.data;
  if (input.profile !== profile.name || !input.enrollmentId.startsWith(`enroll/${profile.name}/`))
    refuse(`enrollment ${input.enrollmentId} does not belong to profile ${profile.name}`);
  const { validitySeconds, backdateSeconds } = profile.template;
  const notBefore = Date.parse(input.notBefore);
  const notAfter = Date.parse(input.notAfter);
  if (notAfter <= notBefore) refuse('notAfter is not after notBefore');
  if (notAfter - notBefore > (validitySeconds + backdateSeconds) * 1000 + CLOCK_SLACK_MS)
    refuse(`requested validity exceeds the profile's ${validitySeconds} s`);
  return input;
}

/**
 * A retried issuance finds the certificate its first attempt stored: it gets it back only when the
 * request is the one that certificate answered (same profile, the admitted CSR), never for a
 * forged input that borrows a real enrollment id.
 */
export async function checkRetriedIssuance(
  db: Database,
  input: IssuanceInput,
  stored: { profile: string },
): Promise<void> {
  if (stored.profile !== input.profile)
    refuse(`enrollment ${input.enrollmentId} was issued under profile ${stored.profile}`);
  const [admission] = await db
    .select({ csrSha256: admissions.csrSha256 })
    .from(admissions)
    .where(eq(admissions.enrollmentId, input.enrollmentId));
  const csrSha256 = createHash('sha256').update(Buffer.from(input.csr, 'base64')).digest('hex');
  if (admission?.csrSha256 !== csrSha256)
    refuse(`the CSR is not the one enrollment ${input.enrollmentId} was admitted with`);
}

export async function checkIssuanceRequest(
  db: Database,
  profile: Profile,
  input: IssuanceInput,
  now = new Date(),
): Promise<IssuanceRequest> {
  const csrDer = Buffer.from(input.csr, 'base64');
  const csr = await parseCsr(csrDer);
  if (!csr.ok || !csr.csr.signatureValid)
    throw ApplicationFailure.nonRetryable(
      csr.ok ? 'CSR signature does not verify' : csr.message,
      FAILURE.invalidCsr,
    );
  checkKey(profile, csr.csr);

  const [admission] = await db
    .select()
    .from(admissions)
    .where(eq(admissions.enrollmentId, input.enrollmentId));
  if (!admission) refuse(`enrollment ${input.enrollmentId} was never admitted`);
  if (admission.profile !== profile.name)
    refuse(`enrollment ${input.enrollmentId} was admitted for profile ${admission.profile}`);
  const csrSha256 = createHash('sha256').update(csrDer).digest('hex');
  if (admission.csrSha256 !== csrSha256)
    refuse(`the CSR is not the one enrollment ${input.enrollmentId} was admitted with`);
  if (admission.approvalRequired && !admission.approvedBy)
    refuse(
      `enrollment ${input.enrollmentId} replaces a device's certificate and waits for an operator's approval`,
    );

  // Revoked or removed after this admission: nothing more for the device until it is readmitted.
  const [device] = await db
    .select({ blockedAt: devices.blockedAt, blockedReason: devices.blockedReason })
    .from(devices)
    .where(and(eq(devices.profile, profile.name), eq(devices.deviceId, admission.deviceId)));
  if (device?.blockedAt && device.blockedAt > admission.createdAt)
    refuse(
      `device ${admission.deviceId} was blocked after this admission (${device.blockedReason ?? 'revoked'})`,
    );

  const notBefore = new Date(input.notBefore);
  const notAfter = new Date(input.notAfter);
  const { validitySeconds, backdateSeconds } = profile.template;
  if (notAfter.getTime() > now.getTime() + validitySeconds * 1000 + CLOCK_SLACK_MS)
    refuse(`notAfter ${input.notAfter} is beyond the profile's ${validitySeconds} s from now`);
  if (notBefore.getTime() < now.getTime() - backdateSeconds * 1000 - CLOCK_SLACK_MS)
    refuse(`notBefore ${input.notBefore} is backdated beyond the profile's ${backdateSeconds} s`);

  const identity = admission.identity as VerifiedIdentity;
  const templated = applySubjectTemplate(
    {
      subject: profile.template.subject,
      subjectAltNames: profile.template.subjectAltNames,
      csrExtras: profile.template.csrExtras,
      requesterChosenCommonName: profile.template.requesterChosenCommonName,
    },
    identity,
    csr.csr,
  );
  if (!templated.ok) refuse(templated.reason);
  return {
    profile,
    enrollmentId: input.enrollmentId,
    deviceId: admission.deviceId,
    identity,
    csr: csr.csr,
    certificate: templated.certificate,
    notBefore,
    notAfter,
  };
}

/** The profile's key rules, checked again where the key is certified. */
function checkKey(profile: Profile, csr: CsrInfo): void {
  const key = csr.publicKey;
  if (key.algorithm === 'rsa' && key.bits < profile.template.minRsaBits)
    refuse(`RSA key of ${key.bits} bits is below the profile minimum of ${profile.template.minRsaBits}`);
  if (key.algorithm === 'ec' && !(profile.template.allowedCurves as string[]).includes(key.curve))
    refuse(`EC curve ${key.curve} is not allowed by the profile`);
  if (key.algorithm === 'other') refuse(`public key algorithm ${key.oid} is not supported`);
}

function refuse(reason: string): never {
  throw ApplicationFailure.nonRetryable(reason, FAILURE.refusedIssuance);
}
