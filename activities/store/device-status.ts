import { and, eq, gt, sql } from 'drizzle-orm';
import type { NotificationConfig } from '../../config/profile-types.js';
import type { Database } from '../../db/client.js';
import { auditEvents, certificates, devices } from '../../db/schema.js';
import type { LifecycleActivities } from '../../workflows/activities.js';
import { enqueueEvent } from '../notify/outbox.js';

type StatusInput = Parameters<LifecycleActivities['recordDeviceStatus']>[0];

/**
 * Mirrors a device lifecycle status into the devices table ("which devices renew soon / expired"),
 * with the event it announces and any change of the device's admission, in one transaction.
 */
export async function recordDeviceStatus(
  db: Database,
  notifications: NotificationConfig,
  input: StatusInput,
): Promise<void> {
  const status = input.status.replace(/[A-Z]/g, (c, i) =>
    i === 0 ? c.toLowerCase() : `_${c.toLowerCase()}`,
  );
  const key = { profile: input.profile, deviceId: input.deviceId };
  const admission = input.admission;
  const block =
    admission && 'blocked' in admission
      ? { blockedAt: sql`coalesce(${devices.blockedAt}, now())`, blockedReason: admission.blocked.reason }
      : admission && 'readmitted' in admission
        ? { blockedAt: null, blockedReason: null }
        : {};
  await db.transaction(async (tx) => {
    // A device revoked before any enrollment recorded it still gets its row: its block must hold.
    await tx
      .insert(devices)
      .values({
        ...key,
        status,
        updatedAt: new Date(),
        ...(admission && 'blocked' in admission
          ? { blockedAt: new Date(), blockedReason: admission.blocked.reason }
          : {}),
      })
      .onConflictDoUpdate({
        target: [devices.profile, devices.deviceId],
        set: { status, updatedAt: new Date(), ...block },
      });
    if (admission)
      await tx.insert(auditEvents).values({
        actor: 'blocked' in admission ? admission.blocked.by : admission.readmitted.by,
        action: 'blocked' in admission ? 'device.blocked' : 'device.readmitted',
        ...key,
        subject: `device/${input.profile}/${input.deviceId}`,
        details: 'blocked' in admission ? { reason: admission.blocked.reason } : {},
      });
    if (input.event) await enqueueEvent(tx, notifications, input.event);
  });
}

/** The device's certificates that are still valid (not revoked, not expired), by CA. */
export async function listValidCertificates(
  db: Database,
  input: { profile: string; deviceId: string },
): Promise<Array<{ issuingCa: string; serialHex: string }>> {
  return db
    .select({ issuingCa: certificates.issuingCa, serialHex: certificates.serialHex })
    .from(certificates)
    .where(
      and(
        eq(certificates.profile, input.profile),
        eq(certificates.deviceId, input.deviceId),
        eq(certificates.status, 'valid'),
        gt(certificates.notAfter, sql`now()`),
      ),
    );
}
