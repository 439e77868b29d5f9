import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Payload } from '@temporalio/common';
import { and, eq } from 'drizzle-orm';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { handOffToLifecycle } from '../../activities/lifecycle.js';
import { PROJECT_ROOT } from '../../config/load.js';
import { devices } from '../../db/schema.js';
import { freePort } from '../../scripts/free-port.js';
import { findDevServerPid, isAlive } from '../../scripts/proc-stats.js';
import { startTemporalDevServer, type TemporalDevServer } from '../../scripts/temporal-dev-server.js';
import {
  type DeviceCertificate,
  type DeviceLifecycleState,
  deviceStateQuery,
  deviceWorkflowId,
} from '../../workflows/definitions.js';
import { encryptedClient } from '../support/encrypted-client.js';
import { type Pipeline, startPipeline } from '../support/pipeline.js';
import { scepclientEnroll } from '../support/scep-clients.js';
import { waitForWorkflows } from '../support/temporal.js';
import { startWorkerProcess, type WorkerProcess } from '../support/worker-process.js';

/**
 * A device's lifecycle lives for months: its timers must outlive any process, and its state must
 * cross continue-as-new intact. Real components: dev servers on SQLite, workers as OS processes.
 */

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const work = mkdtempSync(join(tmpdir(), 'lifecycle-durability-'));
const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => {});
  rmSync(work, { recursive: true, force: true });
});

const serverLog = (line: string) => console.log(`[durability temporal] ${line}`);

/** The harshest stop there is: SIGKILL to the dev server process, no chance to flush or close. */
async function killDevServer(server: TemporalDevServer, port: number): Promise<void> {
  const pid = findDevServerPid(port);
  if (pid === undefined) throw new Error(`no dev server process found on port ${port}`);
  process.kill(pid, 'SIGKILL');
  await server.exited;
  expect(isAlive(pid)).toBe(false);
}

function stopWorker(worker: WorkerProcess): () => Promise<void> {
  return async () => {
    if (worker.process.exitCode === null && worker.process.signalCode === null) {
      worker.process.kill('SIGKILL');
      await worker.exited;
    }
  };
}

