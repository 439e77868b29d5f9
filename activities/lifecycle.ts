/** Talking to a device's lifecycle workflow from activities: the hand-off and revocation notices. */
import { type Client, WorkflowNotFoundError } from '@temporalio/client';
import {
  type CertificateRevokedPayload,
  certificateIssuedSignal,
  certificateRevokedSignal,
  type DeviceCertificate,
  DeviceIdKey,
  deviceWorkflowId,
  type LifecyclePolicy,
  PkiProfileKey,
  PkiStatusKey,
  TASK_QUEUE,
} from '../workflows/definitions.js';
import type { deviceLifecycle } from '../workflows/device-lifecycle.js';
import { lifecycleSummary } from '../workflows/summaries.js';

/**
 * Hands a new certificate to the device's long-lived workflow, starting it on first enrollment.
 * A workflow cannot signal-with-start, hence an activity. Redelivery is harmless: the lifecycle
 * ignores a serial it has seen.
 */
export async function handOffToLifecycle(
  client: Client,
  input: { profile: string; deviceId: string; policy: LifecyclePolicy; certificate: DeviceCertificate },
): Promise<void> {
  await client.workflow.signalWithStart<typeof deviceLifecycle, [DeviceCertificate]>('deviceLifecycle', {
    workflowId: deviceWorkflowId(input.profile, input.deviceId),
    taskQueue: TASK_QUEUE,
    args: [{ profile: input.profile, deviceId: input.deviceId, policy: input.policy }],
    signal: certificateIssuedSignal,
    signalArgs: [input.certificate],
    staticSummary: lifecycleSummary(input.profile, input.deviceId),
    typedSearchAttributes: [
      { key: PkiProfileKey, value: input.profile },
      { key: DeviceIdKey, value: input.deviceId },
      { key: PkiStatusKey, value: 'Pending' },
    ],
  });
}

/** Tells a running lifecycle that one of its certificates was revoked; false when none runs. */
export async function notifyLifecycleOfRevocation(
  client: Client,
  input: { profile: string; deviceId: string } & CertificateRevokedPayload,
): Promise<{ notified: boolean }> {
  try {
    await client.workflow
      .getHandle(deviceWorkflowId(input.profile, input.deviceId))
      .signal(certificateRevokedSignal, { serialHex: input.serialHex, reason: input.reason, by: input.by });
    return { notified: true };
  } catch (err) {
    // No lifecycle (never handed off, ended, or past retention): the certificate row is what counts.
    if (err instanceof WorkflowNotFoundError) return { notified: false };
    throw err;
  }
}
