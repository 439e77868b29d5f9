import {
  ActivityFailure,
  ApplicationFailure,
  allHandlersFinished,
  CancellationScope,
  condition,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { VerifiedIdentity } from '../pki/admission/identity.js';
import { applySubjectTemplate } from '../pki/admission/subject-template.js';
import type { AuditEntry, CaActivities, EnrollmentActivities, PkiEvent } from './activities.js';
import { checkCsrPolicy } from './csr-policy.js';
import {
  approveSignal,
  awaitOutcomeUpdate,
  DeviceIdKey,
  type EnrollmentFailure,
  type EnrollmentInput,
  type EnrollmentOutcome,
  type EnrollmentResult,
  type EnrollmentState,
  enrollmentStateQuery,
  FAILURE,
  type FailInfoName,
  type FailureCause,
  type IssuedCertificate,
  PkiOutcomeKey,
  type PkiStatus,
  PkiStatusKey,
  rejectSignal,
  retrySignal,
} from './definitions.js';
import { enrollmentBeforeAdmission } from './legacy/enrollment-2026-11.js';
import { outcomeLine } from './summaries.js';

/** Marks executions that run this code; older histories replay workflows/legacy/enrollment-2026-11.ts. */
export const ADMISSION_PATCH = 'admission-and-outbox';
/** Marks executions that write how they ended (PkiOutcome) with their final status. */
export const VISIBLE_OUTCOME_PATCH = 'outcome-in-visibility';

/** Ends the story early with a FAILURE the device (and the MDM) will hear about. */
class Refusal extends Error {
  constructor(
    readonly failInfo: FailInfoName,
    readonly reason: string,
    /** For the daily report's reason groups; recorded with the outcome, never sent to the device. */
    readonly failure: EnrollmentFailure,
  ) {
    super(reason);
  }
}
const refusal = (failInfo: FailInfoName, reason: string, cause: FailureCause, code?: string) =>
  new Refusal(failInfo, reason, code === undefined ? { cause } : { cause, code });

type OperatorDecision =
  | { kind: 'retry'; by?: string; note?: string }
  | { kind: 'approve'; by?: string; note?: string }
  /** `deadline`: nobody decided before the escalation deadline (the workflow rejected). */
  | { kind: 'reject'; reason: string; by?: string; deadline?: boolean };

/** An operator's (or the deadline's) rejection as the FAILURE the device gets. */
const rejection = (decision: { reason: string; deadline?: boolean }) =>
  refusal('badRequest', decision.reason, decision.deadline ? 'deadline' : 'rejected');

/**
 * One SCEP transaction, from request to delivered certificate (DESIGN.md "Enrollment").
 * Workflow id `enroll/<profile>/<transactionID>`: a resent request attaches here and never issues twice.
 *
 * The story: verify who the device is (the renewal's signer, or the MDM) → policy (its key, and the
 * certificate the profile's template gives that identity) → admit (may it replace what the device
 * holds? otherwise an operator approves) → issue (the CA adapter signs and stores) → hand off to the
 * device's lifecycle (revocable from now on) → tell the MDM → record → deliver.
 *
 * Cheap steps are local activities (no task queue round trip); the CA signs on its own queue, or in a
 * local activity too where this worker holds the CA key (CA_ISSUANCE=local: the happy path is then
 * one workflow task).
 * Every step that talks to another system retries within the profile's budget; past it the
 * enrollment is Escalated and waits for an operator's `retry` or `reject` (or the deadline).
 */
export async function enrollment(input: EnrollmentInput): Promise<EnrollmentResult> {
  // Executions started before admission and the outbox keep the code they began with.
  if (!patched(ADMISSION_PATCH)) return enrollmentBeforeAdmission(input as never);

  const { workflowId } = workflowInfo();
  const receivedAt = new Date().toISOString();
  const trail: AuditEntry[] = [];
  const state: EnrollmentState = {
    status: 'Pending',
    fingerprint: input.fingerprint,
    deviceId: input.claimedDeviceId,
    outcome: undefined,
  };
  let decision: OperatorDecision | undefined;
  // A renewal is decided by its signer unless the verifier is asked too (renewalRequiresMdm).
  let identityFrom: 'renewal-signer' | 'verifier' = input.renewalSigner ? 'renewal-signer' : 'verifier';

  const budget = input.policy.escalation;
  const retry = {
    initialInterval: `${budget.initialRetrySeconds} seconds`,
    backoffCoefficient: 2,
    maximumInterval: `${budget.maxRetryIntervalSeconds} seconds`,
    maximumAttempts: budget.maxAttempts,
  } as const;
  const local = proxyLocalActivities<EnrollmentActivities>({
    startToCloseTimeout: `${budget.stepTimeoutSeconds} seconds`,
    retry,
  });
  const { ca: caPolicy } = input.policy;
  const ca = proxyActivities<CaActivities>({
    taskQueue: caPolicy.queue,
    startToCloseTimeout: `${caPolicy.timeoutSeconds} seconds`,
    ...(caPolicy.heartbeatSeconds ? { heartbeatTimeout: `${caPolicy.heartbeatSeconds} seconds` } : {}),
    retry,
  });
  // Signing where the workflow runs (the CA token is in this worker): no queue, no second task.
  const signer = caPolicy.signsLocally
    ? proxyLocalActivities<Pick<CaActivities, 'issueCertificate'>>({
        startToCloseTimeout: `${caPolicy.timeoutSeconds} seconds`,
        retry,
      })
    : ca;

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
            FAILURE.transactionMismatch,
          );
        if (fingerprint.signerKeySha256 !== input.fingerprint.signerKeySha256)
          throw ApplicationFailure.nonRetryable(
            `transaction ${input.transactionId} was started by another signer key`,
            FAILURE.transactionMismatch,
          );
      },
    },
  );
  // Decisions count only while someone waits for them; a stray signal at another time is ignored.
  setHandler(retrySignal, (payload) => {
    if (state.status === 'Escalated') decision = { kind: 'retry', ...payload };
  });
  setHandler(approveSignal, (payload) => {
    if (state.status === 'AwaitingApproval') decision = { kind: 'approve', ...payload };
  });
  setHandler(rejectSignal, (payload) => {
    if (state.status === 'Escalated' || state.status === 'AwaitingApproval')
      decision = { kind: 'reject', reason: payload?.reason || 'rejected by an operator', by: payload?.by };
  });

  const audit = (action: string, details: Record<string, unknown> = {}) =>
    trail.push({ at: new Date().toISOString(), action, details });
  const event = (type: PkiEvent['type'], data: Record<string, unknown>): PkiEvent => ({
    type,
    id: `${workflowId}/${type}/${trail.length}`,
    at: new Date().toISOString(),
    profile: input.profile,
    deviceId: state.deviceId,
    workflowId,
    data: { transactionId: input.transactionId, ...data },
  });

  audit('enrollment.received', {
    messageType: input.messageType,
    subject: input.csrSummary.subject,
    renewal: input.renewalSigner !== undefined,
  });
  let issued: IssuedCertificate | undefined;
  let outcome: EnrollmentOutcome;
  let failure: EnrollmentFailure | undefined;
  try {
    const verified = await verify();
    const identity = verified.identity;
    state.deviceId = identity.deviceId;
    state.vouchedBy = identity.vouchedBy;
    policy(identity);
    await admit(identity, verified.renewalOf);
    issued = await issue();
    await handOff(issued);
    // Intune: no certificate reaches the device unless the MDM has accepted the success notice.
    if (input.policy.mdmTakesNotices) await tellMdm(issued);
    outcome = { status: 'SUCCESS', issued };
  } catch (err) {
    if (!(err instanceof Refusal)) throw err;
    outcome = { status: 'FAILURE', failInfo: err.failInfo, reason: err.reason };
    failure = err.failure;
    await failClosed(outcome.reason);
  }
  outcome = await record(outcome, failure);

  // Deliver: the device's waiting update (or its next poll) reads this.
  state.outcome = outcome;
  // The Web UI list shows a refused enrollment as a green "Completed": PkiOutcome says how it ended.
  const ended = patched(VISIBLE_OUTCOME_PATCH) ? outcomeLine(outcome) : undefined;
  if (ended) setCurrentDetails(ended);
  setStatus(outcome.status === 'SUCCESS' ? 'Issued' : 'Failed', ended);
  // Let the API's waiting update read the outcome before the workflow closes.
  await condition(allHandlersFinished);
  return { fingerprint: input.fingerprint, outcome, deviceId: state.deviceId };

  /**
   * Who is this? A renewal is whoever its signing certificate was issued to (and, where the profile
   * asks, the MDM must say the same); anything else is whoever the MDM vouches for.
   */
  async function verify(): Promise<{ identity: VerifiedIdentity; renewalOf?: string }> {
    state.status = 'Verifying';
    let renewal: { identity: VerifiedIdentity; serialHex: string } | undefined;
    if (input.renewalSigner) {
      const signer = await step('renewal-check', () =>
        local.checkRenewalSigner({ profile: input.profile, signerCertificate: input.renewalSigner! }),
      );
      if (signer.verdict === 'refused') {
        audit('renewal.refused', { reason: signer.reason });
        throw refusal(signer.failInfo, signer.reason, 'policy');
      }
      audit('renewal.signer_accepted', {
        signerSerialHex: signer.serialHex,
        deviceId: signer.identity.deviceId,
      });
      renewal = { identity: signer.identity, serialHex: signer.serialHex };
      if (!input.policy.renewalRequiresMdm)
        return { identity: renewal.identity, renewalOf: renewal.serialHex };
    }
    identityFrom = 'verifier';
    const verdict = await step('verify', () =>
      local.verifyWithMdm({ profile: input.profile, transactionId: input.transactionId, csr: input.csr }),
    );
    if (verdict.verdict === 'rejected') {
      audit('mdm.rejected', { reason: verdict.reason });
      throw refusal('badRequest', verdict.reason, 'mdm', verdict.code);
    }
    const { identity } = verdict;
    audit('mdm.approved', { deviceId: identity.deviceId, vouchedBy: identity.vouchedBy });
    if (renewal && renewal.identity.deviceId !== identity.deviceId)
      throw refusal(
        'badRequest',
        `the MDM vouches for ${identity.deviceId}, the renewal is signed by ${renewal.identity.deviceId}'s certificate`,
        'policy',
      );
    return renewal ? { identity, renewalOf: renewal.serialHex } : { identity };
  }

  /** The key must suit the profile, and the template must give this identity a certificate. */
  function policy(identity: VerifiedIdentity): void {
    const key = checkCsrPolicy(input.csrSummary, input.policy);
    if (!key.ok) {
      audit('policy.rejected', { reason: key.reason });
      throw refusal('badRequest', key.reason, 'policy');
    }
    const templated = applySubjectTemplate(input.policy.template, identity, input.csrSummary);
    if (!templated.ok) {
      audit('policy.rejected', { reason: templated.reason });
      throw refusal('badRequest', templated.reason, 'policy');
    }
    if (templated.dropped.length > 0) audit('policy.csr_fields_dropped', { dropped: templated.dropped });
  }

  /**
   * May this request replace what the device holds? Recorded before anything is issued; a request
   * nobody vouched for that would replace a valid certificate waits for an operator.
   */
  async function admit(identity: VerifiedIdentity, renewalOf: string | undefined): Promise<void> {
    const admission = await step('admit', () =>
      local.admitEnrollment({
        enrollmentId: workflowId,
        profile: input.profile,
        identity,
        csrSha256: input.fingerprint.csrSha256,
        ...(renewalOf ? { renewalOf } : {}),
        trail: [...trail],
      }),
    );
    if (admission.decision === 'refused') {
      audit('admission.refused', { reason: admission.reason });
      throw refusal('badRequest', admission.reason, 'policy');
    }
    // On record with the admission: later entries are new.
    trail.length = 0;
    if (admission.decision === 'admitted') return;
    const operator = await awaitOperator(
      'AwaitingApproval',
      admission.reason,
      'enrollment.awaiting_approval',
      {
        reason: admission.reason,
      },
    );
    if (operator.kind === 'reject') throw rejection(operator);
    const by = operator.by ?? 'operator';
    await step('approval', () =>
      local.recordApproval({
        enrollmentId: workflowId,
        by,
        ...(operator.note ? { note: operator.note } : {}),
      }),
    );
  }

  /** The CA adapter signs and stores; it checks the admission again and takes nothing on trust. */
  async function issue(): Promise<IssuedCertificate> {
    // Visible in the Web UI: from here the enrollment waits on another queue (the HSM host, or Atlas).
    // Signed locally, it waits on nothing: the status would only be written with the final one.
    if (!caPolicy.signsLocally) setStatus('Issuing');
    else state.status = 'Issuing';
    return step('issue', () => {
      // Chosen per attempt: after an escalation the certificate is still valid from (about) now.
      const now = Date.now();
      return signer.issueCertificate({
        profile: input.profile,
        enrollmentId: workflowId,
        csr: input.csr,
        // Devices' clocks drift: a certificate valid from "now" may look not-yet-valid to them.
        notBefore: new Date(now - input.policy.backdateSeconds * 1000).toISOString(),
        notAfter: new Date(now + input.policy.validitySeconds * 1000).toISOString(),
      });
    });
  }

  /** From here the device's lifecycle holds the certificate: renewal timers, revocation by device. */
  async function handOff(certificate: IssuedCertificate): Promise<void> {
    await step('hand-off', () =>
      local.handOffToLifecycle({
        profile: input.profile,
        deviceId: state.deviceId,
        certificate: {
          serialHex: certificate.serialHex,
          issuingCa: certificate.issuingCa,
          notBefore: certificate.notBefore,
          notAfter: certificate.notAfter,
          enrollmentId: workflowId,
        },
      }),
    );
  }

  async function tellMdm(certificate: IssuedCertificate): Promise<void> {
    await step('mdm-notify', () =>
      local.notifyMdmSuccess({
        profile: input.profile,
        transactionId: input.transactionId,
        enrollmentId: workflowId,
        csr: input.csr,
        issued: certificate,
      }),
    );
  }

  /** A FAILURE: revoke what was issued but never delivered (its lifecycle hears of it), and tell the MDM. */
  async function failClosed(reason: string): Promise<void> {
    if (issued) {
      const undelivered = issued;
      await quietly(() =>
        ca.revokeCertificate({
          issuingCa: undelivered.issuingCa,
          serialHex: undelivered.serialHex,
          reason: 'cessationOfOperation',
          revokedAt: new Date().toISOString(),
          actor: `workflow:${workflowId}`,
        }),
      );
      audit('certificate.revoked_undelivered', { serialHex: undelivered.serialHex });
    }
    if (input.policy.mdmTakesNotices)
      await quietly(() =>
        local.notifyMdmFailure({
          profile: input.profile,
          transactionId: input.transactionId,
          csr: input.csr,
          reason,
        }),
      );
  }

  /**
   * Outcome, device row, audit trail and the event for integrations, in one transaction. If it cannot
   * be written and an operator rejects, the device still gets an answer: FAILURE, fail-closed.
   */
  async function record(
    result: EnrollmentOutcome,
    why: EnrollmentFailure | undefined,
  ): Promise<EnrollmentOutcome> {
    const write = (final: EnrollmentOutcome, finalWhy: EnrollmentFailure | undefined) =>
      local.recordEnrollment({
        enrollmentId: workflowId,
        request: {
          profile: input.profile,
          transactionId: input.transactionId,
          messageType: input.messageType,
          deviceId: state.deviceId,
          csr: input.csr,
          csrSha256: input.fingerprint.csrSha256,
          identityFrom,
        },
        receivedAt,
        completedAt: new Date().toISOString(),
        outcome: final,
        ...(finalWhy ? { failure: finalWhy } : {}),
        trail: [...trail],
        event:
          final.status === 'SUCCESS'
            ? event('enrollment.succeeded', {
                serialHex: final.issued.serialHex,
                notAfter: final.issued.notAfter,
              })
            : event('enrollment.failed', { failInfo: final.failInfo, reason: final.reason }),
      });
    try {
      await step('record', () => write(result, why));
      return result;
    } catch (err) {
      if (!(err instanceof Refusal) || result.status === 'FAILURE') throw err;
      const failed: EnrollmentOutcome = { status: 'FAILURE', failInfo: err.failInfo, reason: err.reason };
      await failClosed(err.reason);
      await quietly(() => write(failed, err.failure));
      return failed;
    }
  }

  /**
   * Runs one step. A definitive failure becomes a Refusal; an infrastructure failure past the
   * retry budget escalates to an operator, whose `retry` runs the step again.
   */
  async function step<T>(name: string, run: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        return await run();
      } catch (err) {
        const refusal = definitiveRefusal(err);
        if (refusal) throw refusal;
        const error = describe(err);
        const operator = await awaitOperator('Escalated', `${name}: ${error}`, 'enrollment.escalated', {
          step: name,
          error,
        });
        if (operator.kind === 'reject') throw rejection(operator);
        audit('escalation.retry', { step: name, by: operator.by, note: operator.note });
      }
    }
  }

  /**
   * Waits for an operator (Escalated: retry or reject; AwaitingApproval: approve or reject) until the
   * escalation deadline, which rejects. Operators hear of it from the Web UI work list and the outbox.
   */
  async function awaitOperator(
    status: 'Escalated' | 'AwaitingApproval',
    why: string,
    type: PkiEvent['type'],
    details: Record<string, unknown>,
  ): Promise<OperatorDecision> {
    const previous = state.status;
    const deadlineMs = budget.deadlineSeconds * 1000;
    const since = new Date().toISOString();
    const deadline = new Date(Date.now() + deadlineMs).toISOString();
    if (status === 'Escalated')
      state.escalation = { step: String(details.step), error: String(details.error), since, deadline };
    else state.approval = { reason: why, since, deadline };
    decision = undefined;
    setStatus(status);
    audit(status === 'Escalated' ? 'enrollment.escalated' : 'enrollment.awaiting_approval', details);
    const announcement = event(type, { ...details, deadline });
    await quietly(() =>
      local.recordEvent({ profile: input.profile, deviceId: state.deviceId, event: announcement, trail: [] }),
    );
    const decided = await condition(() => decision !== undefined, deadlineMs);
    state.escalation = undefined;
    state.approval = undefined;
    // Off the operators' work list again, whatever was decided.
    setStatus(previous);
    if (!decided) {
      audit('operator.deadline_passed', { waitedFor: status, why });
      return {
        kind: 'reject',
        reason: `no operator decision before the escalation deadline (${why})`,
        deadline: true,
      };
    }
    const made = decision!;
    decision = undefined;
    audit(`operator.${made.kind}`, {
      waitedFor: status,
      by: made.by,
      ...('reason' in made ? { reason: made.reason } : {}),
    });
    return made;
  }

  /**
   * Visibility gets a status when the enrollment waits in it (on another queue, or on an operator) and
   * the final one; the passing ones of a single workflow task are only in the `state` query.
   */
  function setStatus(status: PkiStatus, outcomeText?: string): void {
    state.status = status;
    upsertSearchAttributes([
      { key: PkiStatusKey, value: status },
      ...(outcomeText ? [{ key: PkiOutcomeKey, value: outcomeText }] : []),
      ...(state.deviceId !== input.claimedDeviceId ? [{ key: DeviceIdKey, value: state.deviceId }] : []),
    ]);
  }

  /** Best effort: a notice that keeps failing is recorded, never blocks the outcome. */
  async function quietly(run: () => Promise<unknown>): Promise<void> {
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
    case FAILURE.invalidCsr:
      return refusal('badMessageCheck', cause.message, 'policy');
    case FAILURE.upstreamPolicy:
    case FAILURE.refusedIssuance:
      return refusal('badRequest', cause.message, 'ca');
    default:
      // Other non-retryable failures (unknown profile, upstream outcome unknown) need a person.
      return undefined;
  }
}

function describe(err: unknown): string {
  const cause = err instanceof ActivityFailure && err.cause ? err.cause : err;
  return cause instanceof Error ? cause.message : String(cause);
}
