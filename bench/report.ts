/**
 * The bench table: one row per system, concurrency and round (throughput, latency, outcomes, CPU
 * per enrollment by process), then the ratios issue 10 sets its target in: per round, and their
 * median when there are several rounds.
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
  /** 1-based; every round measures each system once (bench/load.ts --rounds). */
  round: number;
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
const fixed = (v: number) => (Number.isFinite(v) ? v.toFixed(2) : '—');
/** Whether the run had more than one round: rows then say which round they belong to. */
const severalRounds = (rows: LevelRow[]) => rows.some((r) => r.round > 1);

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
  const byRound = severalRounds(rows);
  const header = [
    'system',
    ...(byRound ? ['round'] : []),
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
    `|${header.map((_, i) => (i < (byRound ? 3 : 2) ? '---' : '---:')).join('|')}|`,
  ];
  for (const row of rows) {
    const r = row.result;
    lines.push(
      `| ${[
        SYSTEM_LABELS[row.system],
        ...(byRound ? [row.round] : []),
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

/** Middle value (mean of the two middle ones for an even count); NaN for none. */
export function median(values: number[]): number {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * project/floor and project/micromdm: throughput at each level, p50 at the lowest level. Each ratio
 * compares measurements of the same round; over several rounds, the cell is their median and the
 * rounds' own values follow in a second table.
 */
export function renderRatios(rows: LevelRow[]): string {
  const rounds = [...new Set(rows.map((r) => r.round))].sort((a, b) => a - b);
  const at = (system: SystemName, concurrency: number, round: number) =>
    rows.find((r) => r.system === system && r.result.concurrency === concurrency && r.round === round)
      ?.result;
  /** The ratio of a metric, project over `other`, in each round (NaN where a side is missing). */
  const perRound = (other: SystemName, concurrency: number, metric: 'throughput' | 'p50') =>
    rounds.map((round) => {
      const a = at('project', concurrency, round)?.[metric] ?? Number.NaN;
      const b = at(other, concurrency, round)?.[metric] ?? Number.NaN;
      return b > 0 ? a / b : Number.NaN;
    });
  const levels = [
    ...new Set(rows.filter((r) => r.system === 'project').map((r) => r.result.concurrency)),
  ].sort((a, b) => a - b);
  if (levels.length === 0) return '(no project rows: no ratios)';
  const lowest = levels[0]!;
  const others = (['floor', 'micromdm'] as const).filter((o) => rows.some((r) => r.system === o));
  const several = severalRounds(rows);
  const lines = [
    `| ratio${several ? ` (median of ${rounds.length} rounds)` : ''} | ${levels.map((c) => `${c} concurrent`).join(' | ')} |`,
    `|---|${levels.map(() => '---:').join('|')}|`,
  ];
  for (const other of others)
    lines.push(
      `| enrollments/s project/${other} | ${levels.map((c) => fixed(median(perRound(other, c, 'throughput')))).join(' | ')} |`,
    );
  for (const other of others)
    lines.push(
      `| p50 project/${other} | ${levels.map((c) => (c === lowest ? fixed(median(perRound(other, c, 'p50'))) : '')).join(' | ')} |`,
    );
  if (several && others.includes('floor')) {
    lines.push('', `| project/floor, by round | ${rounds.map((r) => `round ${r}`).join(' | ')} |`);
    lines.push(`|---|${rounds.map(() => '---:').join('|')}|`);
    for (const c of levels)
      lines.push(
        `| enrollments/s at ${c} concurrent | ${perRound('floor', c, 'throughput').map(fixed).join(' | ')} |`,
      );
    lines.push(
      `| p50 at ${lowest} concurrent | ${perRound('floor', lowest, 'p50').map(fixed).join(' | ')} |`,
    );
  }
  const target: string[] = [];
  const throughput8 = median(perRound('floor', 8, 'throughput'));
  if (Number.isFinite(throughput8))
    target.push(`project/floor enrollments/s at 8 concurrent = ${fixed(throughput8)} (target >= 0.6)`);
  const p50at1 = median(perRound('floor', 1, 'p50'));
  if (Number.isFinite(p50at1))
    target.push(`p50 at 1 concurrent = ${fixed(p50at1)}x the floor's (target <= 2)`);
  if (target.length > 0)
    lines.push(
      '',
      `Issue 10 target${several ? ` (medians of the rounds' ratios)` : ''}: ${target.join('; ')}; zero failures.`,
    );
  return lines.join('\n');
}

/**
 * Levels where the generator itself used half a core or more: on a small machine it then competes
 * with the system under test, whose throughput is bounded by it (micromdm's, typically).
 */
export function renderGeneratorNotes(rows: LevelRow[], cores: number): string {
  const where = placeOf(rows);
  const lines: string[] = [];
  for (const row of rows) {
    const used = row.windowMs > 0 ? row.generatorMs / row.windowMs : 0;
    if (used >= 0.5)
      lines.push(
        `- ${where(row)}: the generator used ${used.toFixed(2)} of ${cores} cores; ` +
          'this throughput is partly bounded by the generator (CPU per enrollment is not).',
      );
  }
  return lines.join('\n');
}

/** Why requests failed or stayed pending, per system and level; empty when all succeeded. */
export function renderReasons(rows: LevelRow[]): string {
  const where = placeOf(rows);
  const lines: string[] = [];
  for (const row of rows)
    for (const [reason, n] of Object.entries(row.result.reasons))
      lines.push(`- ${where(row)}: ${n} × ${reason}`);
  return lines.join('\n');
}

/** How a row is named in notes: "micromdm at 8", with its round when there are several. */
function placeOf(rows: LevelRow[]): (row: LevelRow) => string {
  const several = severalRounds(rows);
  return (row) => `${row.system} at ${row.result.concurrency}${several ? `, round ${row.round}` : ''}`;
}
