import { ApplicationFailure, log, patched, proxyActivities } from '@temporalio/workflow';
import type { CaActivities, RevocationSyncActivities } from './activities.js';
import { HSM_TASK_QUEUE } from './definitions.js';

/** A CRL is re-signed when its nextUpdate is this close (CRLs are valid 24 h; the schedule runs hourly). */
export const CRL_REFRESH_WINDOW_SECONDS = 6 * 3600;

export interface RefreshCrlsResult {
  published: Array<{ issuingCa: string; crlNumber: number; nextUpdate: string }>;
  failed: Array<{ issuingCa: string; error: string }>;
  /** Delegated OCSP responders certified or found current (runs since the responders existed). */
  responders?: Array<{ issuingCa: string; outcome: string }>;
}

const acts = proxyActivities<Pick<RevocationSyncActivities, 'listCrlsDue'>>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', maximumInterval: '30 seconds', maximumAttempts: 10 },
});
const hsm = proxyActivities<Pick<CaActivities, 'publishCrl' | 'certifyOcspResponders'>>({
  taskQueue: HSM_TASK_QUEUE,
  startToCloseTimeout: '1 minute',
  // Bounded so a run ends; the next hourly run tries again, hours before the CRL goes stale.
  retry: { initialInterval: '2 seconds', maximumInterval: '1 minute', maximumAttempts: 10 },
});

/**
 * Schedule `crl-refresh` (hourly): re-signs, in the HSM, the CRL of each local issuing CA that has
 * none yet or whose nextUpdate is within 6 hours, so relying parties never hold a stale CRL; and
 * certifies the delegated OCSP responders whose certificate is missing or runs out within 2 days
 * (the API also starts a run when it registers a new responder key).
 * One CA failing does not stop the others; the run fails at the end so the Web UI shows it.
 */
export async function refreshCrls(): Promise<RefreshCrlsResult> {
  const due = await acts.listCrlsDue({ withinSeconds: CRL_REFRESH_WINDOW_SECONDS });
  const result: RefreshCrlsResult = { published: [], failed: [] };
  for (const { issuingCa } of due) {
    try {
      const published = await hsm.publishCrl({ issuingCa });
      result.published.push({ issuingCa, ...published });
    } catch (err) {
      log.error('CRL refresh failed', { issuingCa, error: String(err) });
      result.failed.push({ issuingCa, error: String((err as Error).cause ?? err) });
    }
  }
  // Runs recorded before the OCSP responders existed replay without this step.
  if (patched('ocsp-responders')) {
    try {
      result.responders = await hsm.certifyOcspResponders({});
    } catch (err) {
      log.error('OCSP responder certification failed', { error: String(err) });
      result.failed.push({ issuingCa: 'ocsp-responders', error: String((err as Error).cause ?? err) });
    }
  }
  if (result.failed.length > 0)
    throw ApplicationFailure.create({
      message: `CRL refresh failed for ${result.failed.map((f) => f.issuingCa).join(', ')}`,
      type: 'CrlRefreshFailed',
      nonRetryable: true,
      details: [result],
    });
  return result;
}
