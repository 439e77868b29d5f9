import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import type { TestProject } from 'vitest/node';
import { loadPkiConfig, PROJECT_ROOT } from '../../config/load.js';
import { runtimeSettings } from '../../config/runtime.js';
import { toPem } from '../../pki/pem.js';
import { migrateAsOwner, openProvisionedTokens } from '../../runtime/services.js';
import { freePort } from '../../scripts/free-port.js';
import { startTemporalDevServer } from '../../scripts/temporal-dev-server.js';
import type { StackInfo } from './stack-info.js';

/**
 * Once per `npm test`: a throwaway Temporal dev server (in-memory, its own ports), a fresh Postgres
 * database with an application role (what the product connects as), and SoftHSM tokens per key
 * domain (RA, CA, data) holding the test CA hierarchy. Real components, nothing mocked.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const workDir = mkdtempSync(join(tmpdir(), 'device-pki-test-'));
  const env = {
    PKI_CONFIG: join(PROJECT_ROOT, 'test', 'support', 'test-pki.json'),
    PKI_DATA_DIR: workDir,
    SOFTHSM_DIR: join(workDir, 'softhsm'),
    HSM_RA_TOKEN_LABEL: 'device-pki-test-ra',
    HSM_CA_TOKEN_LABEL: 'device-pki-test-ca',
    HSM_DATA_TOKEN_LABEL: 'device-pki-test-data',
    // The operator listener's certificate chains to the test root: fetch() in test files trusts it.
    NODE_EXTRA_CA_CERTS: join(workDir, 'root-ca.pem'),
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
  // The product connects as an application role, never as the owner (db/roles.ts).
  const appRole = `${dbName}_app`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${dbName}`);
  await admin.unsafe(`CREATE ROLE ${appRole} LOGIN`);
  const url = new URL(adminUrl);
  url.pathname = `/${dbName}`;
  const ownerDatabaseUrl = url.toString();
  url.username = appRole;
  const databaseUrl = url.toString();
  const settings = runtimeSettings();
  await migrateAsOwner({ ...settings, databaseMigrationUrl: ownerDatabaseUrl, databaseAppRole: appRole });

  const tokens = await openProvisionedTokens(settings, loadPkiConfig());
  const root = await tokens.get('root').certificate(loadPkiConfig().rootCa.keyLabel);
  await tokens.close();
  writeFileSync(env.NODE_EXTRA_CA_CERTS, toPem(root!));

  const stack: StackInfo = { temporalAddress: temporal.address, databaseUrl, ownerDatabaseUrl, env, workDir };
  project.provide('stack', stack);

  return async () => {
    await temporal.stop();
    await admin.unsafe(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.unsafe(`DROP ROLE IF EXISTS ${appRole}`);
    await admin.end();
    rmSync(workDir, { recursive: true, force: true });
  };
}
