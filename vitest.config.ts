import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Temporal's core bridge and pkcs11js are native modules: worker threads break them.
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    // The cluster suite brings up the production shape: its own config (vitest.cluster.config.ts).
    exclude: ['test/cluster/**', '**/node_modules/**'],
    globalSetup: ['test/support/global-setup.ts'],
    // The in-process API and workers log every request at info: keep the test output to what matters.
    // Product processes the tests start log at info (scripts/product-process.ts).
    env: { LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' },
    testTimeout: 60_000,
    hookTimeout: 180_000,
  },
});
