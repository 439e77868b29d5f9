/**
 * A closed-loop load generator: `concurrency` loops, each starting its next request when the previous
 * one answered, for a duration or a total count. Every request ends as exactly one outcome, so
 * ok + failed + pending = requests always holds; operations that throw are recorded as failed.
 */

export type Outcome =
  | { kind: 'ok' }
  | { kind: 'failed'; reason: string }
  /** No final answer in time (e.g. a SCEP transaction still PENDING when the client gave up). */
  | { kind: 'pending'; reason: string };

export interface Sample {
  index: number;
  latencyMs: number;
  outcome: Outcome;
}

export interface LevelResult {
  concurrency: number;
  requests: number;
  ok: number;
  failed: number;
  pending: number;
  /** From the first request sent to the last answer received. */
  wallMs: number;
  /** ok per second of wall time. */
  throughput: number;
  /** Latency of the ok requests, ms (NaN when none succeeded). */
  p50: number;
  p95: number;
  p99: number;
  /** How many requests failed or stayed pending for each reason. */
  reasons: Record<string, number>;
  samples: Sample[];
}

export interface LevelOptions {
  concurrency: number;
  /** Stop starting new requests after this long (in-flight ones finish). */
  durationMs?: number;
  /** Stop after this many requests in total. With durationMs, whichever comes first. */
  count?: number;
  /** One request; `index` is unique within the level. Should not throw (if it does: failed). */
  operation: (index: number) => Promise<Outcome>;
}

export async function runLevel(opts: LevelOptions): Promise<LevelResult> {
  if (opts.durationMs === undefined && opts.count === undefined)
    throw new Error('runLevel needs a durationMs or a count');
  const samples: Sample[] = [];
  const started = performance.now();
  const deadline = opts.durationMs === undefined ? Number.POSITIVE_INFINITY : started + opts.durationMs;
  const limit = opts.count ?? Number.POSITIVE_INFINITY;
  let next = 0;
  const loop = async () => {
    while (next < limit && performance.now() < deadline) {
      const index = next++;
      const t0 = performance.now();
      let outcome: Outcome;
      try {
        outcome = await opts.operation(index);
      } catch (err) {
        outcome = { kind: 'failed', reason: `threw: ${err instanceof Error ? err.message : String(err)}` };
      }
      samples.push({ index, latencyMs: performance.now() - t0, outcome });
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, loop));
  return summarize(opts.concurrency, samples, performance.now() - started);
}

export function summarize(concurrency: number, samples: Sample[], wallMs: number): LevelResult {
  const count = (kind: Outcome['kind']) => samples.filter((s) => s.outcome.kind === kind).length;
  const latencies = samples
    .filter((s) => s.outcome.kind === 'ok')
    .map((s) => s.latencyMs)
    .sort((a, b) => a - b);
  const reasons: Record<string, number> = {};
  for (const { outcome } of samples)
    if (outcome.kind !== 'ok') reasons[outcome.reason] = (reasons[outcome.reason] ?? 0) + 1;
  const ok = latencies.length;
  return {
    concurrency,
    requests: samples.length,
    ok,
    failed: count('failed'),
    pending: count('pending'),
    wallMs,
    throughput: wallMs > 0 ? ok / (wallMs / 1000) : 0,
    p50: percentile(latencies, 0.5),
    p95: percentile(latencies, 0.95),
    p99: percentile(latencies, 0.99),
    reasons,
    samples,
  };
}

/** Nearest-rank percentile of sorted values; NaN for none. */
export function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}
