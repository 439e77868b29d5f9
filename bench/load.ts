/**
 * `npm run bench:load`: enrollments/s, latency and CPU per enrollment of this project, side by side
 * with the Temporal floor and micromdm's scepserver, in one run (issue 10).
 *
 *   npm run bench:load                                   # levels 1,8,32, 20 s each, all three systems
 *   npm run bench:load -- --levels 1,2 --seconds 5       # a quick look
 *   npm run bench:load -- --count 200 --write --label after-local-activities
 *   npm run bench:load -- --rounds 3 --write --label x    # each system three times, interleaved
 *   TEMPORAL_ADDRESS=127.0.0.1:7233 npm run bench:load -- --temporal-pids 12345,12346   # a cluster
 *
 * Options: --levels a,b,c  --seconds N (per level) | --count N (requests per level)  --warmup N
 * (requests at 1 concurrent before each system's levels, not in the table; default 5)  --systems
 * project,floor,micromdm  --keys N (device key pool; default 64)  --settle-ms N (CPU window kept open
 * after a level's last answer, for the work that trails it; default 2000)  --poll-timeout N (seconds a
 * device polls a PENDING transaction; default 60)  --write [--label L] (bench/results/<date>-<label>.md)
 * --temporal-pids a,b (the Temporal server processes to charge; default: the one listening on the
 * frontend port, if local)  --database-url U (use that database, keep it; default: a fresh one)
 * --admin-url U (where the fresh database is created; default postgres://postgres@127.0.0.1:5432/postgres)
 * --rounds N (measure every system's levels N times, the systems taking turns; default 1)
 * --verbose (the dev stack's output).
 *
 * Rounds: a shared 2-core VM's speed drifts by half within minutes (the same level measured twice in
 * a row differed by 60 % in CPU per enrollment), and the systems are measured one after the other.
 * With --rounds, every round measures each system once, so a ratio taken within a round compares
 * measurements minutes apart at most; the ratios are reported per round and as their median.
 *
 * What runs: micromdm scepserver (fresh 2048-bit CA, same challenge); `npm run dev` as a user runs
 * it, with its own PKI_DATA_DIR, a fresh Postgres database (never the DATABASE_URL of the shell),
 * SCEP_RATE_PER_MINUTE=0, a free API port and its own Temporal dev server ports (or TEMPORAL_ADDRESS);
 * and the floor workflow on that same Temporal server, its worker in a child process. All three are
 * started first and measured in that order, once per round. Device keys
 * are generated before anything is timed. Exits non-zero when any enrollment of the project failed,
 * stayed pending, or does not match the database (one certificate per SUCCESS, the serial the device
 * got), or an enrollment workflow of the run is still running. Everything it started is stopped and
 * removed at the end, on failure and on Ctrl-C.
 *
 * The generator and the accounting are a library a test can point at any SCEP URL (a cluster too):
 * bench/scep-client/, bench/load-generator.ts, bench/enrollment-load.ts, bench/accounting.ts,
 * bench/floor/; test/e2e/bench-smoke.test.ts shows how.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { loadPkiConfig, PROJECT_ROOT } from '../config/load.js';
import { openDatabase } from '../db/client.js';
import { findTemporalCli, temporalCliVersion } from '../scripts/temporal-cli.js';
import { checkCertificateRecords, runningEnrollments } from './accounting.js';
import { EnrollmentLoad } from './enrollment-load.js';
import { FloorLoad, startFloorWorker } from './floor/index.js';
import { type Outcome, runLevel } from './load-generator.js';
import { type PidProbe, postgresPids, processTree, startCpuWindow } from './processes.js';
import {
  type CpuRole,
  type LevelRow,
  renderGeneratorNotes,
  renderRatios,
  renderReasons,
  renderTable,
  SYSTEMS,
  type SystemName,
} from './report.js';
import { type DeviceKey, generateDeviceKeys, openDeviceKeyToken, ScepClient } from './scep-client/index.js';
import { openBenchDatabase, startDevStack, startScepServer } from './stack.js';

const { values: args } = parseArgs({
  options: {
    levels: { type: 'string', default: '1,8,32' },
    seconds: { type: 'string', default: '20' },
    count: { type: 'string' },
    warmup: { type: 'string', default: '5' },
    systems: { type: 'string', default: SYSTEMS.join(',') },
    keys: { type: 'string', default: '64' },
    'settle-ms': { type: 'string', default: '2000' },
    'poll-timeout': { type: 'string', default: '60' },
    write: { type: 'boolean', default: false },
    label: { type: 'string', default: 'load' },
    'temporal-pids': { type: 'string' },
    'database-url': { type: 'string' },
    'admin-url': { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/postgres' },
    rounds: { type: 'string', default: '1' },
    verbose: { type: 'boolean', default: false },
  },
});

const log = (line: string) => console.log(`[bench] ${line}`);
const wholeNumber = (name: string, text: string) => {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`--${name} must be a non-negative integer, got ${text}`);
    process.exit(2);
  }
  return n;
};
const levels = args.levels.split(',').map((l) => wholeNumber('levels', l.trim()));
const durationMs = args.count ? undefined : wholeNumber('seconds', args.seconds) * 1000;
const count = args.count ? wholeNumber('count', args.count) : undefined;
const warmup = wholeNumber('warmup', args.warmup);
const settleMs = wholeNumber('settle-ms', args['settle-ms']);
const pollTimeoutMs = wholeNumber('poll-timeout', args['poll-timeout']) * 1000;
const rounds = Math.max(1, wholeNumber('rounds', args.rounds));
const systems = args.systems.split(',').map((s) => s.trim()) as SystemName[];
const unknownSystems = systems.filter((s) => !SYSTEMS.includes(s));
if (unknownSystems.length > 0 || levels.some((l) => l === 0)) {
  console.error(
    `unknown systems ${unknownSystems.join(', ')} (known: ${SYSTEMS.join(', ')}), or a level of 0`,
  );
  process.exit(2);
}
const temporalPidsArg = args['temporal-pids']?.split(',').map((p) => wholeNumber('temporal-pids', p.trim()));
const externalTemporal = process.env.TEMPORAL_ADDRESS;
const namespace = process.env.TEMPORAL_NAMESPACE ?? 'default';
const runId = randomBytes(3).toString('hex');

// ---------------------------------------------------------------------------------------------------
// Cleanup: whatever was started is stopped, in reverse order, once.

const cleanups: Array<[string, () => Promise<void> | void]> = [];
const onCleanup = (what: string, fn: () => Promise<void> | void) => cleanups.push([what, fn]);
let cleaning: Promise<void> | undefined;
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    for (const [what, fn] of cleanups.reverse()) {
      try {
        await fn();
      } catch (err) {
        console.error(`[bench] cleanup of ${what} failed: ${(err as Error).message}`);
      }
    }
  })();
  return cleaning;
}
for (const signal of ['SIGINT', 'SIGTERM'] as const)
  process.on(signal, () => {
    // A terminal's Ctrl-C reaches tsx and this process both: say it once.
    if (!cleaning) log(`${signal}: stopping everything`);
    void cleanup().finally(() => process.exit(130));
  });
const perLevelMs = (durationMs ?? 60_000) + settleMs + pollTimeoutMs;
const hardLimitMs = 10 * 60_000 + rounds * systems.length * (levels.length * perLevelMs + 60_000);
const hardLimit = setTimeout(() => {
  console.error(`[bench] still running after ${Math.round(hardLimitMs / 60_000)} min: giving up`);
  void cleanup().finally(() => process.exit(1));
}, hardLimitMs);
hardLimit.unref();

// ---------------------------------------------------------------------------------------------------

const rows: LevelRow[] = [];
const problems: string[] = [];
const notes: string[] = [];
const versions: Record<string, string> = { node: process.version };

/** A system ready to be measured: its load and the processes its CPU is charged to. */
interface Measurable {
  system: SystemName;
  operation: () => Promise<Outcome>;
  probes: Partial<Record<CpuRole, PidProbe>>;
}

