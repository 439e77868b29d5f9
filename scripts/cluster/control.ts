/**
 * The cluster as a whole: `up`, `down`, `status`, and the fault controls tests use (kill a process, restart
 * it, restart the Temporal server). scripts/cluster.ts is the command line over these functions.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, rmSync, writeSync } from 'node:fs';
import { join, relative } from 'node:path';
import { loadPkiConfig } from '../../config/load.js';
import { dropLoginRole } from '../../db/roles.js';
import { ensureSearchAttributes } from '../temporal-dev-server.js';
import {
  connectToTemporal,
  dropDatabase,
  ensureDatabase,
  ensureNamespace,
  findOrBuildTemporalServer,
  findOrBuildTemporalUi,
  setupTemporalSchema,
  type TemporalServerBinaries,
  writeTemporalServerConfig,
  writeTemporalUiConfig,
} from '../temporal-server.js';
import {
  isAlive,
  killProcess as killRecorded,
  logFile,
  logTail,
  probe,
  type RunRecord,
  readRecord,
  readRecords,
  type StopOutcome,
  type SupervisorDirs,
  startProcess,
  stopProcess,
  waitReady,
  withLock,
} from './supervisor.js';
import {
  type ClusterSettings,
  databaseAppRole,
  databaseUrl,
  type ProcessSpec,
  productProcesses,
  provisioningSteps,
  roleEnv,
  statePaths,
  temporalAddress,
} from './topology.js';

type Log = (line: string) => void;
const defaultLog: Log = (line) => process.stderr.write(`[cluster] ${line}\n`);

/** How long each role may take to become ready after start (cold starts on 2 cores). */
const READY_TIMEOUT_MS: Record<ProcessSpec['role'], number> = {
  temporal: 120_000,
  'temporal-ui': 30_000,
  'worker-pki': 180_000,
  'worker-pki-hsm': 120_000,
  api: 90_000,
};

function dirs(settings: ClusterSettings): SupervisorDirs {
  const p = statePaths(settings);
  return { run: p.run, logs: p.logs };
}

export interface Binaries extends TemporalServerBinaries {
  /** Undefined when the Web UI could not be found or built (see `uiError`). */
  ui: string | undefined;
  uiError?: string;
}

/** Finds (or builds, the first time) the server, the schema tool and the Web UI. */
export async function clusterBinaries(settings: ClusterSettings, log: Log = defaultLog): Promise<Binaries> {
  const toolLog = (line: string) => log(`[build] ${line}`);
  const server = await findOrBuildTemporalServer({ projectRoot: settings.projectRoot, log: toolLog });
  if (!settings.ui) return { ...server, ui: undefined, uiError: 'disabled (CLUSTER_UI=0)' };
  try {
    return {
      ...server,
      ui: await findOrBuildTemporalUi({ projectRoot: settings.projectRoot, log: toolLog }),
    };
  } catch (err) {
    const uiError = (err as Error).message;
    log(`no Web UI: ${uiError.split('\n')[0]}; the cluster runs without it (use the \`temporal\` CLI)`);
    return { ...server, ui: undefined, uiError };
  }
}

/** The Temporal server's process spec; writes its config files. */
function temporalServerSpec(settings: ClusterSettings, binaries: Binaries): ProcessSpec {
  const paths = statePaths(settings);
  const { args } = writeTemporalServerConfig({
    dir: paths.temporal,
    adminUrl: settings.postgresUrl,
    databases: {
      persistence: settings.databases.temporal,
      visibility: settings.databases.temporalVisibility,
    },
    ports: settings.ports,
    historyShards: settings.historyShards,
    logLevel: settings.temporalLogLevel,
    dynamicConfig: settings.temporalDynamicConfig,
  });
  return {
    name: 'temporal',
    role: 'temporal',
    command: binaries.server,
    args,
    env: () => roleEnv('temporal', settings),
    cwd: paths.temporal,
    port: settings.ports.frontend,
    ready: { kind: 'temporal', address: temporalAddress(settings) },
    stopTimeoutMs: 20_000,
    tier: 0,
  };
}

function temporalUiSpec(settings: ClusterSettings, ui: string): ProcessSpec {
  const paths = statePaths(settings);
  const { args } = writeTemporalUiConfig({
    dir: paths.ui,
    port: settings.ports.ui,
    frontend: temporalAddress(settings),
    namespace: settings.namespace,
  });
  return {
    name: 'temporal-ui',
    role: 'temporal-ui',
    command: ui,
    args,
    env: () => roleEnv('temporal-ui', settings),
    cwd: paths.ui,
    port: settings.ports.ui,
    ready: { kind: 'http', url: `http://127.0.0.1:${settings.ports.ui}/` },
    stopTimeoutMs: 5_000,
    tier: 1,
  };
}

