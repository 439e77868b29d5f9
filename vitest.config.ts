import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Temporal's core bridge and pkcs11js are native modules: worker threads break them.
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    // The cluster suite brings up the production shape: its own config (vitest.cluster.config.ts).
    exclude: ['test/cluster/**', '**/node_modules/**'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 180_000,
  },
});
