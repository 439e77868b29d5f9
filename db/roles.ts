/**
 * Least privilege in the database. Migrations run as the schema owner (DATABASE_MIGRATION_URL);
 * the API and workers connect as an application role (DATABASE_URL) that reads and writes rows and
 * nothing else: it cannot alter a table, disable or drop the audit trigger, truncate, or change or
 * delete an audit event. A stolen worker credential can add rows; it cannot erase the evidence.
 */
import { sql } from 'drizzle-orm';
import { readMigrationFiles } from 'drizzle-orm/migrator';
import type { DatabaseHandle } from './client.js';
import { MIGRATIONS_FOLDER } from './client.js';

/** Tables rows of which the product deletes in normal operation; no other table grants DELETE. */
const DELETABLE_TABLES = ['upstream_submissions', 'webhook_receipts'] as const;
/** Evidence: inserted and read, never updated (the trigger refuses it too, for the owner). */
const APPEND_ONLY_TABLES = ['audit_events'] as const;

/** A Postgres role name (what `CREATE ROLE` accepts unquoted): anything else is refused, not quoted. */
export function assertRoleName(role: string): string {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(role))
    throw new Error(`database role "${role}" is not a plain lower-case identifier`);
  return role;
}

/**
 * Grants `role` what the product needs on every table the migrations created. Run by the schema
 * owner after each migration (new tables need their grants); idempotent.
 */
export async function grantApplicationRole(handle: DatabaseHandle, role: string): Promise<void> {
  const r = sql.raw(assertRoleName(role));
  const { db } = handle;
  await db.execute(sql`GRANT USAGE ON SCHEMA public TO ${r}`);
  // Start from nothing: a role that once had more (a DBA's GRANT ALL) ends with exactly this.
  await db.execute(sql`REVOKE ALL ON ALL TABLES IN SCHEMA public FROM ${r}`);
  await db.execute(sql`GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO ${r}`);
  for (const table of DELETABLE_TABLES)
    await db.execute(sql`GRANT DELETE ON ${sql.identifier(table)} TO ${r}`);
  for (const table of APPEND_ONLY_TABLES)
    await db.execute(sql`REVOKE UPDATE, DELETE, TRUNCATE ON ${sql.identifier(table)} FROM ${r}`);
  await db.execute(sql`GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO ${r}`);
  // Read-only view of what ran, so an application process can tell that the schema is current.
  await db.execute(sql`GRANT USAGE ON SCHEMA drizzle TO ${r}`);
  await db.execute(sql`GRANT SELECT ON drizzle.__drizzle_migrations TO ${r}`);
}

/** Migrations in db/migrations the database has not applied (0: the schema is current). */
export async function pendingMigrations(handle: DatabaseHandle): Promise<number> {
  const files = readMigrationFiles({ migrationsFolder: MIGRATIONS_FOLDER });
  let applied = 0;
  try {
    const rows = (await handle.db.execute(
      sql`SELECT coalesce(max(created_at), 0) AS last FROM drizzle.__drizzle_migrations`,
    )) as unknown as Array<{ last: string | number }> | { rows: Array<{ last: string | number }> };
    const list = Array.isArray(rows) ? rows : rows.rows;
    applied = Number(list[0]?.last ?? 0);
  } catch (err) {
    // No migrations table yet: nothing ran. Anything else (permissions, network) is the caller's to see.
    const cause = (err as { cause?: { message?: string } }).cause;
    if (!/does not exist/.test(`${(err as Error).message} ${cause?.message ?? ''}`)) throw err;
  }
  return files.filter((m) => m.folderMillis > applied).length;
}

/**
 * Creates the application role (LOGIN, nothing else: no CREATEDB, no superuser, owns nothing) or sets
 * its password. A DBA's step, done by provisioning where it has the admin URL (the cluster, tests).
 */
export async function ensureLoginRole(adminUrl: string, role: string, password?: string): Promise<void> {
  const { default: postgres } = await import('postgres');
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    const name = assertRoleName(role);
    const [exists] = await admin`SELECT 1 FROM pg_roles WHERE rolname = ${name}`;
    if (!exists) await admin.unsafe(`CREATE ROLE ${name} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE`);
    // Parameters do not work in utility statements: the literal is escaped by Postgres's own quote_literal.
    if (password) {
      const [row] = await admin`SELECT quote_literal(${password}) AS literal`;
      await admin.unsafe(`ALTER ROLE ${name} PASSWORD ${row!.literal as string}`);
    }
  } finally {
    await admin.end();
  }
}

/** Drops the application role (a destroyed deployment); its database must be gone first. */
export async function dropLoginRole(adminUrl: string, role: string): Promise<void> {
  const { default: postgres } = await import('postgres');
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`DROP ROLE IF EXISTS ${assertRoleName(role)}`);
  } finally {
    await admin.end();
  }
}
