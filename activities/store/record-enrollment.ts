import { and, eq, isNull, lt, lte, or, sql } from 'drizzle-orm';
import type { NotificationConfig } from '../../config/profile-types.js';
import type { Database } from '../../db/client.js';
import { admissions, auditEvents, devices, enrollments } from '../../db/schema.js';
import type { Sealer } from '../../hsm/token.js';
import { certificateInfo } from '../../pki/x509/certificate.js';
import { componentLogger } from '../../runtime/log.js';
import { enrollmentDuration } from '../../runtime/metrics/process.js';
import type { RecordEnrollmentInput } from '../../workflows/activities.js';
import { enqueueEvent } from '../notify/outbox.js';

/**
 * Writes an enrollment's outcome, the device's state, the audit trail and the event for integrations
 * (outbox) in one transaction. A retry after a lost reply finds the enrollment row and writes
 * nothing twice. An enrollment admitted as a readmission lifts the device's block with its success.
 */
export async function recordEnrollment(
  db: Database,
  sealer: Sealer,
  notifications: NotificationConfig,
  input: RecordEnrollmentInput,
  /** Who decided the identity (the profile's verifier type, or renewal-signer): kept for metrics. */
  verifier: string,
): Promise<void> {
  const { request, outcome } = input;
  const csr = Buffer.from(request.csr, 'base64');
  // The AAD binds the sealed CSR to its row: it cannot be moved to another enrollment unnoticed.
  const csrSealed = await sealer.seal(csr, Buffer.from(input.enrollmentId, 'utf8'));

  const recorded = await db.transaction(async (tx) => {
    const inserted = await tx
      .insert(enrollments)
      .values({
        id: input.enrollmentId,
        profile: request.profile,
        transactionId: request.transactionId,
        deviceId: request.deviceId,
        messageType: request.messageType,
        status: outcome.status === 'SUCCESS' ? 'issued' : 'failed',
        failInfo: outcome.status === 'FAILURE' ? outcome.failInfo : null,
        failureReason: outcome.status === 'FAILURE' ? outcome.reason : null,
        failureCause: outcome.status === 'FAILURE' ? (input.failure?.cause ?? null) : null,
        failureCode: outcome.status === 'FAILURE' ? (input.failure?.code ?? null) : null,
        csrSha256: request.csrSha256,
        csrSealed,
        certificateSerial: outcome.status === 'SUCCESS' ? outcome.issued.serialHex : null,
        verifier,
        createdAt: new Date(input.receivedAt),
        completedAt: new Date(input.completedAt),
      })
      .onConflictDoNothing()
      .returning({ id: enrollments.id });
    if (inserted.length === 0) return false;

    const device = { profile: request.profile, deviceId: request.deviceId };
    if (outcome.status === 'SUCCESS') {
      // The certificate row itself was written by storeIssuedCertificate, before delivery.
      const info = certificateInfo(Buffer.from(outcome.issued.certificate, 'base64'));
      const current = {
        status: 'active',
        currentCertificateSerial: outcome.issued.serialHex,
        certificateNotAfter: info.notAfter,
        updatedAt: new Date(input.completedAt),
      };
      // A late, older certificate never displaces a newer current one. Equal notAfter is a renewal
      // within the same second (one-second resolution): the one recorded last is the newer.
      await tx
        .insert(devices)
        .values({ ...device, ...current })
        .onConflictDoUpdate({
          target: [devices.profile, devices.deviceId],
          set: current,
          setWhere: or(isNull(devices.certificateNotAfter), lte(devices.certificateNotAfter, info.notAfter)),
        });
      const [admission] = await tx
        .select({ readmits: admissions.readmits })
        .from(admissions)
        .where(eq(admissions.enrollmentId, input.enrollmentId));
      if (admission?.readmits)
        await tx
          .update(devices)
          .set({ blockedAt: null, blockedReason: null })
          .where(and(eq(devices.profile, device.profile), eq(devices.deviceId, device.deviceId)));
    } else {
      await tx
        .insert(devices)
        .values({ ...device, status: 'enrollment_failed', updatedAt: new Date(input.completedAt) })
        .onConflictDoUpdate({
          target: [devices.profile, devices.deviceId],
          set: { status: 'enrollment_failed', updatedAt: new Date(input.completedAt) },
          // A device that still holds a valid certificate stays active despite a failed attempt.
          setWhere: or(isNull(devices.certificateNotAfter), lt(devices.certificateNotAfter, sql`now()`)),
        });
    }

    const trail = [
      ...input.trail,
      {
        at: input.completedAt,
        action: outcome.status === 'SUCCESS' ? 'enrollment.succeeded' : 'enrollment.failed',
        details:
          outcome.status === 'SUCCESS'
            ? { serialHex: outcome.issued.serialHex, notAfter: outcome.issued.notAfter }
            : { failInfo: outcome.failInfo, reason: outcome.reason },
      },
    ];
    await tx.insert(auditEvents).values(
      trail.map((entry) => ({
        occurredAt: new Date(entry.at),
        actor: 'workflow',
        action: entry.action,
        ...device,
        subject: input.enrollmentId,
        details: { transactionId: request.transactionId, ...entry.details },
      })),
    );
    await enqueueEvent(tx, notifications, input.event);
    return true;
  });
  // Once per enrollment: a retry after a lost reply found the row and wrote nothing.
  if (!recorded) return;
  const outcomeLabel = outcome.status === 'SUCCESS' ? 'issued' : 'failed';
  const seconds = (Date.parse(input.completedAt) - Date.parse(input.receivedAt)) / 1000;
  enrollmentDuration.observe({ profile: request.profile, outcome: outcomeLabel }, Math.max(0, seconds));
  componentLogger('enrollment').info(
    {
      workflowId: input.enrollmentId,
      profile: request.profile,
      transactionId: request.transactionId,
      deviceId: request.deviceId,
      verifier,
      outcome: outcomeLabel,
      ...(outcome.status === 'SUCCESS'
        ? { serialHex: outcome.issued.serialHex }
        : { failInfo: outcome.failInfo, reason: outcome.reason }),
      seconds,
    },
    'enrollment recorded',
  );
}

/** For operators and tests: the sealed CSR of an enrollment, opened in the HSM. */
export async function openEnrollmentCsr(
  db: Database,
  sealer: Sealer,
  enrollmentId: string,
): Promise<Uint8Array> {
  const [row] = await db
    .select({ sealed: enrollments.csrSealed })
    .from(enrollments)
    .where(and(eq(enrollments.id, enrollmentId)));
  if (!row) throw new Error(`no enrollment ${enrollmentId}`);
  return sealer.open(row.sealed, Buffer.from(enrollmentId, 'utf8'));
}
