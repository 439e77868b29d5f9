/** The e-mail operators get for events that ask them to act. */
import type { PkiEvent } from '../../workflows/activities.js';

const WHAT: Partial<Record<PkiEvent['type'], string>> = {
  'enrollment.escalated': 'An enrollment is escalated and waits for an operator (signal retry or reject).',
  'enrollment.awaiting_approval':
    "An enrollment would replace a device's certificate without proof; it waits for an operator (signal approve or reject).",
  'certificate.renewal_overdue': 'A certificate was not renewed in time and is about to expire.',
  'key.age_exceeded':
    'An HSM key (Device = token/label) passed the configured maximum age (keys.maxAgeDays): plan its rotation.',
  'key.expiring':
    "An HSM key's certificate (Device = token/label) ends within keys.expiryWarningDays: renew or rotate it.",
};

export function operatorMessage(event: PkiEvent): { subject: string; text: string } {
  return {
    subject: `[device-pki] ${event.type}: ${event.profile}/${event.deviceId}`,
    text: [
      WHAT[event.type] ?? `Event ${event.type}.`,
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
