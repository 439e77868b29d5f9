/**
 * The bench table: one row per system and concurrency (throughput, latency, outcomes, CPU per
 * enrollment by process), then the ratios issue 10 sets its target in.
 */
import type { LevelResult } from './load-generator.js';

export const SYSTEMS = ['project', 'floor', 'micromdm'] as const;
export type SystemName = (typeof SYSTEMS)[number];

export const SYSTEM_LABELS: Record<SystemName, string> = {
  project: 'this project (`npm run dev`)',
  floor: 'floor: update-with-start + 3 local activities',
  micromdm: 'micromdm scepserver',
};

/** CPU roles charged per enrollment; `app` is the system's own process(es). */
export const CPU_ROLES = ['app', 'temporal', 'postgres'] as const;
export type CpuRole = (typeof CPU_ROLES)[number];

export interface LevelRow {
  system: SystemName;
  result: LevelResult;
  /** CPU ms used by each role over the level's window; absent: not measured (no such process). */
  cpuMs: Partial<Record<CpuRole, number>>;
  /** The generator's own CPU ms over the window (not counted in the totals). */
  generatorMs: number;
  /** Length of the CPU window (the level plus its settle time), ms. */
  windowMs: number;
}

const ms = (v: number) => (Number.isFinite(v) ? v.toFixed(v < 10 ? 1 : 0) : '—');
const rate = (v: number) => (Number.isFinite(v) ? v.toFixed(v < 10 ? 2 : 1) : '—');
const ratio = (a: number, b: number) => (Number.isFinite(a / b) && b > 0 ? (a / b).toFixed(2) : '—');

/** CPU ms per successful enrollment of a role, NaN when nothing succeeded or the role is not measured. */
export function cpuPerOk(row: LevelRow, role: CpuRole | 'total' | 'generator'): number {
  const ok = row.result.ok;
  if (ok === 0) return Number.NaN;
  if (role === 'generator') return row.generatorMs / ok;
  if (role === 'total') return CPU_ROLES.reduce((sum, r) => sum + (row.cpuMs[r] ?? 0), 0) / ok;
  const used = row.cpuMs[role];
  return used === undefined ? Number.NaN : used / ok;
}

export function renderTable(rows: LevelRow[]): string {
  const header = [
    'system',
    'concurrent',
    'enrollments/s',
    'p50 ms',
    'p95 ms',
    'p99 ms',
    'ok',
    'failed',
    'pending',
    'CPU ms/enr: app',
    'Temporal',
    'Postgres',
    'total',
    'generator',
  ];
  const lines = [
    `| ${header.join(' | ')} |`,
    `|${header.map((_, i) => (i < 2 ? '---' : '---:')).join('|')}|`,
  ];
  for (const row of rows) {
    const r = row.result;
    lines.push(
      `| ${[
        SYSTEM_LABELS[row.system],
        r.concurrency,
        rate(r.throughput),
        ms(r.p50),
        ms(r.p95),
        ms(r.p99),
        r.ok,
        r.failed,
        r.pending,
        ms(cpuPerOk(row, 'app')),
        ms(cpuPerOk(row, 'temporal')),
        ms(cpuPerOk(row, 'postgres')),
        ms(cpuPerOk(row, 'total')),
        ms(cpuPerOk(row, 'generator')),
      ].join(' | ')} |`,
    );
  }
  lines.push(
    '',
    "CPU columns: milliseconds of CPU per successful enrollment over the level's window, from /proc. " +
      '*app* is the `npm run dev` process tree without its Temporal server (API + workers) for the project, ' +
      'the floor worker process for the floor, the scepserver process for micromdm. *Postgres* is the ' +
      "postmaster and its helpers plus the backends of the bench's database. *total* = app + Temporal + " +
      'Postgres; *generator* is this load generator (SCEP client crypto, Temporal client), not in the total. ' +
      'Latencies are of successful requests, as the device sees them (including CertPoll rounds).',
  );
  return lines.join('\n');
}

/** project/floor and project/micromdm: throughput at each level, p50 at the lowest level. */
export function renderRatios(rows: LevelRow[]): string {
  const at = (system: SystemName, concurrency: number) =>
    rows.find((r) => r.system === system && r.result.concurrency === concurrency)?.result;
  const levels = [
    ...new Set(rows.filter((r) => r.system === 'project').map((r) => r.result.concurrency)),
  ].sort((a, b) => a - b);
  if (levels.length === 0) return '(no project rows: no ratios)';
  const lowest = levels[0]!;
  const lines = [
    `| ratio | ${levels.map((c) => `${c} concurrent`).join(' | ')} |`,
    `|---|${levels.map(() => '---:').join('|')}|`,
  ];
  for (const other of ['floor', 'micromdm'] as const) {
    if (!rows.some((r) => r.system === other)) continue;
    const cells = levels.map((c) =>
      ratio(at('project', c)?.throughput ?? Number.NaN, at(other, c)?.throughput ?? Number.NaN),
    );
    lines.push(`| enrollments/s project/${other} | ${cells.join(' | ')} |`);
  }
  for (const other of ['floor', 'micromdm'] as const) {
    if (!rows.some((r) => r.system === other)) continue;
    const cells = levels.map((c) =>
      c === lowest ? ratio(at('project', c)?.p50 ?? Number.NaN, at(other, c)?.p50 ?? Number.NaN) : '',
    );
    lines.push(`| p50 project/${other} | ${cells.join(' | ')} |`);
  }
  const target: string[] = [];
  const p8 = at('project', 8);
  const f8 = at('floor', 8);
  if (p8 && f8)
    target.push(
      `project/floor enrollments/s at 8 concurrent = ${ratio(p8.throughput, f8.throughput)} (target >= 0.6)`,
    );
  const p1 = at('project', 1);
  const f1 = at('floor', 1);
  if (p1 && f1) target.push(`p50 at 1 concurrent = ${ratio(p1.p50, f1.p50)}x the floor's (target <= 2)`);
  if (target.length > 0) lines.push('', `Issue 10 target: ${target.join('; ')}; zero failures.`);
  return lines.join('\n');
}

/**
 * Levels where the generator itself used half a core or more: on a small machine it then competes
 * with the system under test, whose throughput is bounded by it (micromdm's, typically).
 */
export function renderGeneratorNotes(rows: LevelRow[], cores: number): string {
  const lines: string[] = [];
  for (const row of rows) {
    const used = row.windowMs > 0 ? row.generatorMs / row.windowMs : 0;
    if (used >= 0.5)
      lines.push(
        `- ${row.system} at ${row.result.concurrency}: the generator used ${used.toFixed(2)} of ${cores} cores; ` +
          'this throughput is partly bounded by the generator (CPU per enrollment is not).',
      );
  }
  return lines.join('\n');
}

/** Why requests failed or stayed pending, per system and level; empty when all succeeded. */
export function renderReasons(rows: LevelRow[]): string {
  const lines: string[] = [];
  for (const row of rows)
    for (const [reason, n] of Object.entries(row.result.reasons))
      lines.push(`- ${row.system} at ${row.result.concurrency}: ${n} × ${reason}`);
  return lines.join('\n');
}
