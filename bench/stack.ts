/**
 * The systems under test, started the way a user starts them: `npm run dev` (its own data dir,
 * database, API port and Temporal dev server ports), and micromdm's `scepserver`. Each returns a
 * stop() that is safe to call more than once and on failure paths.
 */

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import postgres from 'postgres';
import { PROJECT_ROOT } from '../config/load.js';
import { freePort } from '../scripts/free-port.js';
import { findListeningPid } from './processes.js';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Output of a child, the last ~20 kB, for error messages; `forward` sees every whole line. */
function captureOutput(child: ChildProcess, forward?: (line: string) => void): () => string {
  let output = '';
  const partial = { stdout: '', stderr: '' };
  const keep = (stream: 'stdout' | 'stderr') => (d: Buffer) => {
    const text = d.toString();
    output = (output + text).slice(-20_000);
    if (!forward) return;
    const lines = (partial[stream] + text).split('\n');
    partial[stream] = lines.pop() ?? '';
    for (const line of lines) if (line.trim()) forward(line);
  };
  child.stdout?.on('data', keep('stdout'));
  child.stderr?.on('data', keep('stderr'));
  return () => output;
}

function exitedPromise(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('exit', () => resolve());
  });
}

// ---------------------------------------------------------------------------------------------------

export interface BenchDatabase {
  url: string;
  /** The database name (its backends are the ones charged to the product). */
  name: string;
  postgresVersion: string;
  /** Drops the database (FORCE) if this created it. Idempotent. */
  drop(): Promise<void>;
}

/**
 * `url` given: that database, kept afterwards. Otherwise a fresh `pki_bench_*` database on
 * `adminUrl`'s server, dropped by drop().
 */
