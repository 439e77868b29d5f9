import { runtimeSettings } from '../config/runtime.js';
import { migrateDatabase, openDatabase } from '../db/client.js';

/** `npm run db:migrate`: applies db/migrations to DATABASE_URL (or the embedded dev database). */
const settings = runtimeSettings();
const handle = await openDatabase({ url: settings.databaseUrl, pgliteDir: settings.pgliteDir });
try {
  await migrateDatabase(handle);
  console.log(`migrations applied (${handle.kind})`);
} finally {
  await handle.close();
}
