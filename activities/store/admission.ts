/**
 * Admission: the profile's rules (pki/admission/rules.ts) applied to a verified identity and the
 * device's standing in the database, recorded before anything is issued. The CA adapters issue only
 * for an admission recorded here (activities/ca/issuance-request.ts).
 */
import { and, eq, gt, sql } from 'drizzle-orm';
import type { Profile } from '../../config/profile-types.js';
import type { Database } from '../../db/client.js';
import { admissions, auditEvents, certificates, devices } from '../../db/schema.js';
import { decideAdmission } from '../../pki/admission/rules.js';
import type { AdmissionDecision, EnrollmentActivities } from '../../workflows/activities.js';
import { recordAudit } from './audit.js';

type AdmitInput = Parameters<EnrollmentActivities['admitEnrollment']>[0];

export async function admitEnrollment(
  db: Database,
  profile: Profile,
  input: AdmitInput,
): Promise<AdmissionDecision> {
  // A retried activity answers from what it recorded the first time.
  const [recorded] = await db
    .select()
    .from(admissions)
    .where(eq(admissions.enrollmentId, input.enrollmentId));
  if (recorded) return decisionOf(recorded);

  const deviceId = input.identity.deviceId;
  const [device] = await db
    .select({ blockedAt: devices.blockedAt, blockedReason: devices.blockedReason })
    .from(devices)
    .where(and(eq(devices.profile, profile.name), eq(devices.deviceId, deviceId)));
  const [valid] = await db
    .select({ serialHex: certificates.serialHex })
    .from(certificates)
    .where(
      and(
        eq(certificates.profile, profile.name),
        eq(certificates.deviceId, deviceId),
        eq(certificates.status, 'valid'),
        gt(certificates.notAfter, sql`now()`),
      ),
    )
    .limit(1);
  const decision = decideAdmission(
    input.identity,
    {
      holdsValidCertificate: valid !== undefined,
      ...(device?.blockedAt
        ? { blocked: { at: device.blockedAt.toISOString(), reason: device.blockedReason ?? 'revoked' } }
        : {}),
    },
    profile.admission,
    input.renewalOf !== undefined,
  );
  if (decision.decision === 'refused') return decision;
  await db.transaction(async (tx) => {
    const inserted = await tx
      .insert(admissions)
      .values({
        enrollmentId: input.enrollmentId,
        profile: profile.name,
        deviceId,
        identity: input.identity,
        csrSha256: input.csrSha256,
        renewalOf: input.renewalOf ?? null,
        approvalRequired: decision.decision === 'awaiting-approval',
        readmits: decision.decision === 'admitted' && decision.readmitted,
      })
      .onConflictDoNothing()
      .returning({ id: admissions.enrollmentId });
    // The story so far goes on record with the admission (once: a concurrent retry wrote it).
    if (inserted.length > 0)
      await recordAudit(tx, {
        profile: profile.name,
        deviceId,
        subject: input.enrollmentId,
        entries: input.trail,
      });
  });
  return decision;
}

/** An operator approved: the admission now lets the CA adapter issue. Audited with who decided. */
export async function recordApproval(
  db: Database,
  input: { enrollmentId: string; by: string; note?: string },
): Promise<void> {
  await db.transaction(async (tx) => {
    const approved = await tx
      .update(admissions)
      .set({ approvedBy: input.by, approvedAt: sql`now()` })
      .where(and(eq(admissions.enrollmentId, input.enrollmentId), sql`${admissions.approvedBy} is null`))
      .returning({ profile: admissions.profile, deviceId: admissions.deviceId });
    const row = approved[0];
    if (!row) return;
    await tx.insert(auditEvents).values({
      actor: input.by,
      action: 'enrollment.approved',
      profile: row.profile,
      deviceId: row.deviceId,
      subject: input.enrollmentId,
      details: input.note ? { note: input.note } : {},
    });
  });
}

function decisionOf(row: typeof admissions.$inferSelect): AdmissionDecision {
  if (row.approvalRequired && !row.approvedBy)
    return {
      decision: 'awaiting-approval',
      reason: `device ${row.deviceId} already holds a valid certificate`,
    };
  return { decision: 'admitted', readmitted: row.readmits };
}