describe('timers of a device lifecycle', () => {
  it('fire after the worker and the Temporal server were both SIGKILLed and restarted', async () => {
    const stack = inject('stack');
    const port = await freePort();
    const dbFile = join(work, 'temporal.sqlite');
    const start = () =>
      startTemporalDevServer({ projectRoot: PROJECT_ROOT, port, headless: true, dbFile, log: serverLog });
    let server = await start();
    cleanups.push(() => server.stop());

    // One profiles file for the API here and the worker processes: a one-minute certificate,
    // RenewalDue at 30 s, RenewalOverdue at 54 s (a tenth of the lifetime), Expired at 60 s.
    const config = JSON.parse(readFileSync(stack.env.PKI_CONFIG!, 'utf8'));
    const profile = config.profiles[0];
    profile.template.validitySeconds = 60;
    profile.template.backdateSeconds = 0;
    profile.renewalFraction = 0.5;
    const configFile = join(work, 'pki.json');
    writeFileSync(configFile, JSON.stringify(config));

    const pipeline: Pipeline = await startPipeline({
      temporalAddress: server.address,
      queues: [],
      enrollmentWaitMs: 20_000,
      configFile,
    });
    cleanups.push(() => pipeline.stop());
    const namespace = pipeline.client.options.namespace;
    const workerEnv = {
      ...stack.env,
      PKI_CONFIG: configFile,
      DATABASE_URL: stack.databaseUrl,
      TEMPORAL_ADDRESS: server.address,
      TEMPORAL_NAMESPACE: namespace,
    };
    let worker = await startWorkerProcess({ queues: 'pki,pki-hsm', env: workerEnv });
    cleanups.push(stopWorker(worker));

    const deviceId = `durable-${randomBytes(3).toString('hex')}`;
    const enrolled = await scepclientEnroll({
      url: `${pipeline.url}/scep`,
      challenge: 'test-challenge',
      cn: deviceId,
    });
    expect(enrolled.code, enrolled.output).toBe(0);
    const workflowId = deviceWorkflowId('devices', deviceId);
    const query = (status: string) =>
      `WorkflowId="${workflowId}" AND PkiStatus="${status}" AND ExecutionStatus="Running"`;
    const deviceStatus = async () => {
      const [row] = await pipeline.db.db
        .select({ status: devices.status })
        .from(devices)
        .where(and(eq(devices.profile, 'devices'), eq(devices.deviceId, deviceId)));
      return row?.status;
    };

    await waitForWorkflows(pipeline.client, query('Active'), 1);
    await expect.poll(deviceStatus, { timeout: 10_000 }).toBe('active');
    // Kill only once the lifecycle sleeps on its timer (the first run continues as new first).
    const timerStarted = async () => {
      const { runId } = await pipeline.client.workflow.getHandle(workflowId).describe();
      const { events } = await pipeline.client.workflow.getHandle(workflowId, runId).fetchHistory();
      return events!.some((e) => e.timerStartedEventAttributes);
    };
    await expect.poll(timerStarted, { timeout: 10_000, interval: 250 }).toBe(true);
    const before = await pipeline.client.workflow.getHandle(workflowId).query(deviceStateQuery);
    expect(before.status).toBe('Active');
    const renewalAt = Date.parse(before.current!.notBefore) + 30_000;

    // Both down, hard. The server stays down past the renewal point: that timer is due while
    // nothing runs and must fire on recovery; Expired is still ahead and must fire on time.
    worker.process.kill('SIGKILL');
    expect((await worker.exited).signal).toBe('SIGKILL');
    await killDevServer(server, port);
    await sleep(Math.max(renewalAt + 1_000 - Date.now(), 0));

    server = await start();
    worker = await startWorkerProcess({ queues: 'pki,pki-hsm', env: workerEnv });
    cleanups.push(stopWorker(worker));
    // A fresh connection for the checks: the pipeline's one saw its server die.
    const { client, close } = await encryptedClient(server.address, namespace);
    cleanups.push(close);

    await waitForWorkflows(client, query('RenewalDue'), 1, 30_000);
    await expect.poll(deviceStatus, { timeout: 10_000 }).toBe('renewal_due');
    await waitForWorkflows(client, query('Expired'), 1, 45_000);
    await expect.poll(deviceStatus, { timeout: 10_000 }).toBe('expired');

    const after = await client.workflow.getHandle(workflowId).query(deviceStateQuery);
    expect(after.current).toEqual(before.current);
    expect(after.seenSerials).toEqual(before.seenSerials);
  }, 150_000);
});

