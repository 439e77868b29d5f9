/**
 * Linux /proc readers for the benchmark and the durability test: find the Temporal dev server's
 * process by its port (startTemporalDevServer does not expose its child), and read a process's
 * memory and CPU time without attaching to it.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';

/** USER_HZ: the unit of utime/stime in /proc/<pid>/stat (100 on every Linux we run on). */
const CLOCK_TICKS_PER_SECOND = 100;

export interface ProcSample {
  /** Resident set size now, bytes (VmRSS). */
  rssBytes: number;
  /** Peak resident set size, bytes (VmHWM). */
  peakRssBytes: number;
  /** User + system CPU time consumed so far, seconds. */
  cpuSeconds: number;
  at: number;
}

function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return [];
  }
}

/** The pid of `temporal server start-dev ... --port <port>`, or undefined when none runs. */
export function findDevServerPid(port: number): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const args = cmdline(Number(entry));
    if (!args.includes('start-dev')) continue;
    const i = args.indexOf('--port');
    if (i >= 0 && args[i + 1] === String(port)) return Number(entry);
  }
  return undefined;
}

export function isAlive(pid: number): boolean {
  try {
    // A zombie (exited, not yet reaped) still has a /proc entry: its state is Z.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

export function sampleProcess(pid: number): ProcSample {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(status.match(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm'))?.[1] ?? 0);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return {
    rssBytes: kb('VmRSS') * 1024,
    peakRssBytes: kb('VmHWM') * 1024,
    cpuSeconds: ticks / CLOCK_TICKS_PER_SECOND,
    at: performance.now(),
  };
}

/** Average CPU use between two samples of one process, in cores (1.0 = one core busy). */
export function coresBetween(a: ProcSample, b: ProcSample): number {
  const wall = (b.at - a.at) / 1000;
  return wall > 0 ? (b.cpuSeconds - a.cpuSeconds) / wall : 0;
}

/** Size of a SQLite database with its -wal and -shm files, bytes. */
export function sqliteBytes(file: string): { db: number; wal: number; total: number } {
  const size = (f: string) => {
    try {
      return statSync(f).size;
    } catch {
      return 0;
    }
  };
  const db = size(file);
  const wal = size(`${file}-wal`);
  return { db, wal, total: db + wal + size(`${file}-shm`) };
}
