import { ActivityFailure, ApplicationFailure, log, proxyActivities } from '@temporalio/workflow';
import type {
  CaActivities,
  IntuneRevocationResultItem,
  RevocationReason,
  RevocationSyncActivities,
} from './activities.js';
import { HSM_TASK_QUEUE } from './definitions.js';

/** Intune's largest batch (downloadRevocationRequests maxRequests 1-500). */
export const INTUNE_REVOCATION_BATCH = 500;
/** Batches per run; the next scheduled run takes the rest. */
const MAX_BATCHES_PER_RUN = 10;
/**
 * Intune says which certificate, never why: the admin retired, wiped or un-targeted the device, so
 * the certificate is no longer needed (RFC 5280 cessationOfOperation, as for an MDM removal).
 */
export const INTUNE_REVOCATION_REASON: RevocationReason = 'cessationOfOperation';
/** Intune's retryable error code: it hands the request out again later. */
const RETRYABLE = 4100;

export interface IntuneRevocationSyncInput {
  profile: string;
}

export interface IntuneRevocationSyncResult {
  requests: number;
  revoked: number;
  answered: Array<{ requestContext: string; succeeded: boolean; errorCode: number }>;
}

const acts = proxyActivities<RevocationSyncActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '2 seconds', maximumInterval: '1 minute', maximumAttempts: 10 },
});
/** The CA adapter of a profile, on its queue (decisions recorded before CA queues existed name none). */
const caOn = (taskQueue: string | undefined) =>
  proxyActivities<Pick<CaActivities, 'revokeCertificate'>>({
    taskQueue: taskQueue ?? HSM_TASK_QUEUE,
    startToCloseTimeout: '30 seconds',
    // No CA host polling for 5 minutes is an answer too: 4100, Intune offers the request again.
    scheduleToCloseTimeout: '5 minutes',
    // Bounded: a request we cannot revoke now is answered retryable (4100) and Intune offers it again.
    retry: { initialInterval: '1 second', maximumInterval: '10 seconds', maximumAttempts: 5 },
  });

/**
 * One pass over Intune's revocation queue for a profile (Schedule `intune-revocations/<profile>`):
 * download, revoke what is ours at its CA (our CRL is re-signed), revoke the whole device when it
 * was its current certificate (lifecycle `revoke`), upload one result per request. The downloaded requests live in this history, so a worker
 * crash resumes with them; every step is idempotent per request context.
 */
export async function intuneRevocationSync(
  input: IntuneRevocationSyncInput,
): Promise<IntuneRevocationSyncResult> {
  const summary: IntuneRevocationSyncResult = { requests: 0, revoked: 0, answered: [] };
  for (let batch = 0; batch < MAX_BATCHES_PER_RUN; batch++) {
    const downloaded = await acts.downloadIntuneRevocationRequests({
      profile: input.profile,
      maxRequests: INTUNE_REVOCATION_BATCH,
    });
    // Intune may list a request twice in one batch: one answer per request context.
    const requests = downloaded.filter(
      (r, i) => downloaded.findIndex((o) => o.requestContext === r.requestContext) === i,
    );
    if (requests.length === 0) break;
    summary.requests += requests.length;

    const decisions = await acts.resolveIntuneRevocations({ profile: input.profile, requests });
    const results: IntuneRevocationResultItem[] = [];
    const revoked: Array<{ profile: string; deviceId: string; serialHex: string }> = [];
    for (const decision of decisions) {
      if (decision.action === 'answer') {
        results.push({
          requestContext: decision.requestContext,
          succeeded: decision.succeeded,
          errorCode: decision.errorCode,
          errorMessage: decision.errorMessage,
        });
        continue;
      }
      try {
        await caOn(decision.caQueue).revokeCertificate({
          issuingCa: decision.issuingCa,
          serialHex: decision.serialHex,
          reason: INTUNE_REVOCATION_REASON,
          revokedAt: new Date().toISOString(),
          actor: `intune:${decision.requestContext}`,
        });
        revoked.push({
          profile: decision.profile,
          deviceId: decision.deviceId,
          serialHex: decision.serialHex,
        });
        results.push({
          requestContext: decision.requestContext,
          succeeded: true,
          errorCode: 0,
          errorMessage: '',
        });
      } catch (err) {
        if (!(err instanceof ActivityFailure)) throw err;
        const cause = err.cause;
        const final = cause instanceof ApplicationFailure && cause.nonRetryable;
        results.push({
          requestContext: decision.requestContext,
          succeeded: false,
          errorCode: final ? 4000 : RETRYABLE,
          errorMessage: `revocation failed: ${cause?.message ?? err.message}`.slice(0, 500),
        });
      }
    }
    summary.revoked += revoked.length;

    if (revoked.length > 0) {
      try {
        await acts.signalLifecycleRevocations({ revoked, reason: INTUNE_REVOCATION_REASON, by: 'intune' });
      } catch (err) {
        // The certificates are revoked and on the CRL; a lifecycle that still says Active is
        // cosmetic, and must not cost Intune its answers.
        log.warn('lifecycle status not updated after Intune revocations', { error: String(err) });
      }
    }
    await acts.uploadIntuneRevocationResults({ profile: input.profile, results });
    summary.answered.push(
      ...results.map((r) => ({
        requestContext: r.requestContext,
        succeeded: r.succeeded,
        errorCode: r.errorCode,
      })),
    );
    if (downloaded.length < INTUNE_REVOCATION_BATCH) break;
  }
  return summary;
}
