/**
 * Publishes a PkiEvent to a profile's webhooks, and to operators by e-mail when it asks them to act.
 * Every target is attempted even when another fails; any failure fails the call so Temporal retries
 * the whole publication. Receivers then see the same event id again and de-duplicate on it.
 */
import { secretFromEnv } from '../../config/load.js';
import type { NotificationConfig } from '../../config/profile-types.js';
import type { PkiEvent } from '../types.js';
import { sendOperatorEmail } from './email.js';
import { deliverWebhook } from './webhook.js';

/** Events that need an operator, not just an integration. */
const OPERATOR_EVENTS: ReadonlySet<PkiEvent['type']> = new Set([
  'enrollment.escalated',
  'certificate.renewal_overdue',
]);

export function isOperatorEvent(event: PkiEvent): boolean {
  return OPERATOR_EVENTS.has(event.type);
}

export async function publishEvent(
  config: NotificationConfig,
  event: PkiEvent,
  env: NodeJS.ProcessEnv = process.env,
): Promise<void> {
  const deliveries: Array<{ to: string; run: () => Promise<unknown> }> = config.webhooks.map((hook) => ({
    to: `webhook ${new URL(hook.url).origin}`,
    run: async () => deliverWebhook({ url: hook.url, secret: secretFromEnv(hook.secretEnv, env) }, event),
  }));
  const email = config.email;
  if (email && isOperatorEvent(event)) {
    deliveries.push({
      to: 'operator e-mail',
      run: async () => sendOperatorEmail(email, operatorMessage(event), env),
    });
  }
  const results = await Promise.allSettled(deliveries.map((d) => d.run()));
  const failures = results.flatMap((r, i) =>
    r.status === 'rejected'
      ? [`${deliveries[i]!.to}: ${(r.reason as Error)?.message ?? String(r.reason)}`]
      : [],
  );
  if (failures.length > 0) {
    throw new Error(`event ${event.id} (${event.type}) not delivered: ${failures.join('; ')}`);
  }
}

export function operatorMessage(event: PkiEvent): { subject: string; text: string } {
  const what =
    event.type === 'enrollment.escalated'
      ? 'An enrollment is escalated and waits for an operator (signal retry or reject).'
      : 'A certificate was not renewed in time and is about to expire.';
  return {
    subject: `[device-pki] ${event.type}: ${event.profile}/${event.deviceId}`,
    text: [
      what,
      '',
      `Event:    ${event.type} (${event.id})`,
      `At:       ${event.at}`,
      `Profile:  ${event.profile}`,
      `Device:   ${event.deviceId}`,
      `Workflow: ${event.workflowId}`,
      '',
      `Details:  ${JSON.stringify(event.data, null, 2)}`,
      '',
    ].join('\n'),
  };
}
