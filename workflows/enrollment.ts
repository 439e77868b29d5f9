import {
  ApplicationFailure,
  allHandlersFinished,
  condition,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { AuditEntry, EnrollmentActivities, HsmActivities } from '../activities/types.js';
import { checkCsrPolicy } from './csr-policy.js';
import {
  awaitOutcomeUpdate,
  type EnrollmentInput,
  type EnrollmentOutcome,
  type EnrollmentResult,
  type EnrollmentState,
  enrollmentStateQuery,
  HSM_TASK_QUEUE,
  type IssuedCertificate,
  type PkiStatus,
  PkiStatusKey,
} from './definitions.js';

const { verifyWithMdm, recordEnrollment, handOffToLifecycle } = proxyActivities<EnrollmentActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

const { issueCertificate } = proxyActivities<HsmActivities>({
  taskQueue: HSM_TASK_QUEUE,
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '1 minute' },
});

/** Devices' clocks drift: a certificate valid from "now" may look not-yet-valid to them. */
const BACKDATE_MS = 5 * 60 * 1000;

/**
 * One SCEP transaction, from request to delivered certificate (DESIGN.md "Enrollment").
 * Workflow id `enroll/<profile>/<transactionID>`: a resent request attaches here and never issues twice.
 */
export async function enrollment(input: EnrollmentInput): Promise<EnrollmentResult> {
  const receivedAt = new Date().toISOString();
  const trail: AuditEntry[] = [];
  const state: EnrollmentState = {
    status: 'Pending',
    fingerprint: input.fingerprint,
    deviceId: input.deviceId,
    outcome: undefined,
  };

  setHandler(enrollmentStateQuery, () => state);
  setHandler(
    awaitOutcomeUpdate,
    async () => {
      await condition(() => state.outcome !== undefined);
      return state.outcome!;
    },
    {
      validator: (fingerprint) => {
        if (
          fingerprint.csrSha256 !== input.fingerprint.csrSha256 ||
          fingerprint.signerKeySha256 !== input.fingerprint.signerKeySha256
        ) {
          throw ApplicationFailure.nonRetryable(
            `transaction ${input.transactionId} was started with another ${fingerprint.csrSha256 !== input.fingerprint.csrSha256 ? 'CSR' : 'signer key'}`,
            'TransactionMismatch',
          );
        }
      },
    },
  );

  const audit = (action: string, details: Record<string, unknown> = {}) =>
    trail.push({ at: new Date().toISOString(), action, details });
  const setStatus = (status: PkiStatus) => {
    state.status = status;
    upsertSearchAttributes([{ key: PkiStatusKey, value: status }]);
  };

  const outcome = await decide();
  state.outcome = outcome;
  setStatus(outcome.status === 'SUCCESS' ? 'Issued' : 'Failed');

  if (outcome.status === 'SUCCESS') {
    await handOffToLifecycle({
      profile: input.profile,
      deviceId: input.deviceId,
      certificate: {
        serialHex: outcome.issued.serialHex,
        issuingCa: outcome.issued.issuingCa,
        notBefore: outcome.issued.notBefore,
        notAfter: outcome.issued.notAfter,
        enrollmentId: workflowInfo().workflowId,
      },
    });
  }
  // Let the API's waiting update read the outcome before the workflow closes.
  await condition(allHandlersFinished);
  return { fingerprint: input.fingerprint, outcome };

  /** Verify → policy → issue → store. Returns the outcome only once it is recorded. */
  async function decide(): Promise<EnrollmentOutcome> {
    audit('enrollment.received', { messageType: input.messageType, subject: input.csrSummary.subject });

    setStatus('Verifying');
    const verdict = await verifyWithMdm({
      profile: input.profile,
      transactionId: input.transactionId,
      csr: input.csr,
    });
    if (verdict.verdict === 'rejected') {
      audit('mdm.rejected', { reason: verdict.reason });
      return store({ status: 'FAILURE', failInfo: 'badRequest', reason: verdict.reason });
    }
    audit('mdm.approved');

    const policy = checkCsrPolicy(input.csrSummary, input.policy);
    if (!policy.ok) {
      audit('policy.rejected', { reason: policy.reason });
      return store({ status: 'FAILURE', failInfo: 'badRequest', reason: policy.reason });
    }

    setStatus('Issuing');
    const now = Date.now();
    const issued: IssuedCertificate = await issueCertificate({
      profile: input.profile,
      enrollmentId: workflowInfo().workflowId,
      csr: input.csr,
      serialHex: newSerialHex(),
      notBefore: new Date(now - BACKDATE_MS).toISOString(),
      notAfter: new Date(now + input.policy.validitySeconds * 1000).toISOString(),
    });
    audit('certificate.issued', { serialHex: issued.serialHex, notAfter: issued.notAfter });
    return store({ status: 'SUCCESS', issued });
  }

  async function store(result: EnrollmentOutcome): Promise<EnrollmentOutcome> {
    await recordEnrollment({
      enrollmentId: workflowInfo().workflowId,
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
      trail,
    });
    return result;
  }
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