/** Warm-up (first round only), then each level with its CPU window. */
async function measureSystem({ system, operation, probes }: Measurable, round: number): Promise<void> {
  if (warmup > 0 && round === 1) {
    const w = await runLevel({ concurrency: 1, count: warmup, operation });
    log(`${system} warm-up: ${w.ok}/${w.requests} ok, p50 ${w.p50.toFixed(0)} ms`);
    if (w.ok !== w.requests) notes.push(`${system} warm-up: ${w.requests - w.ok} of ${w.requests} not ok`);
  }
  for (const concurrency of levels) {
    const window = startCpuWindow(probes as Record<string, PidProbe>);
    const windowStart = performance.now();
    const result = await runLevel({
      concurrency,
      operation,
      ...(durationMs !== undefined ? { durationMs } : {}),
      ...(count !== undefined ? { count } : {}),
    });
    await new Promise((r) => setTimeout(r, settleMs));
    const { byRole, generatorMs } = window.stop();
    rows.push({
      system,
      round,
      result,
      cpuMs: byRole,
      generatorMs,
      windowMs: performance.now() - windowStart,
    });
    log(
      `${rounds > 1 ? `round ${round}: ` : ''}${system} at ${concurrency}: ${result.throughput.toFixed(2)}/s, ` +
        `p50 ${result.p50.toFixed(0)} ms, ${result.ok} ok, ${result.failed} failed, ${result.pending} pending`,
    );
  }
}

