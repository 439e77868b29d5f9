import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { bundleWorkflowCode } from '@temporalio/worker';
import { and, eq, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  type DeviceKey,
  type EnrollResult,
  generateDeviceKeys,
  openDeviceKeyToken,
  ScepClient,
} from '../../bench/scep-client/index.js';
import { PROJECT_ROOT } from '../../config/load.js';
import { certificates, crls } from '../../db/schema.js';
import { type Pipeline, startPipeline } from '../support/pipeline.js';
import { waitForWorkflows } from '../support/temporal.js';
import { startWorkerProcess, type WorkerProcess } from '../support/worker-process.js';

/**
 * A rolling deploy of the `pki` workers across a workflow change, as README "Deploying a workflow
 * change" tells operators to run it: the old release's workers keep polling while the new release's
 * start beside them, then the old ones get SIGTERM and drain.
 *
 * The old release is a real one: this repository at OLD_RELEASE, before `refreshCrls` gained the
 * OCSP responders' step behind `patched('ocsp-responders')`. Its workflow bundle is built from git;
 * both releases run today's activities (the activity contract is kept compatible across releases;
 * the workflow code is what a deploy changes and what non-determinism breaks).
 *
 * What an operator must be able to rely on, each asserted:
 * - while both run, requests go to either and every one is issued exactly once;
 * - an execution the old release began (blocked on the HSM host during the deploy) resumes on the
 *   new release after the old one is gone, replaying what the old one did, with no failed workflow
 *   task; a patch point it had not reached yet takes the new path;
 * - executions begun by the old release that are already past the change keep their history (a
 *   device's lifecycle begun on the old release takes an operator's revoke on the new one);
 * - executions started after the deploy run the new code (the patch marker and the new step).
 */
const OLD_RELEASE = 'cc3ae51';
const CHALLENGE = 'test-challenge';

let pipeline: Pipeline;
let workerEnv: Record<string, string>;
let oldRelease: { dir: string; bundle: string };
let oldWorker: WorkerProcess | undefined;
let newWorker: WorkerProcess | undefined;
let deviceToken: Awaited<ReturnType<typeof openDeviceKeyToken>>;
let keys: DeviceKey[];
let scep: ScepClient;

beforeAll(async () => {
  oldRelease = await buildReleaseBundle(OLD_RELEASE);
  process.env.OPERATOR_TOKEN ??= 'rolling-deploy-operator-token';
  const stack = inject('stack');
  // The devices' keys: a token of their own beside the run's, made before this process opens any
  // (SoftHSM reads its tokens once per process).
  deviceToken = await openDeviceKeyToken(stack.env.SOFTHSM_DIR!, 'rolling-devices');
  keys = await generateDeviceKeys(8, deviceToken);
  // The API in this process; the HSM host in this process, started and stopped by the test; the
  // `pki` workers (the ones being deployed) as OS processes, as production runs them.
  pipeline = await startPipeline({ queues: [], enrollmentWaitMs: 2_000 });
  workerEnv = {
    ...stack.env,
    DATABASE_URL: stack.databaseUrl,
    TEMPORAL_ADDRESS: pipeline.temporalAddress,
    TEMPORAL_NAMESPACE: pipeline.client.options.namespace,
  };
  scep = await ScepClient.connect({
    url: `${pipeline.url}/scep`,
    pollIntervalMs: 500,
    pollTimeoutMs: 180_000,
  });
}, 300_000);

afterAll(async () => {
  oldWorker?.process.kill('SIGKILL');
  newWorker?.process.kill('SIGKILL');
  scep?.close();
  await deviceToken?.close();
  await pipeline?.stop();
  if (oldRelease) rmSync(oldRelease.dir, { recursive: true, force: true });
});

