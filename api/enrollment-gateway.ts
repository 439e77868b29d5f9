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
  legacyEnrollmentWorkflowId,
  PkiProfileKey,
  PkiStatusKey,
  type RequestFingerprint,
  TASK_QUEUE,
} from '../workflows/definitions.js';
import type { enrollment } from '../workflows/enrollment.js';
import { enrollmentDetails, enrollmentSummary } from '../workflows/summaries.js';

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
    const workflowId = await this.workflowIdOf(input.profile, input.transactionId);
    const startWorkflowOperation = new WithStartWorkflowOperation<typeof enrollment>('enrollment', {
      workflowId,
      taskQueue: TASK_QUEUE,
      args: [input],
      // The Web UI's work list: who, which profile, what kind of request (the outcome is PkiOutcome).
      staticSummary: enrollmentSummary(input),
      staticDetails: enrollmentDetails(input),
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
      await this.workflowIdOf(profile, transactionId),
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

  /**
   * The transaction's workflow id. A transaction started before ids escaped the transactionID (see
   * enrollmentWorkflowId) keeps its legacy id: a resend or poll after the upgrade attaches there, so
   * it is never enrolled a second time. Only transactionIDs the escaping changes cost the extra look.
   */
  private async workflowIdOf(profile: string, transactionId: string): Promise<string> {
    const current = enrollmentWorkflowId(profile, transactionId);
    const legacy = legacyEnrollmentWorkflowId(profile, transactionId);
    if (legacy === current) return current;
    try {
      await this.client.workflow.getHandle(legacy).describe();
      return legacy;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return current;
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
