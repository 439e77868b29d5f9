/**
 * A small process supervisor: starts detached processes with their output appended to a log file, records
 * each in `<run>/<name>.json` (pid + the kernel's start time of that pid, so a recycled pid is never mistaken
 * for ours), waits until each is ready, and stops them (SIGTERM to the process group, SIGKILL after a timeout).
 *
 * Nothing here knows what the processes are: scripts/cluster/topology.ts says that. Linux only (/proc).
 */
import { spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import type { ProcessSpec, Readiness, Role } from './topology.js';

export interface SupervisorDirs {
  /** Pid files. */
  run: string;
  logs: string;
}

/** What `<run>/<name>.json` holds about a started process. */
export interface RunRecord {
  name: string;
  role: Role;
  tier: number;
  pid: number;
  /** Field 22 of /proc/<pid>/stat when we started it: identifies this process among reused pids. */
  procStart: string;
  command: string;
  args: string[];
  log: string;
  /** Log size when this run started: readiness looks only at what this run wrote. */
  logOffset: number;
  port?: number;
  startedAt: string;
  stopTimeoutMs: number;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** State letter and start time of a pid from /proc, or undefined if there is no such process. */
function procStat(pid: number): { state: string; start: string } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid ..." — comm may contain spaces and parentheses: split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0] ?? '?', start: fields[19] ?? '' };
  } catch {
    return undefined;
  }
}

/** True while the recorded process runs (not a zombie, not another process that got the same pid). */
export function isAlive(record: Pick<RunRecord, 'pid' | 'procStart'>): boolean {
  const stat = procStat(record.pid);
  return stat !== undefined && stat.state !== 'Z' && stat.start === record.procStart;
}

function recordFile(dirs: SupervisorDirs, name: string): string {
  return join(dirs.run, `${name}.json`);
}

export function readRecord(dirs: SupervisorDirs, name: string): RunRecord | undefined {
  const file = recordFile(dirs, name);
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as RunRecord;
  } catch {
    return undefined;
  }
}

export function readRecords(dirs: SupervisorDirs): RunRecord[] {
  if (!existsSync(dirs.run)) return [];
  return readdirSync(dirs.run)
    .filter((f) => f.endsWith('.json'))
    .flatMap((f) => {
      const r = readRecord(dirs, f.slice(0, -'.json'.length));
      return r ? [r] : [];
    });
}

function writeRecord(dirs: SupervisorDirs, record: RunRecord): void {
  mkdirSync(dirs.run, { recursive: true });
  const file = recordFile(dirs, record.name);
  writeFileSync(`${file}.tmp`, `${JSON.stringify(record, null, 2)}\n`);
  renameSync(`${file}.tmp`, file);
}

function removeRecord(dirs: SupervisorDirs, name: string): void {
  rmSync(recordFile(dirs, name), { force: true });
}

export function logFile(dirs: SupervisorDirs, name: string): string {
  return join(dirs.logs, `${name}.log`);
}

/** The last `lines` lines of a log, for error messages. */
export function logTail(path: string, lines = 30, fromOffset = 0): string {
  if (!existsSync(path)) return '(no log)';
  const text = readFrom(path, fromOffset);
  return text.trimEnd().split('\n').slice(-lines).join('\n') || '(empty)';
}

function readFrom(path: string, offset: number): string {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    if (size <= offset) return '';
    const buffer = Buffer.alloc(size - offset);
    readSync(fd, buffer, 0, buffer.length, offset);
    return buffer.toString('utf8');
  } finally {
    closeSync(fd);
  }
}

export function portInUse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(true));
    server.listen({ host: '127.0.0.1', port, exclusive: true }, () => server.close(() => resolve(false)));
  });
}

/**
 * Starts `spec` detached (its own process group; it outlives the caller) unless the recorded process is still
 * alive. Does not wait for readiness: see {@link waitReady}.
 */
export async function startProcess(
  dirs: SupervisorDirs,
  spec: ProcessSpec,
): Promise<{ record: RunRecord; started: boolean }> {
  const existing = readRecord(dirs, spec.name);
  if (existing && isAlive(existing)) return { record: existing, started: false };
  if (spec.port !== undefined && (await portInUse(spec.port))) {
    throw new Error(
      `${spec.name}: port 127.0.0.1:${spec.port} is in use by a process this cluster did not start ` +
        `(see \`ss -ltnp 'sport = :${spec.port}'\`); stop it or choose other ports (CLUSTER_PORT_OFFSET)`,
    );
  }
  mkdirSync(dirs.logs, { recursive: true });
  const log = logFile(dirs, spec.name);
  const fd = openSync(log, 'a');
  let pid: number;
  let logOffset: number;
  try {
    writeSync(
      fd,
      `\n--- ${new Date().toISOString()} starting ${spec.name}: ${spec.command} ${spec.args.join(' ')}\n`,
    );
    logOffset = statSync(log).size;
    const child = spawn(spec.command, spec.args, {
      cwd: spec.cwd,
      env: spec.env(),
      detached: true,
      stdio: ['ignore', fd, fd],
    });
    pid = await new Promise<number>((resolve, reject) => {
      child.once('error', reject);
      child.once('spawn', () => resolve(child.pid!));
    });
    child.unref();
  } finally {
    closeSync(fd);
  }
  const record: RunRecord = {
    name: spec.name,
    role: spec.role,
    tier: spec.tier,
    pid,
    procStart: procStat(pid)?.start ?? '',
    command: spec.command,
    args: spec.args,
    log,
    logOffset,
    ...(spec.port !== undefined ? { port: spec.port } : {}),
    startedAt: new Date().toISOString(),
    stopTimeoutMs: spec.stopTimeoutMs,
  };
  writeRecord(dirs, record);
  return { record, started: true };
}