describe('rolling deploy of the pki workers across a workflow change', () => {
  it('old and new releases side by side: nothing lost, nothing twice, old executions resume on the new release', async () => {
    const enroll = (n: number, commonName: string) =>
      scep.enroll({ key: keys[n % keys.length]!, commonName, challengePassword: CHALLENGE });

    // 1. The old release alone, the HSM host up: a device enrolls; its lifecycle begins on the old code.
    oldWorker = await startWorkerProcess({
      queues: 'pki',
      env: { ...workerEnv, WORKFLOW_BUNDLE: oldRelease.bundle },
    });
    const oldId = workerIdentity(oldWorker);
    await pipeline.startQueue('pki-hsm');
    const before = await enroll(0, 'rolling-before');
    expect(before.status).toBe('SUCCESS');
    const [lifecycle] = await waitForWorkflows(
      pipeline.client,
      'WorkflowType="deviceLifecycle" AND DeviceId="rolling-before" AND PkiStatus="Active"',
      1,
    );

    // 2. The HSM host goes away; work the old release begins now waits for it across the deploy: a CRL
    //    refresh (one CA's CRL made due) and an enrollment.
    await pipeline.stopQueue('pki-hsm');
    const dueCa = pipeline.config.profiles[0]!.ca;
    if (dueCa.type !== 'local-hsm') throw new Error('the test profile issues from the HSM');
    await pipeline.db.db
      .update(crls)
      .set({ nextUpdate: sql`now() + interval '1 hour'` })
      .where(eq(crls.issuingCa, dueCa.keyLabel));
    const refreshBegunOld = await pipeline.client.workflow.start('refreshCrls', {
      taskQueue: 'pki',
      workflowId: 'rolling-crl-refresh-before',
      args: [],
    });
    await waitForEvent(
      refreshBegunOld,
      (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'publishCrl',
    );
    const inFlight: Array<Promise<EnrollResult>> = [enroll(1, 'rolling-in-flight')];
    await waitForWorkflows(
      pipeline.client,
      'WorkflowType="enrollment" AND DeviceId="rolling-in-flight" AND PkiStatus="Issuing"',
      1,
    );

    // 3. The new release starts beside the old one: both poll; requests arriving now go to either.
    newWorker = await startWorkerProcess({ queues: 'pki', env: workerEnv });
    const newId = workerIdentity(newWorker);
    for (let n = 0; n < 6; n++) inFlight.push(enroll(n, `rolling-overlap-${n}`));
    await waitForWorkflows(
      pipeline.client,
      'WorkflowType="enrollment" AND DeviceId STARTS_WITH "rolling-overlap-" AND PkiStatus="Issuing"',
      6,
      60_000,
    );

    // 4. The old release drains and leaves; the HSM host returns. Everything finishes on the new release.
    oldWorker.process.kill('SIGTERM');
    expect((await oldWorker.exited).code).toBe(0);
    oldWorker = undefined;
    await pipeline.startQueue('pki-hsm');
    const results = await Promise.all(inFlight);
    expect(results.map((r) => r.status)).toEqual(Array(7).fill('SUCCESS'));
    // A deploy that breaks determinism blocks the old run with failed workflow tasks: say so, not time out.
    await completedWithoutTaskFailure(refreshBegunOld);

    // Exactly one certificate per transaction: 8 enrollments, 8 certificates for these devices.
    const issued = await pipeline.db.db
      .select({ deviceId: certificates.deviceId, serialHex: certificates.serialHex })
      .from(certificates)
      .where(sql`${certificates.deviceId} LIKE 'rolling-%'`);
    expect(issued).toHaveLength(8);
    expect(new Set(issued.map((c) => c.deviceId)).size).toBe(8);

    // The refresh the old release began: its first task by the old release, the rest by the new one
    // (replaying the old one's steps, no failed task); the new step taken where the new code asks.
    const begunOld = await refreshBegunOld.fetchHistory();
    const tasks = completedTaskIdentities(begunOld);
    expect(tasks[0]).toBe(oldId);
    expect(tasks.at(-1)).toBe(newId);
    expect(failedTasks(begunOld)).toEqual([]);
    expect(patchMarkers(begunOld)).toEqual(['ocsp-responders']);
    expect(scheduledActivities(begunOld)).toEqual(['listCrlsDue', 'publishCrl', 'certifyOcspResponders']);

    // The device whose lifecycle the old release began: an operator's revoke is taken by the new one.
    const revoke = await fetch(`${pipeline.operatorUrl}/operator/devices/devices/rolling-before/revoke`, {
      method: 'POST',
      headers: { authorization: `Bearer ${process.env.OPERATOR_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ reason: 'superseded', by: 'rolling-deploy-test' }),
    });
    expect(revoke.status, await revoke.text()).toBe(202);
    await expect
      .poll(
        async () =>
          (
            await pipeline.db.db
              .select({ status: certificates.status })
              .from(certificates)
              .where(
                and(
                  eq(certificates.deviceId, 'rolling-before'),
                  eq(certificates.serialHex, before.status === 'SUCCESS' ? before.serialHex : ''),
                ),
              )
          )[0]?.status,
        { timeout: 30_000 },
      )
      .toBe('revoked');
    const lifecycleHistory = await pipeline.client.workflow
      .getHandle(lifecycle!.workflowId, lifecycle!.runId)
      .fetchHistory();
    const lifecycleTasks = completedTaskIdentities(lifecycleHistory);
    expect(lifecycleTasks[0]).toBe(oldId);
    expect(lifecycleTasks.at(-1)).toBe(newId);
    expect(failedTasks(lifecycleHistory)).toEqual([]);

    // After the deploy: new executions run the new code only.
    const refreshAfter = await pipeline.client.workflow.start('refreshCrls', {
      taskQueue: 'pki',
      workflowId: 'rolling-crl-refresh-after',
      args: [],
    });
    await refreshAfter.result();
    const after = await refreshAfter.fetchHistory();
    expect(new Set(completedTaskIdentities(after))).toEqual(new Set([newId]));
    expect(patchMarkers(after)).toEqual(['ocsp-responders']);
    expect(scheduledActivities(after)).toContain('certifyOcspResponders');
  }, 240_000);
});

/** The workflow bundle of an earlier commit of this repository, built as `npm run build` builds it. */
async function buildReleaseBundle(commit: string): Promise<{ dir: string; bundle: string }> {
  const dir = mkdtempSync(join(tmpdir(), `release-${commit}-`));
  try {
    execFileSync('sh', ['-c', `git -C "${PROJECT_ROOT}" archive ${commit} | tar -x -C "${dir}"`], {
      stdio: 'pipe',
    });
  } catch (err) {
    throw new Error(
      `cannot read release ${commit} from git (a shallow clone? git fetch --unshallow): ${String((err as { stderr?: Buffer }).stderr ?? err)}`,
    );
  }
  symlinkSync(join(PROJECT_ROOT, 'node_modules'), join(dir, 'node_modules'));
  const { code } = await bundleWorkflowCode({ workflowsPath: join(dir, 'workflows', 'index.ts') });
  const bundle = join(dir, 'workflow-bundle.js');
  writeFileSync(bundle, code);
  return { dir, bundle };
}

type History = temporal.api.history.v1.IHistory;
type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

/** The Temporal identity a worker process polls with (the SDK's default: pid@host). */
function workerIdentity(worker: WorkerProcess): string {
  return `${worker.process.pid}@`;
}

/** Who completed each workflow task, in order (identities shortened to `pid@`). */
function completedTaskIdentities(history: History): string[] {
  return (history.events ?? []).flatMap((e) => {
    const identity = e.workflowTaskCompletedEventAttributes?.identity;
    return identity ? [`${identity.split('@')[0]}@`] : [];
  });
}

function failedTasks(history: History): string[] {
  return (history.events ?? []).flatMap((e) =>
    e.workflowTaskFailedEventAttributes ? [String(e.workflowTaskFailedEventAttributes.failure?.message)] : [],
  );
}

function patchMarkers(history: History): string[] {
  return (history.events ?? []).flatMap((e) => {
    const marker = e.markerRecordedEventAttributes;
    if (marker?.markerName !== 'core_patch') return [];
    // The SDK's patch marker: {"id": <patch>, "deprecated": <bool>} as plain JSON (never encrypted).
    const data = marker.details?.['patch-data']?.payloads?.[0]?.data;
    return data ? [(JSON.parse(Buffer.from(data).toString('utf8')) as { id: string }).id] : [];
  });
}

function scheduledActivities(history: History): string[] {
  return (history.events ?? []).flatMap((e) => {
    const name = e.activityTaskScheduledEventAttributes?.activityType?.name;
    return name ? [name] : [];
  });
}

async function completedWithoutTaskFailure(handle: WorkflowHandle): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const history = await handle.fetchHistory();
    const failed = failedTasks(history);
    if (failed.length > 0) throw new Error(`${handle.workflowId}: workflow task failed: ${failed[0]}`);
    if ((history.events ?? []).some((e) => e.workflowExecutionCompletedEventAttributes)) return;
    if (Date.now() > deadline) throw new Error(`${handle.workflowId} did not complete`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

async function waitForEvent(handle: WorkflowHandle, match: (e: HistoryEvent) => boolean): Promise<void> {
  await expect
    .poll(async () => ((await handle.fetchHistory()).events ?? []).some(match), { timeout: 30_000 })
    .toBe(true);
}
