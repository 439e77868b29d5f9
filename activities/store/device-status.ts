import { and, eq } from 'drizzle-orm';
import type { Database } from '../../db/client.js';
import { devices } from '../../db/schema.js';
import type { PkiStatus } from '../../workflows/definitions.js';

/** Mirrors a device lifecycle status into the devices table ("which devices renew soon / expired"). */
export async function recordDeviceStatus(
  db: Database,
  input: { profile: string; deviceId: string; status: PkiStatus; serialHex?: string },
): Promise<void> {
  const status = input.status.replace(/[A-Z]/g, (c, i) =>
    i === 0 ? c.toLowerCase() : `_${c.toLowerCase()}`,
  );
  await db
    .update(devices)
    .set({ status, updatedAt: new Date() })
    .where(and(eq(devices.profile, input.profile), eq(devices.deviceId, input.deviceId)));
}
