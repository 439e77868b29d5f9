/**
 * The event outbox (db/schema.ts event_outbox, event_deliveries): an event is written in the same
 * transaction as the state change it reports, one delivery row per target, and delivered later by
 * the dispatcher (dispatcher.ts). Nothing that changes state waits for a receiver.
 */
import { createHash } from 'node:crypto';
import { findProfile } from '../../config/load.js';
import type { NotificationConfig, PkiConfig } from '../../config/profile-types.js';
import type { Executor } from '../../db/client.js';
import { eventDeliveries, eventOutbox } from '../../db/schema.js';
import type { PkiEvent } from '../../workflows/activities.js';

/** Events that need an operator, not just an integration: these also go out by e-mail. */
const OPERATOR_EVENTS: ReadonlySet<PkiEvent['type']> = new Set([
  'enrollment.escalated',
  'enrollment.awaiting_approval',
  'certificate.renewal_overdue',
  'service_credential.registration_needed',
  'key.age_exceeded',
  'key.expiring',
]);

export function isOperatorEvent(event: Pick<PkiEvent, 'type'>): boolean {
  return OPERATOR_EVENTS.has(event.type);
}

/** A webhook target by a digest of its URL (URLs may carry tokens in their query: never stored). */
export function webhookTarget(url: string): string {
  return `webhook:${createHash('sha256').update(url).digest('hex').slice(0, 16)}`;
}
export const EMAIL_TARGET = 'email';

/**
 * Where an event's notification settings live: the daily report and the key events (profile `*`,
 * they cover them all) have their own; every other event follows its profile's. Undefined: the profile is gone.
 */
export function notificationsOf(
  config: PkiConfig,
  event: Pick<PkiEvent, 'type' | 'profile'>,
): NotificationConfig | undefined {
  if (event.type === 'report.daily') return config.reports.notifications;
  if (event.type === 'key.age_exceeded' || event.type === 'key.expiring') return config.keys.notifications;
  return findProfile(config, event.profile)?.notifications;
}

/** The targets an event goes to under a profile's notification settings. */
export function targetsOf(config: NotificationConfig, event: Pick<PkiEvent, 'type'>): string[] {
  const targets = config.webhooks.map((hook) => webhookTarget(hook.url));
  if (config.email && isOperatorEvent(event)) targets.push(EMAIL_TARGET);
  return [...new Set(targets)];
}

/**
 * Records the event for delivery to every target the profile has; none: nothing is written. Run it
 * inside the transaction of the change it reports. Idempotent on the event id (a retried activity
 * enqueues nothing twice).
 */
export async function enqueueEvent(db: Executor, config: NotificationConfig, event: PkiEvent): Promise<void> {
  const targets = targetsOf(config, event);
  if (targets.length === 0) return;
  const inserted = await db
    .insert(eventOutbox)
    .values({
      id: event.id,
      type: event.type,
      profile: event.profile,
      deviceId: event.deviceId,
      payload: event as unknown as Record<string, unknown>,
    })
    .onConflictDoNothing()
    .returning({ id: eventOutbox.id });
  if (inserted.length === 0) return;
  await db
    .insert(eventDeliveries)
    .values(targets.map((target) => ({ eventId: event.id, target })))
    .onConflictDoNothing();
}
