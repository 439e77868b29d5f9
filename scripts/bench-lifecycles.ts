import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { handOffToLifecycle } from '../activities/lifecycle.js';
import { loadPkiConfig, PROJECT_ROOT } from '../config/load.js';
import { runtimeSettings } from '../config/runtime.js';
import type { TokenSet } from '../hsm/token-set.js';
import { openProvisionedTokens, payloadCodecOf } from '../runtime/services.js';
import { deviceWorkflowId, type LifecyclePolicy, TASK_QUEUE } from '../workflows/definitions.js';
import { freePort } from './free-port.js';
import { coresBetween, findDevServerPid, type ProcSample, sampleProcess, sqliteBytes } from './proc-stats.js';
import { startProductProcess } from './product-process.js';
import { startTemporalDevServer } from './temporal-dev-server.js';

/**
 * `npm run bench:lifecycles -- --count 5000`: what N idle device lifecycles cost. Brings up a
 * throwaway stack (dev server on a SQLite file with the WAL pragmas, as `npm run dev` runs it; one
 * worker process for the `pki` queue, as `npm run worker` runs it; PGlite in a temp dir unless
 * DATABASE_URL is set), starts N `deviceLifecycle` workflows the way activities/lifecycle.ts does
 * (signal-with-start `certificateIssued`) with 30-day certificates, so every timer stays pending,
 * then measures the start-up and a steady state with everything asleep. Linux only (/proc).
 */
const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '1000' },
    concurrency: { type: 'string', default: '32' },
    'steady-seconds': { type: 'string', default: '60' },
    'extrapolate-to': { type: 'string', default: '30000' },
    'lifetime-days': { type: 'string', default: '30' },
  },
});
const count = Number(values.count);
const concurrency = Number(values.concurrency);
const steadySeconds = Number(values['steady-seconds']);
const target = Number(values['extrapolate-to']);
const lifetimeMs = Number(values['lifetime-days']) * 86_400_000;
/** The benchmark must end by itself, whatever happens. */
const HARD_LIMIT_MS = 14 * 60_000;