/** Every process of the cluster, in start order. */
export function clusterProcesses(settings: ClusterSettings, binaries: Binaries): ProcessSpec[] {
  return [
    temporalServerSpec(settings, binaries),
    ...(binaries.ui ? [temporalUiSpec(settings, binaries.ui)] : []),
    ...productProcesses(settings),
  ];
}

/** Runs a one-shot step to completion, output appended to logs/provision.log. */
async function runStep(settings: ClusterSettings, step: { name: string; command: string; args: string[] }) {
  const d = dirs(settings);
  mkdirSync(d.logs, { recursive: true });
  const log = logFile(d, 'provision');
  const fd = openSync(log, 'a');
  writeSync(fd, `\n--- ${new Date().toISOString()} ${step.name}: ${step.command} ${step.args.join(' ')}\n`);
  const { size } = fstatSync(fd);
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(step.command, step.args, {
        cwd: settings.projectRoot,
        env: roleEnv('provision', settings),
        stdio: ['ignore', fd, fd],
      });
      child.once('error', reject);
      child.once('exit', (c) => resolve(c));
    });
    if (code !== 0) throw new Error(`${step.name} failed (exit ${code}). ${log}:\n${logTail(log, 30, size)}`);
  } finally {
    closeSync(fd);
  }
}

/** Product database, HSM token and CA hierarchy, migrations: `npm run hsm:init` + `npm run db:migrate`. */
async function provision(settings: ClusterSettings, log: Log): Promise<void> {
  if (await ensureDatabase(settings.postgresUrl, settings.databases.pki))
    log(`created database ${settings.databases.pki}`);
  for (const step of provisioningSteps()) {
    const started = Date.now();
    await runStep(settings, step);
    log(`${step.name} done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
}

/**
 * Databases and schema (skipped on a restart: a crashed server comes back the way a service manager would
 * restart it), config, process, then namespace and search attributes.
 */
async function startTemporal(
  settings: ClusterSettings,
  binaries: Binaries,
  log: Log,
  opts: { schema: boolean } = { schema: true },
): Promise<void> {
  const d = dirs(settings);
  const existing = readRecord(d, 'temporal');
  if (opts.schema && (!existing || !isAlive(existing))) {
    const started = Date.now();
    await setupTemporalSchema({
      sqlTool: binaries.sql,
      adminUrl: settings.postgresUrl,
      databases: {
        persistence: settings.databases.temporal,
        visibility: settings.databases.temporalVisibility,
      },
      log,
    });
    log(`Temporal schema ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
  await startAndWait(settings, temporalServerSpec(settings, binaries), log);
  const connection = await connectToTemporal(temporalAddress(settings), Date.now() + 60_000);
  try {
    const deadline = Date.now() + 60_000;
    await ensureNamespace(connection, settings.namespace, settings.retentionDays, deadline, log);
    // Right after registering, the namespace may not be served everywhere yet: retry until the deadline.
    for (;;) {
      try {
        await ensureSearchAttributes(connection, settings.namespace, log);
        break;
      } catch (err) {
        if (/another type/.test((err as Error).message) || Date.now() > deadline) throw err;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  } finally {
    await connection.close();
  }
}

async function startAndWait(settings: ClusterSettings, spec: ProcessSpec, log: Log): Promise<RunRecord> {
  const { record, started } = await startProcess(dirs(settings), spec);
  if (!started) {
    log(`${spec.name} already running (pid ${record.pid})`);
    return record;
  }
  const t0 = Date.now();
  await waitReady(spec, record, READY_TIMEOUT_MS[spec.role]);
  log(`${spec.name} ready (pid ${record.pid}, ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  return record;
}

export interface UpReport {
  seconds: number;
  /** Wall time of each phase, seconds. */
  phases: Record<string, number>;
  binaries: Binaries;
}

/**
 * Brings the whole cluster up; returns once every process is ready. Idempotent: running processes are kept,
 * missing ones started. Temporal (schema, server, namespace) and provisioning (database, HSM, migrations) run
 * side by side; then the workers; then the API replicas.
 */
export async function clusterUp(settings: ClusterSettings, log: Log = defaultLog): Promise<UpReport> {
  mkdirSync(settings.stateDir, { recursive: true });
  return withLock(statePaths(settings).lock, async () => {
    const t0 = Date.now();
    const phases: Record<string, number> = {};
    const timed = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
      const s = Date.now();
      try {
        return await fn();
      } finally {
        phases[name] = (Date.now() - s) / 1000;
      }
    };
    const binaries = await timed('binaries', () => clusterBinaries(settings, log));
    // Provisioning runs before product processes start; with all of them running there is nothing to do.
    const d = dirs(settings);
    const productRunning = productProcesses(settings).every((s) => {
      const r = readRecord(d, s.name);
      return r !== undefined && isAlive(r);
    });
    await Promise.all([
      timed('temporal', () => startTemporal(settings, binaries, log)),
      productRunning
        ? log('product processes all running: provisioning skipped')
        : timed('provision', () => provision(settings, log)),
    ]);
    const specs = clusterProcesses(settings, binaries).filter((s) => s.role !== 'temporal');
    for (const tier of [...new Set(specs.map((s) => s.tier))].sort((a, b) => a - b)) {
      const group = specs.filter((s) => s.tier === tier);
      await timed(`tier-${tier} (${group.map((s) => s.name).join(', ')})`, () =>
        Promise.all(group.map((s) => startAndWait(settings, s, log))),
      );
    }
    return { seconds: (Date.now() - t0) / 1000, phases, binaries };
  });
}

/** Stops every recorded process, highest tier first (APIs, then workers, then the UI, then Temporal). */
export async function clusterDown(
  settings: ClusterSettings,
  log: Log = defaultLog,
): Promise<Array<{ name: string; outcome: StopOutcome }>> {
  if (!existsSync(settings.stateDir)) {
    log('nothing running');
    return [];
  }
  return withLock(statePaths(settings).lock, async () => {
    const d = dirs(settings);
    const records = readRecords(d);
    const outcomes: Array<{ name: string; outcome: StopOutcome }> = [];
    for (const tier of [...new Set(records.map((r) => r.tier))].sort((a, b) => b - a)) {
      const group = records.filter((r) => r.tier === tier);
      await Promise.all(
        group.map(async (r) => {
          const outcome = await stopProcess(d, r.name);
          outcomes.push({ name: r.name, outcome });
          log(`${r.name}: ${outcome}`);
        }),
      );
    }
    if (records.length === 0) log('nothing running');
    return outcomes;
  });
}

export interface ProcessStatus {
  name: string;
  role: string;
  pid: number | undefined;
  alive: boolean;
  /** Readiness probe answered (API /readyz, UI, Temporal frontend); undefined for workers. */
  serving: boolean | undefined;
  port: number | undefined;
  log: string;
}

export interface ClusterStatus {
  stateDir: string;
  processes: ProcessStatus[];
  scepUrls: string[];
  temporalAddress: string;
  uiUrl: string | undefined;
  /** Operator API, MDM webhooks and codec server (HTTPS), one per API replica. */
  operatorUrls: string[];
  operatorTokenFile: string;
}

/** Every process the topology names (and any other recorded one), whether it runs, and where to reach it. */
export async function clusterStatus(settings: ClusterSettings): Promise<ClusterStatus> {
  const d = dirs(settings);
  const records = new Map(readRecords(d).map((r) => [r.name, r]));
  const expected: Array<{ name: string; role: string; port?: number; ready?: ProcessSpec['ready'] }> = [
    { name: 'temporal', role: 'temporal', port: settings.ports.frontend },
    ...(settings.ui
      ? [
          {
            name: 'temporal-ui',
            role: 'temporal-ui',
            port: settings.ports.ui,
            ready: { kind: 'http', url: `http://127.0.0.1:${settings.ports.ui}/` } as const,
          },
        ]
      : []),
    ...productProcesses(settings).map((s) => ({
      name: s.name,
      role: s.role,
      ready: s.ready,
      ...(s.port ? { port: s.port } : {}),
    })),
  ];
  for (const r of records.values()) {
    if (!expected.some((e) => e.name === r.name))
      expected.push({ name: r.name, role: r.role, ...(r.port ? { port: r.port } : {}) });
  }
  const processes = await Promise.all(
    expected.map(async (e): Promise<ProcessStatus> => {
      const r = records.get(e.name);
      const alive = r !== undefined && isAlive(r);
      const ready =
        e.name === 'temporal' ? ({ kind: 'temporal', address: temporalAddress(settings) } as const) : e.ready;
      const serving = alive && ready && ready.kind !== 'log' ? await probe(ready, r) : undefined;
      return {
        name: e.name,
        role: e.role,
        pid: alive ? r.pid : undefined,
        alive,
        serving,
        port: e.port,
        log: logFile(d, e.name),
      };
    }),
  );
  let profiles: string[] = [];
  try {
    profiles = loadPkiConfig({
      ...process.env,
      ...(settings.pkiConfig ? { PKI_CONFIG: settings.pkiConfig } : {}),
    }).profiles.map((p) => p.name);
  } catch {
    // status must work with a broken profiles file too
  }
  const scepUrls = settings.ports.api.flatMap((port) => [
    `http://127.0.0.1:${port}/scep`,
    ...profiles.map((p) => `http://127.0.0.1:${port}/scep/${p}`),
  ]);
  const uiUp = processes.find((p) => p.name === 'temporal-ui')?.alive === true;
  return {
    stateDir: settings.stateDir,
    processes,
    scepUrls,
    temporalAddress: temporalAddress(settings),
    uiUrl: uiUp ? `http://127.0.0.1:${settings.ports.ui}` : undefined,
    operatorUrls: settings.ports.operatorApi.map((port) => `https://127.0.0.1:${port}`),
    operatorTokenFile: statePaths(settings).secrets,
  };
}

/** Relative to `cwd` when under it, else absolute. */
function shortPath(path: string, cwd: string): string {
  const rel = relative(cwd, path);
  return rel && !rel.startsWith('..') ? rel : path;
}

export function formatStatus(status: ClusterStatus, cwd = process.cwd()): string {
  const rows = [
    ['NAME', 'ROLE', 'PID', 'ALIVE', 'SERVING', 'PORT', 'LOG'],
    ...status.processes.map((p) => [
      p.name,
      p.role,
      p.pid ? String(p.pid) : '-',
      p.alive ? 'yes' : 'no',
      p.serving === undefined ? '-' : p.serving ? 'yes' : 'no',
      p.port ? String(p.port) : '-',
      shortPath(p.log, cwd),
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const table = rows.map((r) =>
    r
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd(),
  );
  return [
    `cluster state: ${status.stateDir}`,
    ...table,
    '',
    'SCEP URLs:',
    ...status.scepUrls.map((u) => `  ${u}`),
    `Temporal frontend: ${status.temporalAddress}   (temporal --address ${status.temporalAddress} workflow list)`,
    `Web UI: ${status.uiUrl ?? '(not running; use the temporal CLI above)'}`,
    `Operator API (HTTPS; trust ${shortPath(join(status.stateDir, 'pki', 'tls', 'root-ca.pem'), cwd)}): ${status.operatorUrls.join(', ')}`,
    `Operator token: "operatorToken" in ${status.operatorTokenFile}`,
  ].join('\n');
}

// ---- fault controls for tests ------------------------------------------------------------------------------------

/** The spec of a named process (finds the binaries without building). */
async function specOf(settings: ClusterSettings, name: string): Promise<ProcessSpec> {
  const binaries = await clusterBinaries(settings, () => {});
  const spec = clusterProcesses(settings, binaries).find((s) => s.name === name);
  if (!spec) throw new Error(`no process named ${name} in this cluster`);
  return spec;
}

/** `kill -9` one process (by name: `api-1`, `worker-pki-2`, `temporal`...). It stays dead until restarted. */
export async function killClusterProcess(
  settings: ClusterSettings,
  name: string,
  signal: NodeJS.Signals = 'SIGKILL',
): Promise<RunRecord> {
  return killRecorded(dirs(settings), name, signal);
}

/** Starts one process again (stopping it first if it still runs) and waits until it is ready. */
export async function restartClusterProcess(
  settings: ClusterSettings,
  name: string,
  log: Log = defaultLog,
): Promise<RunRecord> {
  const spec = await specOf(settings, name);
  await stopProcess(dirs(settings), name);
  if (spec.role === 'temporal') {
    const binaries = await clusterBinaries(settings, () => {});
    await startTemporal(settings, binaries, log, { schema: false });
    return readRecord(dirs(settings), name)!;
  }
  return startAndWait(settings, spec, log);
}

/** Restarts the Temporal server: SIGKILL (a crash) or SIGTERM (a deploy), then start and wait. */
export async function restartTemporalServer(
  settings: ClusterSettings,
  opts: { kill?: boolean; downMs?: number } = {},
  log: Log = defaultLog,
): Promise<RunRecord> {
  if (opts.kill) await killClusterProcess(settings, 'temporal');
  if (opts.downMs) await new Promise((r) => setTimeout(r, opts.downMs));
  return restartClusterProcess(settings, 'temporal', log);
}

/** Stops everything and removes the state dir and all three databases (test teardown). */
export async function destroyCluster(settings: ClusterSettings, log: Log = defaultLog): Promise<void> {
  await clusterDown(settings, log);
  for (const db of [
    settings.databases.pki,
    settings.databases.temporal,
    settings.databases.temporalVisibility,
  ]) {
    await dropDatabase(settings.postgresUrl, db);
  }
  await dropLoginRole(settings.postgresUrl, databaseAppRole(settings));
  rmSync(settings.stateDir, { recursive: true, force: true });
}

/** The product database URL (for tests that check what was stored). */
export function productDatabaseUrl(settings: ClusterSettings): string {
  return databaseUrl(settings, settings.databases.pki);
}
