import { runtimeSettings } from '../config/runtime.js';
import { migrateDatabase, openDatabase } from '../db/client.js';
import { ensureLoginRole, grantApplicationRole } from '../db/roles.js';

/**
 * `npm run db:migrate`: applies db/migrations as the schema owner (DATABASE_MIGRATION_URL, else
 * DATABASE_URL, else the embedded dev database) and grants the application role (DATABASE_APP_ROLE,
 * default the user of DATABASE_URL when it differs from the owner's URL) exactly what it needs. With
 * DATABASE_APP_PASSWORD it first creates that role (LOGIN only) when missing and sets its password.
 */
const settings = runtimeSettings();
const ownerUrl = settings.databaseMigrationUrl ?? settings.databaseUrl;
if (ownerUrl && settings.databaseAppRole && process.env.DATABASE_APP_PASSWORD)
  await ensureLoginRole(ownerUrl, settings.databaseAppRole, process.env.DATABASE_APP_PASSWORD);
const handle = await openDatabase({
  url: ownerUrl,
  pgliteDir: settings.pgliteDir,
});
try {
  await migrateDatabase(handle);
  console.log(`migrations applied (${handle.kind})`);
  if (settings.databaseAppRole) {
    await grantApplicationRole(handle, settings.databaseAppRole);
    console.log(`role ${settings.databaseAppRole} granted rows access (audit_events append-only)`);
  }
} finally {
  await handle.close();
}
