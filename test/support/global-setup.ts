import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import type { TestProject } from 'vitest/node';
import { loadPkiConfig, PROJECT_ROOT } from '../../config/load.js';
import { runtimeSettings } from '../../config/runtime.js';
import { migrateDatabase, openDatabase } from '../../db/client.js';
import { openProvisionedToken } from '../../runtime/services.js';
import { startTemporalDevServer } from '../../scripts/temporal-dev-server.js';
import type { StackInfo } from './stack-info.js';

/**
 * Once per `npm test`: a throwaway Temporal dev server (in-memory, its own ports), a fresh Postgres
 * database, and a SoftHSM token holding the test CA hierarchy. Real components, nothing mocked.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const workDir = mkdtempSync(join(tmpdir(), 'device-pki-test-'));
  const env = {
    PKI_CONFIG: join(PROJECT_ROOT, 'test', 'support', 'test-pki.json'),
    PKI_DATA_DIR: workDir,
    SOFTHSM_DIR: join(workDir, 'softhsm'),
    HSM_TOKEN_LABEL: 'device-pki-test',
    TEMPORAL_LOG_LEVEL: process.env.TEMPORAL_LOG_LEVEL ?? 'WARN',
  };
  Object.assign(process.env, env);

  const temporal = await startTemporalDevServer({
    projectRoot: PROJECT_ROOT,
    port: await freePort(),
    headless: true,
    dbFile: ':memory:',
    log: (line) => console.log(`[test temporal] ${line}`),
  });

  const adminUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const dbName = `pki_test_${Date.now()}_${process.pid}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${dbName}`);
  const url = new URL(adminUrl);
  url.pathname = `/${dbName}`;
  const databaseUrl = url.toString();
  const handle = await openDatabase({ url: databaseUrl, pgliteDir: '' });
  await migrateDatabase(handle);
  await handle.close();

  const settings = runtimeSettings();
  const token = await openProvisionedToken(settings, loadPkiConfig());
  await token.close();

  const stack: StackInfo = { temporalAddress: temporal.address, databaseUrl, env, workDir };
  project.provide('stack', stack);

  return async () => {
    await temporal.stop();
    await admin.unsafe(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
    rmSync(workDir, { recursive: true, force: true });
  };
}

async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}
