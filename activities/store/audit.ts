import type { NotificationConfig } from '../../config/profile-types.js';
import type { Database, Executor } from '../../db/client.js';
import { auditEvents } from '../../db/schema.js';
import type { AuditEntry, PkiEvent } from '../../workflows/activities.js';
import { enqueueEvent } from '../notify/outbox.js';

/** Appends audit events (the table refuses updates and deletes). */
export async function recordAudit(
  db: Executor,
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

/** Audit entries and the event announcing them (outbox), committed together. */
export async function recordEvent(
  db: Database,
  notifications: NotificationConfig,
  input: { profile: string; deviceId: string; event: PkiEvent; trail: AuditEntry[] },
): Promise<void> {
  await db.transaction(async (tx) => {
    await recordAudit(tx, { ...input, subject: input.event.workflowId, entries: input.trail });
    await enqueueEvent(tx, notifications, input.event);
  });
}
