/**
 * Talking to a device's lifecycle workflow (`device/<profile>/<deviceId>`) from outside Temporal:
 * the operator API, the MDM removal webhooks, scripts/revoke.ts and the Intune revocation activity
 * all go through here, so "no such device" and "lifecycle already over" mean the same everywhere.
 */
import { type Client, WorkflowNotFoundError } from '@temporalio/client';
import {
  type DeviceLifecycleState,
  type DeviceRemovedPayload,
  deviceRemovedSignal,
  deviceStateQuery,
  deviceWorkflowId,
  type RevokePayload,
  revokeSignal,
} from '../workflows/definitions.js';

export type SignalOutcome =
  | { outcome: 'signalled'; workflowId: string }
  /** No lifecycle workflow of that id was ever started (in this namespace's retention). */
  | { outcome: 'not-found'; workflowId: string }
  /** The lifecycle ended (device removed, terminated...): nothing left to signal. */
  | { outcome: 'ended'; workflowId: string; executionStatus: string };

/** RUNNING, COMPLETED, ... of the latest run, or undefined when there is no such workflow. */
export async function lifecycleExecutionStatus(
  client: Client,
  workflowId: string,
): Promise<string | undefined> {
  try {
    return (await client.workflow.getHandle(workflowId).describe()).status.name;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return undefined;
    throw err;
  }
}

async function signalLifecycle(
  client: Client,
  profile: string,
  deviceId: string,
  send: (workflowId: string) => Promise<void>,
): Promise<SignalOutcome> {
  const workflowId = deviceWorkflowId(profile, deviceId);
  const status = await lifecycleExecutionStatus(client, workflowId);
  if (status === undefined) return { outcome: 'not-found', workflowId };
  if (status !== 'RUNNING') return { outcome: 'ended', workflowId, executionStatus: status };
  try {
    await send(workflowId);
  } catch (err) {
    // Ended between describe and signal.
    if (err instanceof WorkflowNotFoundError) {
      const now = await lifecycleExecutionStatus(client, workflowId);
      return now === undefined
        ? { outcome: 'not-found', workflowId }
        : { outcome: 'ended', workflowId, executionStatus: now };
    }
    throw err;
  }
  return { outcome: 'signalled', workflowId };
}

/** Signal `revoke` (the lifecycle revokes its current certificate and marks itself Revoked). */
export function signalRevoke(
  client: Client,
  target: { profile: string; deviceId: string },
  payload: RevokePayload,
): Promise<SignalOutcome> {
  return signalLifecycle(client, target.profile, target.deviceId, (id) =>
    client.workflow.getHandle(id).signal(revokeSignal, payload),
  );
}

/** Signal `deviceRemoved` (every certificate of the device is revoked and the lifecycle ends). */
export function signalDeviceRemoved(
  client: Client,
  target: { profile: string; deviceId: string },
  payload: DeviceRemovedPayload,
): Promise<SignalOutcome> {
  return signalLifecycle(client, target.profile, target.deviceId, (id) =>
    client.workflow.getHandle(id).signal(deviceRemovedSignal, payload),
  );
}

/** The lifecycle's `state` query, bounded in time (a query needs a `pki` worker to answer). */
export async function queryLifecycleState(
  client: Client,
  workflowId: string,
  timeoutMs = 5_000,
): Promise<DeviceLifecycleState> {
  return client.withDeadline(Date.now() + timeoutMs, () =>
    client.workflow.getHandle(workflowId).query(deviceStateQuery),
  );
}