describe('continue-as-new of a device lifecycle', () => {
  it('keeps the certificate, status and seen serials, and the timers go on', async () => {
    const stack = inject('stack');
    // A history of 60 events already suggests continue-as-new (the default is 4 Ki events).
    const server = await startTemporalDevServer({
      projectRoot: PROJECT_ROOT,
      port: await freePort(),
      headless: true,
      dbFile: ':memory:',
      dynamicConfig: { 'limit.historyCount.suggestContinueAsNew': 60 },
      log: serverLog,
    });
    cleanups.push(() => server.stop());
    const worker = await startWorkerProcess({
      queues: 'pki',
      env: {
        ...stack.env,
        DATABASE_URL: stack.databaseUrl,
        TEMPORAL_ADDRESS: server.address,
        TEMPORAL_NAMESPACE: 'default',
      },
    });
    cleanups.push(stopWorker(worker));
    const { client, codec, close } = await encryptedClient(server.address, 'default');
    cleanups.push(close);

    // RenewalDue at 20 s, RenewalOverdue at 36 s, Expired at 40 s.
    const now = Date.now();
    const certificate: DeviceCertificate = {
      serialHex: randomBytes(16).toString('hex'),
      issuingCa: 'issuing-ca/devices',
      notBefore: new Date(now).toISOString(),
      notAfter: new Date(now + 40_000).toISOString(),
      enrollmentId: 'enroll/devices/can-test',
    };
    const deviceId = `can-${randomBytes(3).toString('hex')}`;
    const workflowId = deviceWorkflowId('devices', deviceId);
    const handOff = () =>
      handOffToLifecycle(client, {
        profile: 'devices',
        deviceId,
        policy: { renewalFraction: 0.5, supersededGraceSeconds: 3600 },
        certificate,
      });
    await handOff();
    const handle = client.workflow.getHandle(workflowId);
    await expect
      .poll(async () => (await handle.query(deviceStateQuery)).status, { timeout: 20_000 })
      .toBe('Active');
    // The first certificate is itself a renewal of nothing: the lifecycle continues as new right
    // after adopting it. The run that then sleeps on its timers is the one under test.
    const sleepingRun = async () => {
      const { runId } = await handle.describe();
      const { events } = await client.workflow.getHandle(workflowId, runId).fetchHistory();
      return events!.some((e) => e.timerStartedEventAttributes) ? runId : undefined;
    };
    await expect.poll(sleepingRun, { timeout: 10_000, interval: 250 }).toBeDefined();
    const firstRunId = (await sleepingRun())!;
    const before = await handle.query(deviceStateQuery);

    // Redelivered hand-offs of the same certificate: no-ops for the workflow, but each one is a
    // signal and a workflow task in its history.
    // Signals that arrive together share a workflow task, so send until the server says so.
    const firstRun = client.workflow.getHandle(workflowId, firstRunId);
    let events: Awaited<ReturnType<typeof firstRun.fetchHistory>>['events'] = [];
    let suggested = false;
    for (let i = 0; i < 200 && !suggested; i++) {
      await handOff();
      if (i % 5 < 4) continue;
      ({ events } = await firstRun.fetchHistory());
      suggested = events!.some((e) => e.workflowTaskStartedEventAttributes?.suggestContinueAsNew === true);
    }
    expect(events!.length).toBeGreaterThanOrEqual(60);
    expect(suggested, 'the server suggested continue-as-new').toBe(true);

    // The lifecycle continues as new at its next wake-up at the latest (the renewal point).
    await expect
      .poll(async () => (await handle.describe()).runId, { timeout: 30_000, interval: 500 })
      .not.toBe(firstRunId);
    const { status: firstStatus } = await firstRun.describe();
    expect(firstStatus.name).toBe('CONTINUED_AS_NEW');

    // What the new run was started with is exactly the state the old one held.
    const secondRun = client.workflow.getHandle(workflowId);
    const started = (await secondRun.fetchHistory()).events![0]!.workflowExecutionStartedEventAttributes!;
    expect(started.continuedExecutionRunId).toBe(firstRunId);
    // Stored encrypted: read through the codec, as an operator's codec server would.
    const [input] = await codec.decode([started.input!.payloads![0]! as Payload]);
    const carried = JSON.parse(Buffer.from(input!.data!).toString('utf8')).carried as
      | DeviceLifecycleState
      | undefined;
    expect(carried).toEqual(before);

    const after = await handle.query(deviceStateQuery);
    expect(after.current).toEqual(before.current);
    expect(after.seenSerials).toEqual(before.seenSerials);
    expect(after.superseded).toEqual(before.superseded);
    expect(['Active', 'RenewalDue']).toContain(after.status);

    // And the new run's timers fire: RenewalDue, then Expired.
    const status = async () => (await handle.query(deviceStateQuery)).status;
    await expect.poll(status, { timeout: 30_000, interval: 500 }).toMatch(/RenewalDue|RenewalOverdue/);
    await expect.poll(status, { timeout: 30_000, interval: 500 }).toBe('Expired');
    const [expired] = await waitForWorkflows(
      client,
      `WorkflowId="${workflowId}" AND PkiStatus="Expired" AND ExecutionStatus="Running"`,
      1,
    );
    expect(expired!.runId).not.toBe(firstRunId);
    // A duplicate after all this is still a no-op: the carried seen serials still hold it.
    await handOff();
    await sleep(1_000);
    expect(await status()).toBe('Expired');
  }, 120_000);
});
