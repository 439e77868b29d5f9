import {
  type Client,
  WithStartWorkflowOperation,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
} from '@temporalio/client';
import { ApplicationFailure, WorkflowIdReusePolicy } from '@temporalio/common';
import {
  awaitOutcomeUpdate,
  DeviceIdKey,
  type EnrollmentInput,
  type EnrollmentOutcome,
  type EnrollmentResult,
  enrollmentStateQuery,
  enrollmentWorkflowId,
  PkiProfileKey,
  PkiStatusKey,
  type RequestFingerprint,
  TASK_QUEUE,
} from '../workflows/definitions.js';
import type { enrollment } from '../workflows/enrollment.js';

/** What the API can tell a device about its transaction right now. */
export type GatewayAnswer =
  | { kind: 'outcome'; outcome: EnrollmentOutcome }
  | { kind: 'pending' }
  /** The transactionID is known, but for another CSR or signer key: never a second certificate. */
  | { kind: 'mismatch'; message: string }
  | { kind: 'unknown-transaction' };

/**
 * The API's only door into Temporal: start-or-attach an enrollment and wait a bounded time, or look
 * at where a transaction stands. No business rules here.
 */
export class EnrollmentGateway {
  constructor(private readonly client: Client) {}

  async submit(input: EnrollmentInput, waitMs: number): Promise<GatewayAnswer> {
    const workflowId = enrollmentWorkflowId(input.profile, input.transactionId);
    const startWorkflowOperation = new WithStartWorkflowOperation<typeof enrollment>('enrollment', {
      workflowId,
      taskQueue: TASK_QUEUE,
      args: [input],
      workflowIdConflictPolicy: 'USE_EXISTING',
      // A finished transaction is answered from its result, never enrolled again.
      workflowIdReusePolicy: WorkflowIdReusePolicy.REJECT_DUPLICATE,
      typedSearchAttributes: [
        { key: PkiProfileKey, value: input.profile },
        { key: DeviceIdKey, value: input.claimedDeviceId },
        { key: PkiStatusKey, value: 'Pending' },
      ],
    });
    try {
      const outcome = await this.client.withAbortSignal(AbortSignal.timeout(Math.max(waitMs, 1)), () =>
        this.client.workflow.executeUpdateWithStart(awaitOutcomeUpdate, {
          args: [input.fingerprint],
          startWorkflowOperation,
          // Same request, same update id: a device resending while we wait attaches to the update
          // in flight instead of piling up new ones on the workflow.
          updateId: updateIdFor(input.fingerprint),
        }),
      );
      return { kind: 'outcome', outcome };
    } catch (err) {
      if (err instanceof WorkflowUpdateRPCTimeoutOrCancelledError || isAbort(err)) return { kind: 'pending' };
      const mismatch = transactionMismatch(err);
      if (mismatch) return { kind: 'mismatch', message: mismatch };
      if (err instanceof WorkflowExecutionAlreadyStartedError || isUpdateOnClosedWorkflow(err))
        return this.answerFromClosed(workflowId, input.fingerprint);
      throw err;
    }
  }

  /** CertPoll/GetCertInitial: a cheap look, no waiting (the device polls again). */
  async poll(profile: string, transactionId: string, signerKeySha256: string): Promise<GatewayAnswer> {
    const handle = this.client.workflow.getHandle<typeof enrollment>(
      enrollmentWorkflowId(profile, transactionId),
    );
    try {
      const description = await handle.describe();
      if (description.status.name !== 'RUNNING')
        return this.answerFromClosed(handle.workflowId, undefined, signerKeySha256);
      const state = await handle.query(enrollmentStateQuery);
      if (state.fingerprint.signerKeySha256 !== signerKeySha256)
        return { kind: 'mismatch', message: `transaction ${transactionId} belongs to another signer key` };
      return state.outcome ? { kind: 'outcome', outcome: state.outcome } : { kind: 'pending' };
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return { kind: 'unknown-transaction' };
      throw err;
    }
  }

  private async answerFromClosed(
    workflowId: string,
    fingerprint: RequestFingerprint | undefined,
    signerKeySha256 = fingerprint?.signerKeySha256,
  ): Promise<GatewayAnswer> {
    let result: EnrollmentResult;
    try {
      result = await this.client.workflow.getHandle<typeof enrollment>(workflowId).result();
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return { kind: 'unknown-transaction' };
      // Terminated or failed by an operator or a bug: the transaction is over without a certificate.
      return {
        kind: 'outcome',
        outcome: {
          status: 'FAILURE',
          failInfo: 'badRequest',
          reason: 'enrollment ended without a certificate',
        },
      };
    }
    if (
      (fingerprint && fingerprint.csrSha256 !== result.fingerprint.csrSha256) ||
      signerKeySha256 !== result.fingerprint.signerKeySha256
    ) {
      return { kind: 'mismatch', message: 'transaction was completed for another request' };
    }
    return { kind: 'outcome', outcome: result.outcome };
  }
}

const updateIdFor = (f: RequestFingerprint) =>
  `awaitOutcome/${f.csrSha256.slice(0, 32)}/${f.signerKeySha256.slice(0, 32)}`;

function transactionMismatch(err: unknown): string | undefined {
  if (!(err instanceof WorkflowUpdateFailedError)) return undefined;
  const cause = err.cause;
  return cause instanceof ApplicationFailure && cause.type === 'TransactionMismatch'
    ? cause.message
    : undefined;
}

function isUpdateOnClosedWorkflow(err: unknown): boolean {
  const text = String((err as Error)?.message ?? '');
  return /workflow execution already completed|already completed/i.test(text);
}

function isAbort(err: unknown): boolean {
  return (err as Error)?.name === 'AbortError' || (err as Error)?.name === 'TimeoutError';
}
