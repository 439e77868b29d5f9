import postgres from 'postgres';
import { type DatabaseHandle, migrateDatabase, openDatabase } from '../../db/client.js';

/**
 * A migrated database of the test's own, for tests that read or drain whole tables (the run's
 * shared database holds every other test file's rows meanwhile). Drop it when done.
 */
export async function openOwnDatabase(
  purpose: string,
  maxConnections = 2,
): Promise<{ handle: DatabaseHandle; drop(): Promise<void> }> {
  const adminUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const name = `pki_${purpose}_${Date.now()}_${process.pid}`;
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  await admin.unsafe(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const handle = await openDatabase({ url: url.toString(), pgliteDir: '', maxConnections });
  await migrateDatabase(handle);
  return {
    handle,
    async drop() {
      await handle.close();
      await admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    },
  };
}
