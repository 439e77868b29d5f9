import { defineConfig } from 'vitest/config';

/**
 * `npm run test:cluster`: the production shape as separate OS processes (scripts/cluster.ts). Slow (it starts a
 * Temporal server and five product processes, and may build the server first), so it is not part of `npm test`
 * and runs in its own CI phase.
 */
export default defineConfig({
  test: {
    pool: 'forks',
    include: ['test/cluster/**/*.test.ts'],
    // One cluster at a time on this machine: files run one after another.
    fileParallelism: false,
    testTimeout: 300_000,
    // beforeAll may build the Temporal server and its Web UI from Go on a cold cache (several minutes).
    hookTimeout: 900_000,
  },
});
