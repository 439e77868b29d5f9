/**
 * FROZEN: workflow code as it ran until 2026-12-01, kept only so executions started before then
 * replay and finish as they began (their histories hold no `admission-and-outbox` marker). Never edit it;
 * delete it (and deprecate the patch) once no such execution is open:
 *   temporal workflow list --query 'WorkflowType="enrollment" AND ExecutionStatus="Running" AND StartTime < "2026-12-01T00:00:00Z"'
 */
import {
  ActivityFailure,
  ApplicationFailure,
  allHandlersFinished,
  CancellationScope,
  condition,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { AuditEntry, EnrollmentActivities, HsmActivities, PkiEvent } from './activities-2026-11.js';
import { checkCsrPolicy } from './csr-policy-2026-11.js';
import {
  awaitOutcomeUpdate,
  type EnrollmentInput,
  type EnrollmentOutcome,
  type EnrollmentResult,
  type EnrollmentState,
  enrollmentStateQuery,
  type FailInfoName,
  HSM_TASK_QUEUE,
  type IssuedCertificate,
  type PkiStatus,
  PkiStatusKey,
  type RejectPayload,
  type RetryPayload,
  rejectSignal,
  retrySignal,
} from './definitions-2026-11.js';

/** Ends the story early with a FAILURE the device (and the MDM) will hear about. */
class Refusal extends Error {
  constructor(
    readonly failInfo: FailInfoName,
    readonly reason: string,
  ) {
    super(reason);
  }
}

/**
 * One SCEP transaction, from request to delivered certificate (DESIGN.md "Enrollment").
 * Workflow id `enroll/<profile>/<transactionID>`: a resent request attaches here and never issues twice.
 *
 * Every step that talks to another system retries within the profile's budget; past it the
 * enrollment is Escalated and waits for an operator's `retry` or `reject` (or the deadline).
 */
export async function enrollmentBeforeAdmission(input: EnrollmentInput): Promise<EnrollmentResult> {
  const { workflowId } = workflowInfo();
  const receivedAt = new Date().toISOString();
  const trail: AuditEntry[] = [];
  const state: EnrollmentState = {
    status: 'Pending',
    fingerprint: input.fingerprint,
    deviceId: input.deviceId,
    outcome: undefined,
  };
  let operatorDecision:
    | { kind: 'retry'; by?: string; note?: string }
    | { kind: 'reject'; reason: string; by?: string }
    | undefined;

  const budget = input.policy.escalation;
  const retry = {
    initialInterval: `${budget.initialRetrySeconds} seconds`,
    backoffCoefficient: 2,
    maximumInterval: `${budget.maxRetryIntervalSeconds} seconds`,
    maximumAttempts: budget.maxAttempts,
  };
  const stepTimeout = `${budget.stepTimeoutSeconds} seconds`;
  const acts = proxyActivities<EnrollmentActivities>({ startToCloseTimeout: stepTimeout, retry });
  const upstream = proxyActivities<EnrollmentActivities>({
    startToCloseTimeout: '30 minutes',
    // One Atlas poll round can take ~3 request timeouts plus the poll interval.
    heartbeatTimeout: '2 minutes',
    retry,
  });
  const hsm = proxyActivities<HsmActivities>({
    taskQueue: HSM_TASK_QUEUE,
    startToCloseTimeout: stepTimeout,
    retry,
  });
  // Notifications to people and integrations must not hold the enrollment hostage: bounded, then noted.
  const notify = proxyActivities<EnrollmentActivities>({
    startToCloseTimeout: stepTimeout,
    retry: { ...retry, maximumAttempts: Math.max(budget.maxAttempts, 10) },
  });

  setHandler(enrollmentStateQuery, () => state);
  setHandler(
    awaitOutcomeUpdate,
    async () => {
      await condition(() => state.outcome !== undefined);
      return state.outcome!;
    },
    {
      validator: (fingerprint) => {
        if (fingerprint.csrSha256 !== input.fingerprint.csrSha256)
          throw ApplicationFailure.nonRetryable(
            `transaction ${input.transactionId} was started with another CSR`,
            'TransactionMismatch',
          );
        if (fingerprint.signerKeySha256 !== input.fingerprint.signerKeySha256)
          throw ApplicationFailure.nonRetryable(
            `transaction ${input.transactionId} was started by another signer key`,
            'TransactionMismatch',
          );
      },
    },
  );
  // Decisions only count while escalated; a stray signal at another time is ignored.
  setHandler(retrySignal, (payload?: RetryPayload) => {
    if (state.status === 'Escalated') operatorDecision = { kind: 'retry', ...payload };
  });
  setHandler(rejectSignal, (payload: RejectPayload) => {
    if (state.status === 'Escalated')
      operatorDecision = {
        kind: 'reject',
        reason: payload?.reason || 'rejected by an operator',
        by: payload?.by,
      };
  });

  const audit = (action: string, details: Record<string, unknown> = {}) =>
    trail.push({ at: new Date().toISOString(), action, details });
  const setStatus = (status: PkiStatus) => {
    state.status = status;
    upsertSearchAttributes([{ key: PkiStatusKey, value: status }]);
  };
  const event = (type: PkiEvent['type'], data: Record<string, unknown>): PkiEvent => ({
    type,
    id: `${workflowId}/${type}/${trail.length}`,
    at: new Date().toISOString(),
    profile: input.profile,
    deviceId: input.deviceId,
    workflowId,
    data: { transactionId: input.transactionId, ...data },
  });

  let issued: IssuedCertificate | undefined;
  let outcome: EnrollmentOutcome;
  try {
    issued = await obtainCertificate();
    await step('store', 'Issuing', () =>
      acts.storeIssuedCertificate({
        enrollmentId: workflowId,
        profile: input.profile,
        deviceId: input.deviceId,
        issued: issued!,
      }),
    );
    // Intune: no certificate reaches the device unless the MDM has accepted the success notice.
    if (input.policy.mdmTakesNotices)
      await step('mdm-notify', 'Issuing', () =>
        acts.notifyMdmSuccess({
          profile: input.profile,
          transactionId: input.transactionId,
          enrollmentId: workflowId,
          csr: input.csr,
          issued: issued!,
        }),
      );
    outcome = { status: 'SUCCESS', issued };
  } catch (err) {
    if (!(err instanceof Refusal)) throw err;
    outcome = { status: 'FAILURE', failInfo: err.failInfo, reason: err.reason };
  }

  if (outcome.status === 'FAILURE') await failClosed(outcome.reason);
  await step('store', state.status === 'Escalated' ? 'Issuing' : state.status, () => record(outcome)).catch(
    async (err) => {
      // The record could not be written and an operator rejected: the device still gets its answer.
      if (!(err instanceof Refusal)) throw err;
      outcome = { status: 'FAILURE', failInfo: err.failInfo, reason: err.reason };
      await failClosed(err.reason);
    },
  );

  // Deliver: the device's waiting update (or its next poll) reads this.
  state.outcome = outcome;
  setStatus(outcome.status === 'SUCCESS' ? 'Issued' : 'Failed');
  await publish(
    outcome.status === 'SUCCESS'
      ? event('enrollment.succeeded', {
          serialHex: outcome.issued.serialHex,
          notAfter: outcome.issued.notAfter,
        })
      : event('enrollment.failed', { failInfo: outcome.failInfo, reason: outcome.reason }),
  );
  if (outcome.status === 'SUCCESS') {
    const certificate = outcome.issued;
    await step('hand-off', 'Issued', () =>
      acts.handOffToLifecycle({
        profile: input.profile,
        deviceId: input.deviceId,
        certificate: {
          serialHex: certificate.serialHex,
          issuingCa: certificate.issuingCa,
          notBefore: certificate.notBefore,
          notAfter: certificate.notAfter,
          enrollmentId: workflowId,
        },
      }),
    ).catch((err) => {
      // The device has its certificate; only the lifecycle bookkeeping was refused by an operator.
      if (!(err instanceof Refusal)) throw err;
    });
  }
  // Let the API's waiting update read the outcome before the workflow closes.
  await condition(allHandlersFinished);
  return { fingerprint: input.fingerprint, outcome };

  /** Renewal check → MDM → policy → issue. Throws Refusal for any definitive "no". */
  async function obtainCertificate(): Promise<IssuedCertificate> {
    audit('enrollment.received', {
      messageType: input.messageType,
      subject: input.csrSummary.subject,
      renewal: !!input.renewalSigner,
    });

    let skipMdm = false;
    if (input.renewalSigner) {
      setStatus('Verifying');
      const signer = await step('renewal-check', 'Verifying', () =>
        acts.checkRenewalSigner({
          profile: input.profile,
          deviceId: input.deviceId,
          signerCertificate: input.renewalSigner!,
        }),
      );
      if (signer.verdict === 'refused') {
        audit('renewal.refused', { reason: signer.reason });
        throw new Refusal(signer.failInfo, signer.reason);
      }
      audit('renewal.signer_accepted', { signerSerialHex: signer.serialHex });
      skipMdm = !input.policy.renewalRequiresMdm;
    }

    if (!skipMdm) {
      const verdict = await step('mdm', 'Verifying', () =>
        acts.verifyWithMdm({ profile: input.profile, transactionId: input.transactionId, csr: input.csr }),
      );
      if (verdict.verdict === 'rejected') {
        audit('mdm.rejected', { reason: verdict.reason });
        throw new Refusal('badRequest', verdict.reason);
      }
      audit('mdm.approved');
    }

    const policy = checkCsrPolicy(input.csrSummary, input.policy);
    if (!policy.ok) {
      audit('policy.rejected', { reason: policy.reason });
      throw new Refusal('badRequest', policy.reason);
    }

    const now = Date.now();
    const request = {
      profile: input.profile,
      enrollmentId: workflowId,
      csr: input.csr,
      serialHex: newSerialHex(),
      // Devices' clocks drift: a certificate valid from "now" may look not-yet-valid to them.
      notBefore: new Date(now - input.policy.backdateSeconds * 1000).toISOString(),
      notAfter: new Date(now + input.policy.validitySeconds * 1000).toISOString(),
    };
    const certificate = await step('issue', 'Issuing', () =>
      input.policy.ca === 'local-hsm' ? hsm.issueCertificate(request) : upstream.issueUpstream(request),
    );
    audit('certificate.issued', {
      serialHex: certificate.serialHex,
      notAfter: certificate.notAfter,
      issuingCa: certificate.issuingCa,
    });
    return certificate;
  }

  /** A FAILURE: revoke what was issued but never delivered, and tell the MDM. */
  async function failClosed(reason: string) {
    if (issued) {
      const toRevoke = issued;
      await notifyQuietly(() =>
        hsm.revokeCertificate({
          issuingCa: toRevoke.issuingCa,
          serialHex: toRevoke.serialHex,
          reason: 'cessationOfOperation',
          revokedAt: new Date().toISOString(),
          actor: `workflow:${workflowId}`,
        }),
      );
      audit('certificate.revoked_undelivered', { serialHex: toRevoke.serialHex });
    }
    if (input.policy.mdmTakesNotices)
      await notifyQuietly(() =>
        acts.notifyMdmFailure({
          profile: input.profile,
          transactionId: input.transactionId,
          csr: input.csr,
          reason,
        }),
      );
  }

  async function record(result: EnrollmentOutcome) {
    await acts.recordEnrollment({
      enrollmentId: workflowId,
      request: {
        profile: input.profile,
        transactionId: input.transactionId,
        messageType: input.messageType,
        deviceId: input.deviceId,
        csr: input.csr,
        csrSha256: input.fingerprint.csrSha256,
      },
      receivedAt,
      completedAt: new Date().toISOString(),
      outcome: result,
      trail: [...trail],
    });
  }

  /**
   * Runs one step. A definitive failure becomes a Refusal; an infrastructure failure past the
   * retry budget escalates to an operator, whose `retry` runs the step again.
   */
  async function step<T>(name: string, status: PkiStatus, run: () => Promise<T>): Promise<T> {
    for (;;) {
      if (state.status !== status) setStatus(status);
      try {
        return await run();
      } catch (err) {
        const refusal = definitiveRefusal(err);
        if (refusal) throw refusal;
        const decision = await escalate(name, err);
        if (decision.kind === 'reject') throw new Refusal('badRequest', decision.reason);
        audit('escalation.retry', { step: name, by: decision.by, note: decision.note });
      }
    }
  }

  async function escalate(stepName: string, err: unknown) {
    const error = describe(err);
    const deadlineMs = budget.deadlineSeconds * 1000;
    state.escalation = {
      step: stepName,
      error,
      since: new Date().toISOString(),
      deadline: new Date(Date.now() + deadlineMs).toISOString(),
    };
    operatorDecision = undefined;
    setStatus('Escalated');
    audit('enrollment.escalated', { step: stepName, error });
    await publish(
      event('enrollment.escalated', { step: stepName, error, deadline: state.escalation!.deadline }),
    );
    const decided = await condition(() => operatorDecision !== undefined, deadlineMs);
    state.escalation = undefined;
    if (!decided) {
      audit('escalation.deadline_passed', { step: stepName });
      return {
        kind: 'reject' as const,
        reason: `no operator decision before the escalation deadline (${stepName}: ${error})`,
      };
    }
    const decision = operatorDecision!;
    operatorDecision = undefined;
    if (decision.kind === 'reject')
      audit('escalation.rejected', { step: stepName, by: decision.by, reason: decision.reason });
    return decision;
  }

  /** Best effort: a notification that keeps failing is recorded, never blocks the outcome. */
  /** Tells the profile's webhooks and operators; a profile with none costs no activity. */
  async function publish(pkiEvent: PkiEvent) {
    if (input.policy.publishesEvents) await notifyQuietly(() => notify.publishEvent(pkiEvent));
  }

  async function notifyQuietly(run: () => Promise<unknown>) {
    try {
      await CancellationScope.nonCancellable(run);
    } catch (err) {
      audit('notification.failed', { error: describe(err) });
    }
  }
}

/** Activity failures that no retry can mend, and the SCEP answer each deserves. */
function definitiveRefusal(err: unknown): Refusal | undefined {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (!(cause instanceof ApplicationFailure) || !cause.nonRetryable) return undefined;
  switch (cause.type) {
    case 'InvalidCsr':
      return new Refusal('badMessageCheck', cause.message);
    case 'UpstreamPolicyViolation':
      return new Refusal('badRequest', cause.message);
    default:
      // Other non-retryable failures (unknown profile, upstream outcome unknown) need a person.
      return undefined;
  }
}

function describe(err: unknown): string {
  const cause = err instanceof ActivityFailure && err.cause ? err.cause : err;
  return cause instanceof Error ? cause.message : String(cause);
}

/**
 * 122 random bits (a v4 UUID) from the workflow's seeded random source: the same on replay, so a
 * retried issuance signs the same serial.
 */
function newSerialHex(): string {
  const hex = uuid4().replaceAll('-', '');
  // First nibble 1..7: positive, and never a leading zero byte that DER would have to drop.
  return ((Number.parseInt(hex[0]!, 16) % 7) + 1).toString(16) + hex.slice(1);
}