export async function openBenchDatabase(opts: { url?: string; adminUrl: string }): Promise<BenchDatabase> {
  const admin = postgres(opts.url ?? opts.adminUrl, { max: 1, onnotice: () => {} });
  const [version] = await admin`SHOW server_version`;
  const postgresVersion = String(version?.server_version ?? 'unknown');
  if (opts.url) {
    await admin.end();
    return {
      url: opts.url,
      name: decodeURIComponent(new URL(opts.url).pathname.slice(1)),
      postgresVersion,
      drop: async () => {},
    };
  }
  const name = `pki_bench_${new Date().toISOString().slice(0, 10).replaceAll('-', '')}_${process.pid}_${Date.now() % 100_000}`;
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const url = new URL(opts.adminUrl);
  url.pathname = `/${name}`;
  let dropped = false;
  return {
    url: url.toString(),
    name,
    postgresVersion,
    async drop() {
      if (dropped) return;
      dropped = true;
      try {
        await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await admin.end();
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------------

export interface DevStack {
  /** SCEP URL as `npm run dev` printed it. */
  scepUrl: string;
  temporalAddress: string;
  /** pid of `npm run dev` (the leader of its process group). */
  pid: number;
  /** The process listening on the Temporal frontend port, when that is on this machine. */
  temporalPid(): number | undefined;
  output(): string;
  /** SIGINT to the whole process group (the dev script then stops its pieces), SIGKILL after 30 s. */
  stop(): Promise<void>;
}

interface DevStackOptions {
  dataDir: string;
  databaseUrl: string;
  env?: NodeJS.ProcessEnv;
  log?: (line: string) => void;
  /** Forward the dev process's output to log. */
  verbose?: boolean;
  startTimeoutMs?: number;
}

/**
 * `npm run dev` as a child, in its own process group, with its own PKI_DATA_DIR (SoftHSM token,
 * Temporal SQLite file), DATABASE_URL, API_PORT and Temporal ports; SCEP rate limit off. With
 * TEMPORAL_ADDRESS in the environment, the dev script starts no Temporal server and uses that one.
 * If the dev process exits before it is ready (once seen here: the dev server crashing at start,
 * not reproducible), it is tried once more with other ports and a fresh data dir.
 */
export async function startDevStack(opts: DevStackOptions): Promise<DevStack> {
  try {
    return await launchDevStack(opts, opts.dataDir);
  } catch (err) {
    if (!(err instanceof DevStackExited)) throw err;
    opts.log?.(`npm run dev exited while starting; trying once more. Its output:\n${err.output}`);
    return launchDevStack(opts, `${opts.dataDir}-retry`);
  }
}

class DevStackExited extends Error {
  constructor(readonly output: string) {
    super(`npm run dev exited before printing its SCEP URL:\n${output}`);
  }
}

async function launchDevStack(opts: DevStackOptions, dataDir: string): Promise<DevStack> {
  const inherited = { ...process.env, ...opts.env };
  const external = inherited.TEMPORAL_ADDRESS;
  const temporalPort = external ? undefined : await freePort();
  const env: NodeJS.ProcessEnv = {
    ...inherited,
    PKI_DATA_DIR: dataDir,
    DATABASE_URL: opts.databaseUrl,
    API_PORT: String(await freePort()),
    OPERATOR_PORT: String(await freePort()),
    SCEP_RATE_PER_MINUTE: '0',
    ...(temporalPort
      ? { TEMPORAL_PORT: String(temporalPort), TEMPORAL_UI_PORT: String(await freePort()) }
      : {}),
  };
  // Everything of this stack under its data dir, whatever the shell points at.
  delete env.SOFTHSM_DIR;
  const temporalAddress = external ?? `127.0.0.1:${temporalPort}`;
  const child = spawn('npm', ['run', 'dev'], {
    cwd: PROJECT_ROOT,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output = captureOutput(child, opts.verbose ? opts.log : undefined);
  const exited = exitedPromise(child);
  const killGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      // Already gone.
    }
  };
  // Never leave the stack behind, whatever way this process ends.
  const killOnExit = () => killGroup('SIGKILL');
  process.once('exit', killOnExit);
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      killGroup('SIGINT');
      const timer = setTimeout(() => killGroup('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
      // The dev script may be gone while its Temporal server still shuts down.
      for (let i = 0; i < 100 && processGroupAlive(child.pid!); i++) await sleep(100);
      killGroup('SIGKILL');
      process.removeListener('exit', killOnExit);
    })();
    return stopping;
  };

  const deadline = Date.now() + (opts.startTimeoutMs ?? 240_000);
  let scepUrl: string | undefined;
  while (!scepUrl) {
    scepUrl = /SCEP URL\s+(\S+)/.exec(output())?.[1];
    if (scepUrl) break;
    if (child.exitCode !== null) {
      await stop();
      throw new DevStackExited(output());
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`npm run dev did not print its SCEP URL in time:\n${output()}`);
    }
    await sleep(200);
  }
  opts.log?.(`npm run dev ready: ${scepUrl}, Temporal ${temporalAddress}`);
  let temporalPid: number | undefined;
  return {
    scepUrl,
    temporalAddress,
    pid: child.pid!,
    temporalPid() {
      if (temporalPid === undefined) {
        const [host, port] = temporalAddress.split(':');
        if (host === '127.0.0.1' || host === 'localhost') temporalPid = findListeningPid(Number(port));
      }
      return temporalPid;
    },
    output,
    stop,
  };
}

function processGroupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------------

export interface ScepServer {
  url: string;
  pid: number;
  version: string;
  /** How often it logged "failed to sign CSR", by its error text (it answers those with FAILURE). */
  refusals: Map<string, number>;
  stop(): Promise<void>;
}

/** micromdm `scepserver` (Debian `scep`): a fresh 2048-bit CA in `dir`, then the server on a free port. */
export async function startScepServer(opts: { dir: string; challenge: string }): Promise<ScepServer> {
  const depot = join(opts.dir, 'depot');
  await run('scepserver', ['ca', '-init', '-keySize', '2048', '-depot', depot]).catch((err) => {
    throw (err as NodeJS.ErrnoException).code === 'ENOENT'
      ? new Error('scepserver not found (Debian package scep); leave it out with --systems project,floor')
      : err;
  });
  const version = await run('scepserver', ['-version'])
    .then(({ stdout, stderr }) => (stdout + stderr).trim().split('\n')[0] ?? 'unknown')
    .catch(() => 'unknown');
  const port = await freePort();
  const child = spawn(
    'scepserver',
    ['-depot', depot, '-port', String(port), '-challenge', opts.challenge, '-allowrenew', '0'],
    { cwd: opts.dir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const refusals = new Map<string, number>();
  const output = captureOutput(child, (line) => {
    const reason = /msg="failed to sign CSR" err="([^"]*)"/.exec(line)?.[1];
    if (reason !== undefined) refusals.set(reason, (refusals.get(reason) ?? 0) + 1);
  });
  const exited = exitedPromise(child);
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
    process.removeListener('exit', killOnExit);
  };
  const url = `http://127.0.0.1:${port}/scep`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      const res = await fetch(`${url}?operation=GetCACaps`);
      if (res.ok) break;
    } catch {
      // Not listening yet.
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`scepserver did not start:\n${output()}`);
    }
    await sleep(100);
  }
  return { url, pid: child.pid!, version, refusals, stop };
}
