/**
 * Which processes to charge CPU to, and how much they used over a window (Linux /proc; the readers of
 * scripts/proc-stats.ts do the sampling). A probe names the pids of one role (API+workers, Temporal
 * server, Postgres...) and is asked again at the end of the window: processes that started during it
 * count in full, processes that ended during it are lost (a small error for short-lived helpers).
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { sampleProcess } from '../scripts/proc-stats.js';

export type PidProbe = () => number[];

interface ProcEntry {
  pid: number;
  ppid: number;
  comm: string;
}

function processes(): ProcEntry[] {
  const out: ProcEntry[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      const fields = stat.slice(close + 2).split(' ');
      out.push({
        pid: Number(entry),
        ppid: Number(fields[1]),
        comm: stat.slice(stat.indexOf('(') + 1, close),
      });
    } catch {
      // Gone between readdir and read.
    }
  }
  return out;
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0+$/, '').replaceAll('\0', ' ');
  } catch {
    return '';
  }
}

/** `root` and every process below it, except the subtrees of `exclude`. */
export function processTree(root: number, exclude: number[] = []): number[] {
  const children = new Map<number, number[]>();
  for (const p of processes()) children.set(p.ppid, [...(children.get(p.ppid) ?? []), p.pid]);
  const skip = new Set(exclude);
  const out: number[] = [];
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    if (skip.has(pid)) continue;
    out.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return out;
}

/**
 * Postgres processes: the postmaster and its helpers (checkpointer, WAL writer, autovacuum...), and
 * the client backends of `databases`; backends of other databases (someone else's tests on the same
 * server) are left out. Without `databases`, every postgres process.
 */
export function postgresPids(databases?: string[]): number[] {
  const wanted = databases ? new Set(databases) : undefined;
  return processes()
    .filter((p) => p.comm === 'postgres')
    .filter((p) => {
      if (!wanted) return true;
      // A client backend retitles itself "postgres: <user> <database> <client address> <state>".
      const backend = /^postgres: \S+ (\S+) (\S+\(\d+\)|\[local\])/.exec(cmdline(p.pid));
      return !backend || wanted.has(backend[1]!);
    })
    .map((p) => p.pid);
}

/** The pid listening on TCP `port` (IPv4 or IPv6), from the socket tables and open descriptors. */
export function findListeningPid(port: number): number | undefined {
  const inodes = new Set<string>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      // local_address is HEXIP:HEXPORT; state 0A is LISTEN; column 9 is the inode.
      if (cols.length > 9 && cols[3] === '0A' && Number.parseInt(cols[1]!.split(':')[1]!, 16) === port)
        inodes.add(cols[9]!);
    }
  }
  if (inodes.size === 0) return undefined;
  for (const { pid } of processes()) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (target.startsWith('socket:[') && inodes.has(target.slice(8, -1))) return pid;
      } catch {
        // Closed meanwhile.
      }
    }
  }
  return undefined;
}

function cpuSecondsOf(pids: number[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of pids) {
    try {
      out.set(pid, sampleProcess(pid).cpuSeconds);
    } catch {
      // Exited.
    }
  }
  return out;
}

/** CPU milliseconds each role used between start and stop, plus this process's own (`generator`). */
export interface CpuWindow {
  stop(): { byRole: Record<string, number>; generatorMs: number };
}

export function startCpuWindow(probes: Record<string, PidProbe>): CpuWindow {
  const before = new Map(Object.entries(probes).map(([role, probe]) => [role, cpuSecondsOf(probe())]));
  const ownBefore = process.cpuUsage();
  return {
    stop() {
      const own = process.cpuUsage(ownBefore);
      const byRole: Record<string, number> = {};
      for (const [role, probe] of Object.entries(probes)) {
        const start = before.get(role)!;
        let seconds = 0;
        for (const [pid, now] of cpuSecondsOf(probe())) seconds += now - (start.get(pid) ?? 0);
        byRole[role] = seconds * 1000;
      }
      return { byRole, generatorMs: (own.user + own.system) / 1000 };
    },
  };
}
