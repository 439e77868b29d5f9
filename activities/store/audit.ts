import type { Database } from '../../db/client.js';
import { auditEvents } from '../../db/schema.js';
import type { AuditEntry } from '../types.js';

/** Appends audit events (the table refuses updates and deletes). */
export async function recordAudit(
  db: Database,
  input: { profile: string; deviceId: string; subject: string; entries: AuditEntry[]; actor?: string },
): Promise<void> {
  if (input.entries.length === 0) return;
  await db.insert(auditEvents).values(
    input.entries.map((entry) => ({
      occurredAt: new Date(entry.at),
      actor: input.actor ?? 'workflow',
      action: entry.action,
      profile: input.profile,
      deviceId: input.deviceId,
      subject: input.subject,
      details: entry.details,
    })),
  );
}
