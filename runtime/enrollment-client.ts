/**
 * Operators' decisions on an enrollment (`enroll/<profile>/<transactionID>`) from outside Temporal:
 * the operator API and the console send the same signals as the Web UI's "Send a Signal".
 */
import type { Client } from '@temporalio/client';
import {
  type ApprovePayload,
  approveSignal,
  type EnrollmentState,
  enrollmentStateQuery,
  type RejectPayload,
  type RetryPayload,
  rejectSignal,
  retrySignal,
} from '../workflows/definitions.js';
import { isWorkflowNotFound } from './temporal-errors.js';

export type EnrollmentDecision =
  | { action: 'approve'; payload: ApprovePayload }
  | { action: 'reject'; payload: RejectPayload }
  | { action: 'retry'; payload: RetryPayload };

export type DecisionOutcome =
  | { outcome: 'sent'; state: EnrollmentState }
  | { outcome: 'not-found' }
  | { outcome: 'ended'; executionStatus: string }
  /** The enrollment does not wait for this decision now (e.g. approve while escalated). */
  | { outcome: 'not-waiting'; state: EnrollmentState };

const WAITS_FOR: Record<EnrollmentDecision['action'], EnrollmentState['status'][]> = {
  approve: ['AwaitingApproval'],
  retry: ['Escalated'],
  reject: ['AwaitingApproval', 'Escalated'],
};

export async function decideEnrollment(
  client: Client,
  workflowId: string,
  decision: EnrollmentDecision,
): Promise<DecisionOutcome> {
  const handle = client.workflow.getHandle(workflowId);
  try {
    const description = await handle.describe();
    if (description.status.name !== 'RUNNING')
      return { outcome: 'ended', executionStatus: description.status.name };
    const state = await client.withDeadline(Date.now() + 5_000, () => handle.query(enrollmentStateQuery));
    if (!WAITS_FOR[decision.action].includes(state.status)) return { outcome: 'not-waiting', state };
    if (decision.action === 'approve') await handle.signal(approveSignal, decision.payload);
    else if (decision.action === 'retry') await handle.signal(retrySignal, decision.payload);
    else await handle.signal(rejectSignal, decision.payload);
    return { outcome: 'sent', state };
  } catch (err) {
    if (isWorkflowNotFound(err)) return { outcome: 'not-found' };
    throw err;
  }
}
