import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { runtimeSettings } from '../../config/runtime.js';
import { openMigratedDatabase } from '../../runtime/services.js';

/**
 * The API and workers connect as the application role (db/roles.ts). What an attacker holding that
 * credential (a compromised worker) tries, to erase or rewrite evidence, Postgres refuses; the
 * product's own writes still work. Run against the run's database, migrated by its owner.
 */
const stack = inject('stack');
let app: postgres.Sql;
let owner: postgres.Sql;

beforeAll(() => {
  app = postgres(stack.databaseUrl, { max: 1, onnotice: () => {} });
  owner = postgres(stack.ownerDatabaseUrl, { max: 1, onnotice: () => {} });
});
afterAll(async () => {
  await app?.end();
  await owner?.end();
});

const refused = async (statement: string) => {
  const error = await app.unsafe(statement).then(
    () => undefined,
    (e: Error) => e,
  );
  expect(error, `${statement} should have been refused`).toBeInstanceOf(Error);
  return (error as Error).message;
};

describe('the application role', () => {
  it('appends audit events and reads them', async () => {
    const [row] = await app`
      INSERT INTO audit_events (actor, action, subject, details)
      VALUES ('attacker', 'test.appended', 'roles-test', '{}'::jsonb) RETURNING id`;
    expect(row?.id).toBeDefined();
  });

  it.each([
    ['ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only', /must be owner/],
    ['DROP TRIGGER audit_events_append_only ON audit_events', /must be owner/],
    ['ALTER TABLE audit_events DROP COLUMN details', /must be owner/],
    ['DROP TABLE audit_events', /must be owner/],
    ['TRUNCATE audit_events', /permission denied/],
    ["UPDATE audit_events SET actor = 'nobody' WHERE subject = 'roles-test'", /permission denied/],
    ["DELETE FROM audit_events WHERE subject = 'roles-test'", /permission denied/],
    ['DELETE FROM certificates', /permission denied/],
    ['DELETE FROM serials', /permission denied/],
    ['TRUNCATE certificates', /permission denied/],
    ['CREATE TABLE mine (id int)', /permission denied/],
    ['DELETE FROM drizzle.__drizzle_migrations', /permission denied/],
  ])('is refused: %s', async (statement, message) => {
    expect(await refused(statement)).toMatch(message);
  });

  it('leaves the evidence as it was', async () => {
    const rows = await owner`SELECT actor FROM audit_events WHERE subject = 'roles-test'`;
    expect(rows.map((r) => r.actor)).toEqual(['attacker']);
  });
});

describe('start-up against the database', () => {
  it('production refuses to run as the schema owner', async () => {
    const settings = {
      ...runtimeSettings(),
      databaseUrl: stack.ownerDatabaseUrl,
      databaseMigrationUrl: undefined,
    };
    await expect(openMigratedDatabase(settings, { PKI_ENV: 'production' })).rejects.toThrow(
      /DATABASE_URL connects as the owner of the schema/,
    );
  });

  it('production with the application role starts on a current schema', async () => {
    const settings = {
      ...runtimeSettings(),
      databaseUrl: stack.databaseUrl,
      databaseMigrationUrl: undefined,
    };
    const handle = await openMigratedDatabase(settings, { PKI_ENV: 'production' });
    await handle.close();
  });

  it('an application role on a schema behind this release names the migration step', async () => {
    const name = `roles_behind_${Date.now()}`;
    await owner.unsafe(`CREATE DATABASE ${name}`);
    try {
      const url = new URL(stack.databaseUrl);
      url.pathname = `/${name}`;
      const settings = { ...runtimeSettings(), databaseUrl: url.toString(), databaseMigrationUrl: undefined };
      await expect(openMigratedDatabase(settings, { PKI_ENV: 'production' })).rejects.toThrow(
        /schema is \d+ migration\(s\) behind this release: run `npm run db:migrate`/,
      );
    } finally {
      await owner.unsafe(`DROP DATABASE ${name} WITH (FORCE)`);
    }
  });
});
