import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { closeInStages } from '../../runtime/shutdown.js';

/** A real pino logger whose lines the test reads back. */
function capturedLog() {
  const lines: Array<{ level: number; msg: string; stage?: string }> = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).trim().split('\n')) lines.push(JSON.parse(line));
      done();
    },
  });
  return { log: pino({ level: 'info' }, sink), lines };
}

describe('closing a process in stages (runtime/shutdown.ts)', () => {
  it('closes every stage in order, one log line each, and never calls the overrun', async () => {
    const { log, lines } = capturedLog();
    const closed: string[] = [];
    const overruns: string[] = [];
    await closeInStages(
      ['listeners', 'database', 'HSM tokens'].map((name) => ({
        name,
        close: async () => {
          await new Promise((r) => setTimeout(r, 5));
          closed.push(name);
        },
      })),
      { log, boundMs: 2_000, overrun: (stage) => overruns.push(stage) },
    );
    expect(closed).toEqual(['listeners', 'database', 'HSM tokens']);
    expect(lines.map((l) => l.msg)).toEqual([
      'closing listeners',
      'closing database',
      'closing HSM tokens',
      'closed',
    ]);
    // The bound's timer is cleared: nothing fires after the stages are done.
    await new Promise((r) => setTimeout(r, 2_100));
    expect(overruns).toEqual([]);
  });

  it('a stage that never finishes: past the bound the overrun names it, and later stages are not run', async () => {
    const { log, lines } = capturedLog();
    const closed: string[] = [];
    const overrun = new Promise<string>((resolve) => {
      void closeInStages(
        [
          { name: 'listeners', close: async () => closed.push('listeners') },
          // A connection that never drains.
          { name: 'Temporal connection', close: () => new Promise(() => {}) },
          { name: 'HSM tokens', close: async () => closed.push('HSM tokens') },
        ],
        { log, boundMs: 200, overrun: resolve },
      );
    });
    expect(await overrun).toBe('Temporal connection');
    expect(closed).toEqual(['listeners']);
    const error = lines.find((l) => l.level === 50);
    expect(error?.stage).toBe('Temporal connection');
    expect(error?.msg).toMatch(/still closing Temporal connection 200 ms .*exiting anyway/);
  });
});