/** A started system, and what to check and note once every round has run. */
interface Started {
  measurables: Measurable[];
  finish(): Promise<void>;
}

async function startMicromdm(keys: DeviceKey[], challenge: string, work: string): Promise<Started> {
  const dir = join(work, 'scepserver');
  mkdirSync(dir, { recursive: true });
  const server = await startScepServer({ dir, challenge });
  onCleanup('scepserver', () => server.stop());
  versions.scepserver = server.version;
  const client = await ScepClient.connect({ url: server.url, pollTimeoutMs });
  onCleanup('micromdm SCEP client', () => client.close());
  const load = new EnrollmentLoad({
    client,
    keys,
    challengePassword: challenge,
    deviceIdPrefix: `bench-${runId}-m`,
  });
  return {
    measurables: [{ system: 'micromdm', operation: load.operation, probes: { app: () => [server.pid] } }],
    async finish() {
      // Its own reasons for a FAILURE (e.g. its file depot racing on the serial number file).
      for (const [reason, n] of server.refusals)
        notes.push(`scepserver logged ${n} × "failed to sign CSR: ${reason}"`);
      client.close();
      await server.stop();
    },
  };
}

async function startProjectAndFloor(
  keys: DeviceKey[],
  challenge: string,
  profile: string,
  work: string,
): Promise<Started> {
  const database = await openBenchDatabase({
    ...(args['database-url'] ? { url: args['database-url'] } : {}),
    adminUrl: args['admin-url'],
  });
  onCleanup('bench database', () => database.drop());
  versions.postgres = database.postgresVersion;
  log(`database ${database.name}; starting npm run dev (bundling workflows takes a while)`);

  const stack = await startDevStack({
    dataDir: join(work, 'dev'),
    databaseUrl: database.url,
    log,
    verbose: args.verbose,
  });
  onCleanup('npm run dev', () => stack.stop());
  const found = stack.temporalPid();
  const temporalPids = temporalPidsArg ?? (found === undefined ? [] : [found]);
  if (temporalPids.length === 0)
    notes.push('Temporal server CPU not measured: no local process found (give --temporal-pids).');
  const temporal: PidProbe = () => temporalPids;
  // A cluster may keep its own state in Postgres: then every postgres process is charged.
  const postgres: PidProbe = () => postgresPids(externalTemporal ? undefined : [database.name]);

  const connection = await Connection.connect({ address: stack.temporalAddress });
  onCleanup('Temporal client', () => connection.close());
  const temporalClient = new Client({ connection, namespace });
  const measurables: Measurable[] = [];
  const finishing: Array<() => Promise<void>> = [];

  if (systems.includes('project')) {
    const client = await ScepClient.connect({ url: stack.scepUrl, pollTimeoutMs });
    onCleanup('project SCEP client', () => client.close());
    const deviceIdPrefix = `bench-${runId}-p`;
    const load = new EnrollmentLoad({ client, keys, challengePassword: challenge, deviceIdPrefix });
    measurables.push({
      system: 'project',
      operation: load.operation,
      probes: { app: () => processTree(stack.pid, temporalPids), temporal, postgres },
    });
    finishing.push(async () => {
      client.close();
      log(`checking ${load.records.length} enrollments against the database and Temporal visibility`);
      const db = await openDatabase({ url: database.url, pgliteDir: '', maxConnections: 2 });
      try {
        problems.push(
          ...(await checkCertificateRecords({ db: db.db, profile, deviceIdPrefix, records: load.records })),
        );
      } finally {
        await db.close();
      }
      const running = await runningEnrollments({ client: temporalClient, profile, records: load.records });
      if (running.length > 0)
        problems.push(
          `${running.length} enrollment workflows still running: ${running.slice(0, 5).join(', ')}`,
        );
      const notOk = load.records.filter((r) => r.status !== 'SUCCESS');
      if (notOk.length > 0)
        problems.push(`${notOk.length} of ${load.records.length} project enrollments did not succeed`);
    });
  }

  if (systems.includes('floor')) {
    const worker = await startFloorWorker({ address: stack.temporalAddress, namespace });
    onCleanup('floor worker', () => worker.stop());
    const load = new FloorLoad({ client: temporalClient, idPrefix: `bench-floor/${runId}/` });
    measurables.push({
      system: 'floor',
      operation: load.operation,
      probes: { app: () => [worker.pid], temporal, ...(externalTemporal ? { postgres } : {}) },
    });
    finishing.push(async () => {
      const open = await load.stillRunning();
      if (open.length > 0) notes.push(`${open.length} floor workflows still running after the run`);
      await worker.stop();
    });
  }
  return {
    measurables,
    async finish() {
      for (const step of finishing) await step();
    },
  };
}

