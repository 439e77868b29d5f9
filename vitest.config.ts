import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Temporal's core bridge and pkcs11js are native modules: worker threads break them.
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 180_000,
  },
});
