/**
 * Metrics of this process only (prom-client): what happens inside it and nowhere else, so each
 * process serves its own (the API on its operator listener, a worker on its health listener; see
 * README "Metrics, alerts and logs"). Prometheus sums them over the replicas it scrapes. Fleet-wide
 * truths (enrollments, certificates, escalations, CRLs) are counted from Postgres and Temporal at
 * scrape time instead (fleet.ts), so every API replica answers the same.
 */
import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client';

export const processRegistry = new Registry();
// CPU, memory, event loop lag, GC: the usual Node.js process metrics, prefixed as prom-client does.
collectDefaultMetrics({ register: processRegistry });

/** Observed by the worker that records the enrollment, once per enrollment (not per retry). */
export const enrollmentDuration = new Histogram({
  name: 'pki_enrollment_duration_seconds',
  help: 'Time from the SCEP request reaching the workflow to its recorded outcome (escalations and approvals included)',
  labelNames: ['profile', 'outcome'] as const,
  // From a fast path (under a second) to an escalation an operator resolves the next day.
  buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 21600, 86400],
  registers: [processRegistry],
});

/** Each PKCS#11 signature, decryption, seal and open, pool wait included (what the caller waits). */
export const hsmOperationDuration = new Histogram({
  name: 'pki_hsm_operation_duration_seconds',
  help: 'Duration of HSM operations (sign, decrypt, seal, open) seen by the process, session wait included',
  labelNames: ['op'] as const,
  buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
  registers: [processRegistry],
});

export type HsmOperation = 'sign' | 'decrypt' | 'seal' | 'open';

/** Times an HSM operation, failed ones too (a slow failure is what an operator looks for). */
export async function timedHsmOperation<T>(op: HsmOperation, run: () => Promise<T>): Promise<T> {
  const end = hsmOperationDuration.startTimer({ op });
  try {
    return await run();
  } finally {
    end();
  }
}

/**
 * Verification requests to the profile's verifier: `approved`, `rejected` (a definitive no), or
 * `error` (network, timeout, 5xx, unreadable: Temporal retries, and past the budget it escalates).
 */
export const mdmRequests = new Counter({
  name: 'pki_mdm_requests_total',
  help: 'Verification requests to MDM verifiers by result (approved, rejected, error)',
  labelNames: ['verifier', 'result'] as const,
  registers: [processRegistry],
});