const log = (line: string) => console.log(`[bench] ${line}`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const kb = (bytes: number) => `${(bytes / 1024).toFixed(1)} KB`;

const work = mkdtempSync(join(tmpdir(), 'device-pki-bench-lifecycles-'));
process.env.PKI_DATA_DIR = work;
process.env.TEMPORAL_LOG_LEVEL ??= 'WARN';
const settings = runtimeSettings();
const config = loadPkiConfig();
const profile = config.profiles[0]!;
const policy: LifecyclePolicy = {
  renewalFraction: profile.renewalFraction,
  renewalLeadSeconds: profile.lifecycle.renewalLeadSeconds,
  overdueMarginSeconds: profile.lifecycle.overdueMarginSeconds,
  supersededGraceSeconds: profile.lifecycle.supersededGraceSeconds,
};

let worker: ChildProcess | undefined;
let stopServer: () => Promise<void> = async () => {};
let tokens: TokenSet | undefined;
let connection: Connection | undefined;
const hardLimit = setTimeout(() => {
  console.error(`[bench] still running after ${HARD_LIMIT_MS / 60_000} min: giving up`);
  worker?.kill('SIGKILL');
  void stopServer().finally(() => process.exit(1));
}, HARD_LIMIT_MS);

/** `npm run worker -- --queues pki` as a child process, so its memory and CPU are its own. */
async function startWorker(env: Record<string, string>): Promise<ChildProcess> {
  const worker = await startProductProcess({
    script: 'worker/main.ts',
    args: ['--queues', 'pki'],
    env,
    ready: /\[worker\] polling/,
    timeoutMs: 120_000,
  });
  const child = worker.process;
  // Its own output is kept (startProductProcess) and shown if it dies: the samples would fail next.
  child.once('exit', (code, signal) => {
    if (code !== 0)
      process.stderr.write(`[worker] exited ${code ?? signal}:\n${worker.output().slice(-3000)}\n`);
  });
  return child;
}

interface Phase {
  worker: ProcSample;
  server: ProcSample;
  sqlite: number;
}

try {
  // The worker needs the field-encryption key and the CA hierarchy in its tokens; this process the
  // data token's payload codec, as every product client (lifecycle inputs are encrypted as in production).
  tokens = await openProvisionedTokens(settings, config);

  const port = await freePort();
  const dbFile = join(work, 'temporal.sqlite');
  const server = await startTemporalDevServer({
    projectRoot: PROJECT_ROOT,
    port,
    headless: true,
    dbFile,
    log,
  });
  stopServer = server.stop;
  const serverPid = findDevServerPid(port);
  if (serverPid === undefined) throw new Error(`no dev server process on port ${port}`);

  worker = await startWorker({ TEMPORAL_ADDRESS: server.address, TEMPORAL_NAMESPACE: 'default' });
  const workerPid = worker.pid!;
  connection = await Connection.connect({ address: server.address });
  const client = new Client({
    connection,
    namespace: 'default',
    dataConverter: { payloadCodecs: [payloadCodecOf(tokens.get('data'))] },
  });
  log(
    `dev server pid ${serverPid} (${dbFile}), worker pid ${workerPid} (${settings.databaseUrl ? 'Postgres' : 'PGlite'}), ` +
      `${count} lifecycles, concurrency ${concurrency}`,
  );

  const sample = (): Phase => ({
    worker: sampleProcess(workerPid),
    server: sampleProcess(serverPid),
    sqlite: sqliteBytes(dbFile).total,
  });
  // Idle: the worker has bundled its workflows and polls, the server has nothing to do.
  await sleep(5_000);
  const idle0 = sample();
  await sleep(10_000);
  const idle = sample();
  const idleWorkerCores = coresBetween(idle0.worker, idle.worker);
  const idleServerCores = coresBetween(idle0.server, idle.server);

  // Start N lifecycles as the enrollment's hand-off does, a bounded number at a time.
  const started0 = performance.now();
  const now = Date.now();
  let next = 0;
  let failures = 0;
  const lanes = Array.from({ length: concurrency }, async () => {
    for (let i = next++; i < count; i = next++) {
      const deviceId = `bench-${String(i).padStart(6, '0')}`;
      const notBefore = now - (i % 3600) * 1000;
      try {
        await handOffToLifecycle(client, {
          profile: profile.name,
          deviceId,
          policy,
          certificate: {
            serialHex: randomBytes(16).toString('hex'),
            issuingCa: `issuing-ca/${profile.name}`,
            notBefore: new Date(notBefore).toISOString(),
            notAfter: new Date(notBefore + lifetimeMs).toISOString(),
            enrollmentId: `enroll/${profile.name}/bench-${i}`,
          },
        });
      } catch (err) {
        failures++;
        if (failures <= 3) log(`start of ${deviceId} failed: ${(err as Error).message}`);
      }
    }
  });
  let peakWorkerRss = 0;
  let peakServerRss = 0;
  const peaks = setInterval(() => {
    const s = sample();
    peakWorkerRss = Math.max(peakWorkerRss, s.worker.rssBytes);
    peakServerRss = Math.max(peakServerRss, s.server.rssBytes);
  }, 1000);
  await Promise.all(lanes);
  const signalledMs = performance.now() - started0;
  log(
    `${count - failures} signal-with-start calls in ${(signalledMs / 1000).toFixed(1)} s (${failures} failed)`,
  );

  // Active and asleep: the first certificate's run records it and waits on its renewal timer (it
  // continues as new only after a renewal, or when Temporal suggests it).
  const countOf = async (query: string) => Number((await client.workflow.count(query)).count);
  const activeQuery = 'WorkflowType="deviceLifecycle" AND PkiStatus="Active" AND ExecutionStatus="Running"';
  let active = 0;
  for (;;) {
    active = await countOf(activeQuery);
    if (active >= count - failures) break;
    if (performance.now() - started0 > 10 * 60_000) throw new Error(`only ${active} Active after 10 min`);
    await sleep(1000);
  }
  const activeMs = performance.now() - started0;
  log(`${active} Active in ${(activeMs / 1000).toFixed(1)} s`);
  // Visibility shows the new run Active as soon as it starts (it inherits the search attributes);
  // its first workflow task, the one that starts the timer, may still be queued. Asleep means: no
  // backlog, and worker and server back to their idle CPU.
  const backlog = async (taskQueueType: number) => {
    const { stats } = await client.workflowService.describeTaskQueue({
      namespace: 'default',
      taskQueue: { name: TASK_QUEUE },
      taskQueueType,
      reportStats: true,
    });
    return Number(stats?.approximateBacklogCount ?? 0);
  };
  for (let previous = sample(); ; ) {
    await sleep(3_000);
    const current = sample();
    const [workflowTasks, activityTasks] = await Promise.all([backlog(1), backlog(2)]);
    const quiet =
      coresBetween(previous.worker, current.worker) < idleWorkerCores + 0.05 &&
      coresBetween(previous.server, current.server) < idleServerCores + 0.05;
    if (workflowTasks === 0 && activityTasks === 0 && quiet) break;
    if (performance.now() - started0 > 12 * 60_000) {
      log(
        `not quiet after 12 min (backlog ${workflowTasks} workflow, ${activityTasks} activity tasks): measuring anyway`,
      );
      break;
    }
    previous = current;
  }
  const asleepMs = performance.now() - started0;
  clearInterval(peaks);
  const afterStart = sample();
  peakWorkerRss = Math.max(peakWorkerRss, afterStart.worker.rssBytes);
  peakServerRss = Math.max(peakServerRss, afterStart.server.rssBytes);
  log(`all asleep after ${(asleepMs / 1000).toFixed(1)} s`);

  // One device's histories: what each lifecycle stores.
  const sampleId = deviceWorkflowId(profile.name, 'bench-000000');
  const current = await client.workflow.getHandle(sampleId).describe();
  const currentHistory = await client.workflow.getHandle(sampleId, current.runId).fetchHistory();
  const historyBytes = (h: typeof currentHistory) => {
    const started = h.events!.filter((e) => e.workflowTaskStartedEventAttributes?.historySizeBytes);
    return Number(started.at(-1)?.workflowTaskStartedEventAttributes?.historySizeBytes ?? 0);
  };

  // Steady state: every lifecycle asleep on a timer 20 days out.
  const steady0 = sample();
  let steadyMaxWorker = 0;
  let steadyMaxServer = 0;
  let steadyMinWorker = Number.POSITIVE_INFINITY;
  for (let t = 0; t < steadySeconds; t += 5) {
    await sleep(5_000);
    const s = sample();
    steadyMaxWorker = Math.max(steadyMaxWorker, s.worker.rssBytes);
    steadyMinWorker = Math.min(steadyMinWorker, s.worker.rssBytes);
    steadyMaxServer = Math.max(steadyMaxServer, s.server.rssBytes);
  }
  const steady1 = sample();

  const rows: Array<[string, string, string, string]> = [
    ['', 'idle (0 lifecycles)', `after start (${count})`, `steady ${steadySeconds} s (${count})`],
    [
      'worker RSS',
      mb(idle.worker.rssBytes),
      `${mb(afterStart.worker.rssBytes)} (peak ${mb(peakWorkerRss)})`,
      `${mb(steady1.worker.rssBytes)} (${mb(steadyMinWorker)}-${mb(steadyMaxWorker)})`,
    ],
    [
      'worker CPU',
      `${idleWorkerCores.toFixed(3)} cores`,
      `${(afterStart.worker.cpuSeconds - idle.worker.cpuSeconds).toFixed(1)} s (${coresBetween(idle.worker, afterStart.worker).toFixed(2)} cores)`,
      `${(steady1.worker.cpuSeconds - steady0.worker.cpuSeconds).toFixed(2)} s (${coresBetween(steady0.worker, steady1.worker).toFixed(3)} cores)`,
    ],
    [
      'dev server RSS',
      mb(idle.server.rssBytes),
      `${mb(afterStart.server.rssBytes)} (peak ${mb(peakServerRss)})`,
      `${mb(steady1.server.rssBytes)} (max ${mb(steadyMaxServer)})`,
    ],
    [
      'dev server CPU',
      `${idleServerCores.toFixed(3)} cores`,
      `${(afterStart.server.cpuSeconds - idle.server.cpuSeconds).toFixed(1)} s (${coresBetween(idle.server, afterStart.server).toFixed(2)} cores)`,
      `${(steady1.server.cpuSeconds - steady0.server.cpuSeconds).toFixed(2)} s (${coresBetween(steady0.server, steady1.server).toFixed(3)} cores)`,
    ],
    ['SQLite (db+wal+shm)', mb(idle.sqlite), mb(afterStart.sqlite), mb(steady1.sqlite)],
  ];
  const widths = [0, 1, 2, 3].map((c) => Math.max(...rows.map((r) => r[c]!.length)));
  console.log('');
  for (const row of rows) console.log(row.map((cell, c) => cell.padEnd(widths[c]!)).join('  '));

  const n = count - failures;
  const perDevice = (a: number, b: number) => (b - a) / n;
  const wRss = perDevice(idle.worker.rssBytes, steady1.worker.rssBytes);
  const sRss = perDevice(idle.server.rssBytes, steady1.server.rssBytes);
  const sql = perDevice(idle.sqlite, steady1.sqlite);
  const startSecondsPerDevice = asleepMs / 1000 / n;
  const renewalEveryMs =
    policy.renewalLeadSeconds !== undefined
      ? lifetimeMs - policy.renewalLeadSeconds * 1000
      : lifetimeMs * policy.renewalFraction;
  console.log(`
Start: ${n} lifecycles signal-with-started in ${(signalledMs / 1000).toFixed(1)} s, all Active in visibility after ${(activeMs / 1000).toFixed(1)} s, all asleep (no backlog, idle CPU) after ${(asleepMs / 1000).toFixed(1)} s = ${(n / (asleepMs / 1000)).toFixed(1)} lifecycles/s
Per device: one run, ${currentHistory.events!.length} events / ${kb(historyBytes(currentHistory))} asleep on its renewal timer
Marginal cost per lifecycle (steady minus idle, / ${n}): worker RSS ${kb(wRss)}, dev server RSS ${kb(sRss)}, SQLite ${kb(sql)}

Linear extrapolation to ${target} lifecycles (idle + per-device x ${target}):
  SQLite file         ${mb(idle.sqlite + sql * target)}   (scales with N: histories, mutable state, visibility rows, one timer task each)
  dev server RSS      ${mb(idle.server.rssBytes + sRss * target)}   (history/mutable-state caches are bounded; pending timers live in SQLite, not in memory)
  worker RSS          ${mb(steady1.worker.rssBytes)} measured at ${n}; not linear in N: the workflow cache holds min(N, maxCachedWorkflows = 1000) runs (naive linear: ${mb(idle.worker.rssBytes + wRss * target)})
  start-up to Active  ${((startSecondsPerDevice * target) / 60).toFixed(1)} min   (one-off: a dev server on one SQLite shard, 2 cores)
  steady CPU          worker ${coresBetween(steady0.worker, steady1.worker).toFixed(3)} cores, dev server ${coresBetween(steady0.server, steady1.server).toFixed(3)} cores at ${n} (idle timers cost no CPU; work comes when they fire: ${target} devices renewing every ${(renewalEveryMs / 86_400_000).toFixed(1)} days = ${(target / (renewalEveryMs / 1000)).toFixed(3)} renewals/s on average)
`);
} finally {
  clearTimeout(hardLimit);
  await connection?.close().catch(() => {});
  await tokens?.close().catch(() => {});
  if (worker && worker.exitCode === null) {
    const exited = new Promise((r) => worker!.once('exit', r));
    worker.kill('SIGTERM');
    const timer = setTimeout(() => worker?.kill('SIGKILL'), 30_000);
    await exited;
    clearTimeout(timer);
  }
  await stopServer();
  rmSync(work, { recursive: true, force: true });
}
process.exit(0);
