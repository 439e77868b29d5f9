/** Issuing-CA rotation from outside Temporal (operator API, `npm run ca:rollover`). */
import { type Client, WorkflowExecutionAlreadyStartedError } from '@temporalio/client';
import { WorkflowIdReusePolicy } from '@temporalio/common';
import type { caRotation } from '../workflows/ca-rotation.js';
import {
  type CaRotationInput,
  CaRotationStateKey,
  type CaRotationStatus,
  caRotationStateQuery,
  caRotationWorkflowId,
  PkiProfileKey,
  pauseRotationSignal,
  resumeRotationSignal,
  TASK_QUEUE,
} from '../workflows/definitions.js';

/** How long a deactivated old CA key is kept before it is destroyed, unless the request says. */
export const DEFAULT_RETENTION_SECONDS = 30 * 86_400;
/** Time for caches and in-flight signatures to settle after a promotion. */
export const DEFAULT_SETTLE_SECONDS = 300;

export type RotationStart =
  | { outcome: 'started'; workflowId: string; runId: string }
  /** One rotation per profile at a time. */
  | { outcome: 'already-running'; workflowId: string };

export async function startCaRotation(
  client: Client,
  input: Omit<CaRotationInput, 'retentionSeconds' | 'settleSeconds'> &
    Partial<Pick<CaRotationInput, 'retentionSeconds' | 'settleSeconds'>>,
): Promise<RotationStart> {
  const workflowId = caRotationWorkflowId(input.profile);
  try {
    const handle = await client.workflow.start<typeof caRotation>('caRotation', {
      workflowId,
      taskQueue: TASK_QUEUE,
      args: [
        {
          ...input,
          retentionSeconds: input.retentionSeconds ?? DEFAULT_RETENTION_SECONDS,
          settleSeconds: input.settleSeconds ?? DEFAULT_SETTLE_SECONDS,
        },
      ],
      workflowIdReusePolicy: WorkflowIdReusePolicy.ALLOW_DUPLICATE,
      typedSearchAttributes: [
        { key: PkiProfileKey, value: input.profile },
        { key: CaRotationStateKey, value: 'Preparing' },
      ],
    });
    return { outcome: 'started', workflowId, runId: handle.firstExecutionRunId };
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError)
      return { outcome: 'already-running', workflowId };
    throw err;
  }
}

export async function caRotationState(client: Client, profile: string): Promise<CaRotationStatus> {
  return client.workflow.getHandle(caRotationWorkflowId(profile)).query(caRotationStateQuery);
}

export async function pauseCaRotation(
  client: Client,
  profile: string,
  action: 'pause' | 'resume',
  payload: { by: string; reason?: string },
): Promise<void> {
  const handle = client.workflow.getHandle(caRotationWorkflowId(profile));
  await handle.signal(action === 'pause' ? pauseRotationSignal : resumeRotationSignal, payload);
}
