import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { PROJECT_ROOT } from '../config/load.js';
import * as schema from './schema.js';

export type Database = PgDatabase<PgQueryResultHKT, typeof schema>;
/** A transaction of Database.transaction(); statements that must commit together take one. */
export type Transaction = Parameters<Parameters<Database['transaction']>[0]>[0];
/** Either: code that writes one row can run alone or inside someone's transaction. */
export type Executor = Database | Transaction;

export interface DatabaseHandle {
  db: Database;
  /** 'postgres' for a server (any number of processes), 'pglite' for the embedded single-process one. */
  kind: 'postgres' | 'pglite';
  close(): Promise<void>;
}

export const MIGRATIONS_FOLDER = join(PROJECT_ROOT, 'db', 'migrations');

/**
 * Opens the database: Postgres when a URL is given, otherwise an embedded PGlite under `pgliteDir`
 * (the same schema and migrations; one process only, which is how `npm run dev` runs).
 */
export async function openDatabase(opts: {
  url: string | undefined;
  pgliteDir: string;
  maxConnections?: number;
}): Promise<DatabaseHandle> {
  if (opts.url) {
    const { default: postgres } = await import('postgres');
    const { drizzle } = await import('drizzle-orm/postgres-js');
    const sql = postgres(opts.url, { max: opts.maxConnections ?? 10, onnotice: () => {} });
    return {
      db: drizzle(sql, { schema }) as unknown as Database,
      kind: 'postgres',
      close: () => sql.end({ timeout: 5 }),
    };
  }
  const { PGlite } = await import('@electric-sql/pglite');
  const { drizzle } = await import('drizzle-orm/pglite');
  mkdirSync(opts.pgliteDir, { recursive: true });
  const client = new PGlite(opts.pgliteDir);
  return {
    db: drizzle(client, { schema }) as unknown as Database,
    kind: 'pglite',
    close: () => client.close(),
  };
}

/** Applies the committed migrations (idempotent; drizzle records what ran). */
export async function migrateDatabase(handle: DatabaseHandle): Promise<void> {
  if (handle.kind === 'postgres') {
    const { migrate } = await import('drizzle-orm/postgres-js/migrator');
    await migrate(handle.db as never, { migrationsFolder: MIGRATIONS_FOLDER });
  } else {
    const { migrate } = await import('drizzle-orm/pglite/migrator');
    await migrate(handle.db as never, { migrationsFolder: MIGRATIONS_FOLDER });
  }
}