/** One readiness probe; true when the process serves. */
export async function probe(ready: Readiness, record: RunRecord): Promise<boolean> {
  switch (ready.kind) {
    case 'http':
      try {
        const res = await fetch(ready.url, { signal: AbortSignal.timeout(2_000) });
        await res.body?.cancel();
        return res.ok;
      } catch {
        return false;
      }
    case 'log':
      return existsSync(record.log) && readFrom(record.log, record.logOffset).includes(ready.pattern);
    case 'temporal': {
      let connection: Connection | undefined;
      try {
        connection = await Connection.connect({ address: ready.address, connectTimeout: '2s' });
        await connection.workflowService.getSystemInfo({});
        return true;
      } catch {
        return false;
      } finally {
        await connection?.close().catch(() => {});
      }
    }
  }
}

/** Waits until `spec` is ready; throws (with the log's tail) if its process exits or the time runs out. */
export async function waitReady(spec: ProcessSpec, record: RunRecord, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe(spec.ready, record)) return;
    if (!isAlive(record)) {
      throw new Error(
        `${spec.name} (pid ${record.pid}) exited before it was ready. Log ${record.log}:\n` +
          logTail(record.log, 30, record.logOffset),
      );
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${spec.name} (pid ${record.pid}) not ready after ${timeoutMs / 1000} s. Log ${record.log}:\n` +
          logTail(record.log, 30, record.logOffset),
      );
    }
    await sleep(250);
  }
}

/** Sends `signal` to the process group of the record (the process and anything it spawned). */
export function signalProcess(record: RunRecord, signal: NodeJS.Signals): void {
  if (!isAlive(record)) return;
  try {
    process.kill(-record.pid, signal);
  } catch {
    try {
      process.kill(record.pid, signal);
    } catch {
      // gone meanwhile
    }
  }
}

async function waitExit(record: RunRecord, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(record)) {
    if (Date.now() > deadline) return false;
    await sleep(100);
  }
  return true;
}

export type StopOutcome = 'not-running' | 'stopped' | 'killed';

/** SIGTERM, wait up to the record's stopTimeoutMs, then SIGKILL. Forgets the record. */
export async function stopProcess(
  dirs: SupervisorDirs,
  name: string,
  timeoutMs?: number,
): Promise<StopOutcome> {
  const record = readRecord(dirs, name);
  if (!record) return 'not-running';
  if (!isAlive(record)) {
    removeRecord(dirs, name);
    return 'not-running';
  }
  signalProcess(record, 'SIGTERM');
  let outcome: StopOutcome = 'stopped';
  if (!(await waitExit(record, timeoutMs ?? record.stopTimeoutMs))) {
    signalProcess(record, 'SIGKILL');
    outcome = 'killed';
    if (!(await waitExit(record, 10_000))) throw new Error(`${name} (pid ${record.pid}) survives SIGKILL`);
  }
  removeRecord(dirs, name);
  return outcome;
}

/** `kill -9` (or another signal) without forgetting the record: `status` then shows the process dead. */
export async function killProcess(dirs: SupervisorDirs, name: string, signal: NodeJS.Signals = 'SIGKILL') {
  const record = readRecord(dirs, name);
  if (!record || !isAlive(record)) throw new Error(`${name} is not running`);
  signalProcess(record, signal);
  if (signal === 'SIGKILL' && !(await waitExit(record, 10_000))) {
    throw new Error(`${name} (pid ${record.pid}) survives SIGKILL`);
  }
  return record;
}

/**
 * An exclusive lock file holding our pid (one `up`/`down` at a time). A lock left by a dead process is taken
 * over.
 */
export async function withLock<T>(path: string, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, `${process.pid} ${procStat(process.pid)?.start ?? ''}\n`);
      closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const [pid, start] = readFileSync(path, 'utf8').trim().split(' ');
      if (pid && isAlive({ pid: Number(pid), procStart: start ?? '' })) {
        throw new Error(`another cluster command (pid ${pid}) holds ${path}; wait for it to finish`);
      }
      rmSync(path, { force: true });
      if (attempt > 3) throw err;
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(path, { force: true });
  }
}