async function gatherVersions(): Promise<void> {
  const cli = await findTemporalCli({ projectRoot: PROJECT_ROOT, log: () => {} });
  versions['temporal CLI'] = (cli && (await temporalCliVersion(cli))) ?? 'not found';
}

function git(...gitArgs: string[]): Promise<string> {
  return promisify(execFile)('git', gitArgs, { cwd: PROJECT_ROOT }).then(
    ({ stdout }) => stdout.trim(),
    () => 'unknown',
  );
}

async function resultsMarkdown(body: string): Promise<string> {
  const commit = await git('rev-parse', '--short', 'HEAD');
  const dirty = (await git('status', '--porcelain', '--untracked-files=no'))
    ? ' (with uncommitted changes)'
    : '';
  const cpu = cpus();
  const argv = process.argv.slice(2).join(' ');
  return [
    `# bench:load ${new Date().toISOString().slice(0, 10)} ${args.label}`,
    '',
    `- Date: ${new Date().toISOString()}`,
    `- Command: \`npm run bench:load${argv ? ` -- ${argv}` : ''}\`${externalTemporal ? ` with TEMPORAL_ADDRESS=${externalTemporal}` : ''}`,
    `- Machine: nproc ${cpu.length}, ${cpu[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB memory`,
    `- Commit: ${commit}${dirty}`,
    `- Versions: ${Object.entries(versions)
      .map(([k, v]) => `${k} ${v}`)
      .join('; ')}`,
    '',
    body,
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------

let exitCode = 0;
try {
  const config = loadPkiConfig();
  const profile = config.profiles[0]!;
  if (profile.mdm.type !== 'static-challenge')
    throw new Error(
      `the bench enrolls with a static challenge; profile ${profile.name} has ${profile.mdm.type}`,
    );
  const challenge = profile.mdm.challenge;
  const work = mkdtempSync(join(tmpdir(), 'device-pki-bench-load-'));
  onCleanup('temp dir', () => rmSync(work, { recursive: true, force: true }));
  await gatherVersions();

  const keyCount = wholeNumber('keys', args.keys) || 1;
  log(`generating ${keyCount} RSA-2048 device keys in a throwaway SoftHSM token (not timed)`);
  const deviceToken = await openDeviceKeyToken(join(work, 'devices-hsm'), 'bench-devices');
  onCleanup('device token', () => deviceToken.close());
  const keys = await generateDeviceKeys(keyCount, deviceToken);
  const what = count !== undefined ? `${count} requests` : `${durationMs! / 1000} s`;
  log(
    `run ${runId}: ${systems.join(', ')} at ${levels.join(', ')} concurrent, ${what} per level` +
      (rounds > 1 ? `, ${rounds} rounds` : ''),
  );

  const started: Started[] = [];
  if (systems.includes('micromdm')) started.push(await startMicromdm(keys, challenge, work));
  if (systems.includes('project') || systems.includes('floor'))
    started.push(await startProjectAndFloor(keys, challenge, profile.name, work));
  for (let round = 1; round <= rounds; round++)
    for (const measurable of started.flatMap((s) => s.measurables)) await measureSystem(measurable, round);
  for (const system of started) await system.finish();

  const sections = [renderTable(rows), '', renderRatios(rows)];
  const generatorNotes = renderGeneratorNotes(rows, cpus().length);
  if (generatorNotes) sections.push('', 'Generator load:', generatorNotes);
  const reasons = renderReasons(rows);
  if (reasons) sections.push('', 'Requests that did not succeed:', reasons);
  if (notes.length > 0) sections.push('', ...notes.map((n) => `Note: ${n}`));
  if (systems.includes('project'))
    sections.push(
      '',
      problems.length === 0
        ? 'Accounting: every project enrollment succeeded, one certificate on record per SUCCESS with the serial the device got, no enrollment workflow left running.'
        : `Accounting problems:\n${problems.map((p) => `- ${p}`).join('\n')}`,
    );
  const body = sections.join('\n');
  console.log(`\n${body}\n`);
  if (args.write) {
    const dir = join(PROJECT_ROOT, 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    const file = join(dir, `${new Date().toISOString().slice(0, 10)}-${args.label}.md`);
    writeFileSync(file, await resultsMarkdown(body));
    // Formatted as `npm run lint` wants committed markdown (padded tables), so it can be committed as is.
    await promisify(execFile)(
      join(PROJECT_ROOT, 'node_modules', '.bin', 'biome'),
      ['format', '--write', file],
      {
        cwd: PROJECT_ROOT,
      },
    ).catch((err: Error) =>
      log(`biome format of the results failed (format it before committing): ${err.message}`),
    );
    log(`written to ${file}`);
  }
  if (problems.length > 0) exitCode = 1;
} catch (err) {
  console.error(`[bench] ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  exitCode = 1;
} finally {
  await cleanup();
  clearTimeout(hardLimit);
}
process.exit(exitCode);
