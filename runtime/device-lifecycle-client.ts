/**
 * Talking to a device's lifecycle workflow (`device/<profile>/<deviceId>`) from outside Temporal:
 * the operator API, the MDM removal webhooks, scripts/revoke.ts and the Intune revocation activity
 * all go through here, so "no such device" and "lifecycle already over" mean the same everywhere.
 */
import type { Client } from '@temporalio/client';
import { lifecyclePolicy } from '../config/policies.js';
import type { Profile } from '../config/profile-types.js';
import {
  DeviceIdKey,
  type DeviceLifecycleState,
  type DeviceRemovedPayload,
  deviceRemovedSignal,
  deviceStateQuery,
  deviceWorkflowId,
  PkiProfileKey,
  PkiStatusKey,
  type ReadmitPayload,
  type RevokePayload,
  readmitSignal,
  revokeSignal,
  TASK_QUEUE,
} from '../workflows/definitions.js';
import type { deviceLifecycle } from '../workflows/device-lifecycle.js';
import { lifecycleSummary } from '../workflows/summaries.js';
import { isWorkflowNotFound } from './temporal-errors.js';

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
    if (isWorkflowNotFound(err)) return undefined;
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
    if (isWorkflowNotFound(err)) {
      const now = await lifecycleExecutionStatus(client, workflowId);
      return now === undefined
        ? { outcome: 'not-found', workflowId }
        : { outcome: 'ended', workflowId, executionStatus: now };
    }
    throw err;
  }
  return { outcome: 'signalled', workflowId };
}

/** Signal `revoke` to a running lifecycle (it revokes every valid certificate of the device and blocks it). */
export function signalRevoke(
  client: Client,
  target: { profile: string; deviceId: string },
  payload: RevokePayload,
): Promise<SignalOutcome> {
  return signalLifecycle(client, target.profile, target.deviceId, (id) =>
    client.workflow.getHandle(id).signal(revokeSignal, payload),
  );
}

/**
 * A command for a device whatever its lifecycle's state: sent to the running lifecycle, or to a new
 * one started for it (a device whose lifecycle ended or never started, e.g. the hand-off failed).
 * The new run reads the truth from the database: which certificates are valid, whether it is blocked.
 */
export async function commandDevice(
  client: Client,
  profile: Profile,
  deviceId: string,
  command:
    | { signal: 'revoke'; payload: RevokePayload }
    | { signal: 'readmit'; payload: ReadmitPayload }
    | { signal: 'deviceRemoved'; payload: DeviceRemovedPayload },
): Promise<{ workflowId: string }> {
  const workflowId = deviceWorkflowId(profile.name, deviceId);
  const common = {
    workflowId,
    taskQueue: TASK_QUEUE,
    args: [{ profile: profile.name, deviceId, policy: lifecyclePolicy(profile) }] as Parameters<
      typeof deviceLifecycle
    >,
    staticSummary: lifecycleSummary(profile.name, deviceId),
    typedSearchAttributes: [
      { key: PkiProfileKey, value: profile.name },
      { key: DeviceIdKey, value: deviceId },
      { key: PkiStatusKey, value: 'Pending' },
    ],
  };
  if (command.signal === 'revoke')
    await client.workflow.signalWithStart<typeof deviceLifecycle, [RevokePayload?]>('deviceLifecycle', {
      ...common,
      signal: revokeSignal,
      signalArgs: [command.payload],
    });
  else if (command.signal === 'readmit')
    await client.workflow.signalWithStart<typeof deviceLifecycle, [ReadmitPayload?]>('deviceLifecycle', {
      ...common,
      signal: readmitSignal,
      signalArgs: [command.payload],
    });
  else
    await client.workflow.signalWithStart<typeof deviceLifecycle, [DeviceRemovedPayload?]>(
      'deviceLifecycle',
      {
        ...common,
        signal: deviceRemovedSignal,
        signalArgs: [command.payload],
      },
    );
  return { workflowId };
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
