import { describe, expect, it } from 'vitest';
import { summarize } from '../../bench/load-generator.js';
import { type LevelRow, median, renderRatios, renderTable, type SystemName } from '../../bench/report.js';

/**
 * The bench's verdict on issue 10's target (bench/report.ts). With --rounds, a ratio compares the
 * project with the floor of the same round, and the verdict is the median of those ratios: a round
 * in which the machine was slow for one system and fast for the other must not decide it.
 */
function row(
  system: SystemName,
  round: number,
  concurrency: number,
  okPerSecond: number,
  p50: number,
): LevelRow {
  // `ok` successes in 10 s, all with latency p50: throughput okPerSecond, every percentile p50.
  const ok = Math.round(okPerSecond * 10);
  const samples = Array.from({ length: ok }, (_, index) => ({
    index,
    latencyMs: p50,
    outcome: { kind: 'ok' as const },
  }));
  return {
    system,
    round,
    result: summarize(concurrency, samples, 10_000),
    cpuMs: { app: ok * 100 },
    generatorMs: ok * 10,
    windowMs: 12_000,
  };
}

describe('bench report: ratios by round', () => {
  it('median of an odd and an even count', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([])).toBeNaN();
  });

  it('one round: the ratios of that round, no round column', () => {
    const rows = [
      row('project', 1, 8, 10, 200),
      row('floor', 1, 8, 40, 100),
      row('project', 1, 1, 5, 200),
      row('floor', 1, 1, 10, 100),
    ];
    expect(renderRatios(rows)).toContain(
      'Issue 10 target: project/floor enrollments/s at 8 concurrent = 0.25 (target >= 0.6); p50 at 1 concurrent = 2.00x',
    );
    expect(renderTable(rows).split('\n')[0]).not.toContain('round');
  });

  it('three rounds: each ratio within its round, the verdict their median', () => {
    // Round 2 caught the floor on a slow minute (ratio 0.8); the median ignores that outlier.
    const rows = [
      row('project', 1, 8, 10, 200),
      row('floor', 1, 8, 40, 100),
      row('project', 2, 8, 12, 200),
      row('floor', 2, 8, 15, 100),
      row('project', 3, 8, 9, 200),
      row('floor', 3, 8, 30, 100),
    ];
    const ratios = renderRatios(rows);
    expect(ratios).toContain('| enrollments/s at 8 concurrent | 0.25 | 0.80 | 0.30 |');
    expect(ratios).toContain(
      "Issue 10 target (medians of the rounds' ratios): project/floor enrollments/s at 8 concurrent = 0.30",
    );
    expect(renderTable(rows).split('\n')[0]).toContain('| round |');
  });
});
