/**
 * After a run: does the server's record match what the devices were told? Every SUCCESS must have
 * exactly one certificate row (certificates.enrollment_id is unique; enrollment ids are
 * `enroll/<profile>/<transactionID>`) with the serial the device received, no other row may exist
 * for the run's devices, and no enrollment workflow of the run may still be running.
 */
import type { Client } from '@temporalio/client';
import { like } from 'drizzle-orm';
import type { Database } from '../db/client.js';
import { certificates } from '../db/schema.js';
import { enrollmentWorkflowId } from '../workflows/definitions.js';
import type { EnrollmentRecord } from './enrollment-load.js';

/** Problems found in the database, one line each; none means every enrollment is accounted for. */
export async function checkCertificateRecords(opts: {
  db: Database;
  profile: string;
  deviceIdPrefix: string;
  records: EnrollmentRecord[];
}): Promise<string[]> {
  const problems: string[] = [];
  const successes = opts.records.filter((r) => r.status === 'SUCCESS');
  const bySerial = new Map<string, number>();
  for (const r of successes) bySerial.set(r.serialHex!, (bySerial.get(r.serialHex!) ?? 0) + 1);
  for (const [serial, n] of bySerial) if (n > 1) problems.push(`serial ${serial} was handed to ${n} devices`);

  const escaped = opts.deviceIdPrefix.replace(/[\\%_]/g, (c) => `\\${c}`);
  const rows = await opts.db
    .select({
      enrollmentId: certificates.enrollmentId,
      serialHex: certificates.serialHex,
      deviceId: certificates.deviceId,
    })
    .from(certificates)
    .where(like(certificates.deviceId, `${escaped}%`));
  const byEnrollment = new Map<string, typeof rows>();
  for (const row of rows)
    byEnrollment.set(row.enrollmentId, [...(byEnrollment.get(row.enrollmentId) ?? []), row]);

  if (rows.length !== successes.length)
    problems.push(`${rows.length} certificates on record for ${successes.length} successful enrollments`);
  const delivered = new Set<string>();
  for (const r of successes) {
    const id = enrollmentWorkflowId(opts.profile, r.transactionId);
    delivered.add(id);
    const onRecord = byEnrollment.get(id) ?? [];
    if (onRecord.length !== 1) problems.push(`${id}: ${onRecord.length} certificates on record, want 1`);
    else if (onRecord[0]!.serialHex !== r.serialHex || onRecord[0]!.deviceId !== r.deviceId)
      problems.push(
        `${id}: on record serial ${onRecord[0]!.serialHex} for ${onRecord[0]!.deviceId}, ` +
          `the device got ${r.serialHex} for ${r.deviceId}`,
      );
  }
  for (const row of rows)
    if (!delivered.has(row.enrollmentId))
      problems.push(`${row.enrollmentId}: certificate ${row.serialHex} on record but no device received it`);
  return problems;
}

/**
 * Workflows of `workflowType` among `workflowIds` still running, by Temporal visibility. Visibility
 * trails the workflows a little: asks again until none is left or `waitMs` passed.
 */
export async function runningWorkflows(opts: {
  client: Client;
  workflowType: string;
  workflowIds: Iterable<string>;
  waitMs?: number;
}): Promise<string[]> {
  const ours = new Set(opts.workflowIds);
  const deadline = Date.now() + (opts.waitMs ?? 30_000);
  for (;;) {
    const running: string[] = [];
    for await (const wf of opts.client.workflow.list({
      query: `WorkflowType = '${opts.workflowType}' AND ExecutionStatus = 'Running'`,
    }))
      if (ours.has(wf.workflowId)) running.push(wf.workflowId);
    if (running.length === 0 || Date.now() > deadline) return running;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

/** The enrollment workflows of these records still running (see runningWorkflows). */
export function runningEnrollments(opts: {
  client: Client;
  profile: string;
  records: EnrollmentRecord[];
  waitMs?: number;
}): Promise<string[]> {
  return runningWorkflows({
    client: opts.client,
    workflowType: 'enrollment',
    workflowIds: opts.records.map((r) => enrollmentWorkflowId(opts.profile, r.transactionId)),
    ...(opts.waitMs !== undefined ? { waitMs: opts.waitMs } : {}),
  });
}
