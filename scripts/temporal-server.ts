/**
 * A real Temporal server on Postgres (the production shape), and its Web UI, built from Go modules.
 *
 * Binaries (find-or-build, like scripts/temporal-cli.ts; the first candidate that answers wins):
 *   server   `$TEMPORAL_SERVER` → `temporal-server` on PATH (the name in Temporal's images and archives) →
 *            `.tools/server` → `GOBIN=.tools go install go.temporal.io/server/cmd/server@v1.29.1`
 *   sql tool `$TEMPORAL_SQL_TOOL` → `temporal-sql-tool` on PATH → `.tools/sql` → built with the server
 *            (`go.temporal.io/server/cmd/tools/sql@v1.29.1`; both in one `go install`, ~2-4 min cold)
 *   Web UI   `$TEMPORAL_UI_SERVER` → `.tools/temporal-ui-server` → `go install
 *            github.com/temporalio/ui-server/v2/cmd/server@v2.42.1` (the UI the CLI v1.5.1 embeds; its binary is
 *            also called `server`, so it is built in a scratch GOBIN and renamed)
 * v1.29.1 is the server the CLI v1.5.1 embeds: the dev server and this one run the same code.
 *
 * Databases: created if missing on the given Postgres, then the schema tool's *embedded* postgres12 schemas
 * (`--schema-name postgresql/v12/temporal` and `.../visibility`): `setup-schema -v 0.0` once, `update-schema`
 * every time (it applies only what is newer, so a server upgrade migrates the schema).
 *
 * Config: written as JSON (valid YAML) to `<dir>/config/development.yaml`, with our own dynamic config file
 * (absolute path) beside it. The server runs as `server --root <dir> --config config --env development
 * --allow-no-auth start`.
 *
 * Run directly (`npx tsx scripts/temporal-server.ts [--ui]`) it finds or builds the binaries and prints their
 * paths; `npm run cluster -- up` (scripts/cluster.ts) does the rest.
 */
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Connection } from '@temporalio/client';
import { msToTs } from '@temporalio/common/lib/time.js';
import postgres from 'postgres';
import { findGo, goInstall, isExecutableFile, runCommand, which } from './temporal-cli.js';

export const TEMPORAL_SERVER_VERSION = 'v1.29.1';
export const TEMPORAL_SERVER_MODULE = 'go.temporal.io/server';
export const TEMPORAL_UI_VERSION = 'v2.42.1';
export const TEMPORAL_UI_MODULE = 'github.com/temporalio/ui-server/v2';

export interface TemporalServerBinaries {
  server: string;
  sql: string;
}

/** Thrown when a binary is missing and there is no Go to build it; the message says what to do. */
export class TemporalServerNotFoundError extends Error {
  override name = 'TemporalServerNotFoundError';
}

export interface FindOptions {
  /** `.tools/` lives under it. Default: the parent of this file's directory. */
  projectRoot?: string;
  log?: (line: string) => void;
}

const defaultProjectRoot = (): string => resolve(dirname(fileURLToPath(import.meta.url)), '..');
const defaultLog = (line: string): void => {
  process.stderr.write(`[temporal-server] ${line}\n`);
};
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const errorMessage = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** The `--version` output's first line if `path` is a working binary whose version output matches. */
async function answersVersion(path: string, expect: RegExp): Promise<string | undefined> {
  if (!isExecutableFile(path)) return undefined;
  const r = await runCommand(path, ['--version'], 15_000);
  const line = `${r.stdout}${r.stderr}`.trim().split('\n')[0] ?? '';
  return r.code === 0 && expect.test(line) ? line : undefined;
}

type Candidate = [source: string, path: string | undefined];

async function firstWorking(
  what: string,
  candidates: Candidate[],
  expect: RegExp,
  log: (line: string) => void,
): Promise<string | undefined> {
  for (const [source, path] of candidates) {
    if (!path || !existsSync(path)) {
      if (path && source.startsWith('$')) log(`${source}=${path} does not exist; ignoring it`);
      continue;
    }
    const version = await answersVersion(path, expect);
    if (version) {
      log(`${what}: ${path} (${source}): ${version}`);
      return path;
    }
    log(`${what}: ${path} (${source}) does not answer --version as expected; ignoring it`);
  }
  return undefined;
}

// `server --version` prints "temporal version 1.29.1"; `sql --version` "temporal-sql-tool version 1.29.1".
const SERVER_VERSION_LINE = new RegExp(
  `version ${TEMPORAL_SERVER_VERSION.slice(1).replaceAll('.', '\\.')}\\b`,
);
const UI_VERSION_LINE = /version/i;

function serverCandidates(projectRoot: string): { server: Candidate[]; sql: Candidate[] } {
  const tools = join(projectRoot, '.tools');
  return {
    server: [
      ['$TEMPORAL_SERVER', process.env.TEMPORAL_SERVER || undefined],
      ['PATH', which('temporal-server')],
      ['.tools', join(tools, 'server')],
    ],
    sql: [
      ['$TEMPORAL_SQL_TOOL', process.env.TEMPORAL_SQL_TOOL || undefined],
      ['PATH', which('temporal-sql-tool')],
      ['.tools', join(tools, 'sql')],
    ],
  };
}

/** The server and its schema tool at v1.29.1: found, or built into `.tools/` with Go. */
export async function findOrBuildTemporalServer(opts: FindOptions = {}): Promise<TemporalServerBinaries> {
  const projectRoot = resolve(opts.projectRoot ?? defaultProjectRoot());
  const log = opts.log ?? defaultLog;
  const candidates = serverCandidates(projectRoot);
  let server = await firstWorking('server', candidates.server, SERVER_VERSION_LINE, log);
  let sql = await firstWorking('sql tool', candidates.sql, SERVER_VERSION_LINE, log);
  if (server && sql) return { server, sql };

  const go = findGo();
  const gobin = join(projectRoot, '.tools');
  const targets = [
    `${TEMPORAL_SERVER_MODULE}/cmd/server@${TEMPORAL_SERVER_VERSION}`,
    `${TEMPORAL_SERVER_MODULE}/cmd/tools/sql@${TEMPORAL_SERVER_VERSION}`,
  ];
  if (!go) {
    throw new TemporalServerNotFoundError(
      [
        `Temporal server ${TEMPORAL_SERVER_VERSION} ${server ? '' : 'binary '}${!server && !sql ? 'and ' : ''}` +
          `${sql ? '' : 'schema tool '}not found, and no Go toolchain to build them. Do one of:`,
        `  - install Go >= 1.24 (https://go.dev/dl/), then rerun; it runs: GOBIN=${gobin} go install ${targets.join(' ')}`,
        "  - put Temporal's release binaries `temporal-server` and `temporal-sql-tool` (same version) on PATH, " +
          'or set TEMPORAL_SERVER and TEMPORAL_SQL_TOOL to their paths',
      ].join('\n'),
    );
  }
  log(`building the Temporal server ${TEMPORAL_SERVER_VERSION} and its schema tool`);
  await goInstall({ go, targets, gobin, log });
  server ??= await firstWorking('server', [['.tools', join(gobin, 'server')]], SERVER_VERSION_LINE, log);
  sql ??= await firstWorking('sql tool', [['.tools', join(gobin, 'sql')]], SERVER_VERSION_LINE, log);
  if (!server || !sql)
    throw new Error(`'go install' succeeded but ${gobin}/server or ${gobin}/sql does not work`);
  return { server, sql };
}

/** The Web UI server (ui-server v2.42.1): found, or built into `.tools/temporal-ui-server` with Go. */
export async function findOrBuildTemporalUi(opts: FindOptions = {}): Promise<string> {
  const projectRoot = resolve(opts.projectRoot ?? defaultProjectRoot());
  const log = opts.log ?? defaultLog;
  const binary = join(projectRoot, '.tools', 'temporal-ui-server');
  const found = await firstWorking(
    'Web UI',
    [
      ['$TEMPORAL_UI_SERVER', process.env.TEMPORAL_UI_SERVER || undefined],
      ['.tools', binary],
    ],
    UI_VERSION_LINE,
    log,
  );
  if (found) return found;
  const go = findGo();
  const target = `${TEMPORAL_UI_MODULE}/cmd/server@${TEMPORAL_UI_VERSION}`;
  if (!go) {
    throw new TemporalServerNotFoundError(
      `Temporal Web UI not found (${binary}) and no Go to build it (go install ${target}); ` +
        'set TEMPORAL_UI_SERVER, or use the `temporal` CLI against the cluster instead',
    );
  }
  // Its main package is also `server`: build into a scratch GOBIN so it cannot replace the Temporal server.
  const scratch = join(projectRoot, '.tools', '.ui-build');
  rmSync(scratch, { recursive: true, force: true });
  log(`building the Temporal Web UI ${TEMPORAL_UI_VERSION}`);
  await goInstall({ go, targets: [target], gobin: scratch, log });
  renameSync(join(scratch, 'server'), binary);
  rmSync(scratch, { recursive: true, force: true });
  const ok = await firstWorking('Web UI', [['.tools', binary]], UI_VERSION_LINE, log);
  if (!ok) throw new Error(`'go install ${target}' succeeded but ${binary} does not answer --version`);
  return ok;
}

// ---- databases and schema ------------------------------------------------------------------------------------

export interface PostgresEndpoint {
  host: string;
  port: number;
  user: string;
  password: string;
}

export function postgresEndpoint(url: string): PostgresEndpoint {
  const u = new URL(url);
  return {
    host: u.hostname || '127.0.0.1',
    port: Number(u.port || 5432),
    user: decodeURIComponent(u.username || 'postgres'),
    password: decodeURIComponent(u.password),
  };
}

export interface TemporalDatabases {
  persistence: string;
  visibility: string;
}

/** Creates `database` on the server of `adminUrl` unless it exists. */
export async function ensureDatabase(adminUrl: string, database: string): Promise<boolean> {
  if (!/^[a-z_][a-z0-9_]*$/.test(database)) throw new Error(`database name ${database}: use [a-z0-9_]`);
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql`SELECT 1 FROM pg_database WHERE datname = ${database}`;
    if (rows.length > 0) return false;
    await sql.unsafe(`CREATE DATABASE ${database}`);
    return true;
  } finally {
    await sql.end();
  }
}

export async function dropDatabase(adminUrl: string, database: string): Promise<void> {
  if (!/^[a-z_][a-z0-9_]*$/.test(database)) throw new Error(`database name ${database}: use [a-z0-9_]`);
  const sql = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    await sql.unsafe(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  } finally {
    await sql.end();
  }
}

function withDatabase(adminUrl: string, database: string): string {
  const u = new URL(adminUrl);
  u.pathname = `/${database}`;
  return u.toString();
}

async function hasSchemaVersionTable(adminUrl: string, database: string): Promise<boolean> {
  const sql = postgres(withDatabase(adminUrl, database), { max: 1, onnotice: () => {} });
  try {
    const [row] = await sql`SELECT to_regclass('public.schema_version') IS NOT NULL AS present`;
    return row?.present === true;
  } finally {
    await sql.end();
  }
}

/**
 * Both databases exist and carry the newest embedded postgres12 schema. Idempotent; fast when up to date
 * (two `update-schema` runs that find nothing to do).
 */
export async function setupTemporalSchema(opts: {
  sqlTool: string;
  adminUrl: string;
  databases: TemporalDatabases;
  log?: (line: string) => void;
}): Promise<void> {
  const log = opts.log ?? defaultLog;
  const pg = postgresEndpoint(opts.adminUrl);
  const schemas: Array<[string, string]> = [
    [opts.databases.persistence, 'postgresql/v12/temporal'],
    [opts.databases.visibility, 'postgresql/v12/visibility'],
  ];
  for (const [database, schemaName] of schemas) {
    if (await ensureDatabase(opts.adminUrl, database)) log(`created database ${database}`);
    const base = [
      '--plugin',
      'postgres12',
      '--ep',
      pg.host,
      '-p',
      String(pg.port),
      '-u',
      pg.user,
      ...(pg.password ? ['--pw', pg.password] : []),
      '--db',
      database,
    ];
    const tool = async (args: string[]) => {
      const r = await runCommand(opts.sqlTool, [...base, ...args], 120_000);
      if (r.code !== 0)
        throw new Error(
          `${opts.sqlTool} ${args.join(' ')} on ${database} failed (exit ${r.code}):\n${r.stdout}${r.stderr}`,
        );
    };
    if (!(await hasSchemaVersionTable(opts.adminUrl, database))) {
      log(`${database}: setup-schema (versioning tables)`);
      await tool(['setup-schema', '-v', '0.0']);
    }
    await tool(['update-schema', '--schema-name', schemaName]);
    log(`${database}: schema ${schemaName} up to date`);
  }
}

// ---- configuration ---------------------------------------------------------------------------------------------

export interface TemporalServerPorts {
  frontend: number;
  frontendHttp: number;
  history: number;
  matching: number;
  internalWorker: number;
  /** frontend, history, matching, internal worker. */
  membership: [number, number, number, number];
  metrics: number;
}

export interface TemporalServerConfig {
  /** Holds config/development.yaml and config/dynamicconfig.yaml. */
  dir: string;
  adminUrl: string;
  databases: TemporalDatabases;
  ports: TemporalServerPorts;
  /** Fixed once the persistence database holds shards. */
  historyShards: number;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  /** Extra dynamic config, key → value (written with no constraints). */
  dynamicConfig?: Record<string, unknown>;
}

/**
 * Dynamic config we run with. The dev server (CLI v1.5.1) and upstream's development-sql.yaml enable the same
 * APIs; in v1.29.1 update-with-start (frontend.enableExecuteMultiOperation) and worker versioning are on by
 * default, so they are stated only to make the dependency visible. Task-queue partitions stay at the
 * server's default (4): not measured to help or hurt here yet.
 */
export const DEFAULT_DYNAMIC_CONFIG: Record<string, unknown> = {
  // Our workflow ids (`enroll/<profile>/<transactionID>`) can be long.
  'limit.maxIDLength': 255,
  'frontend.enableExecuteMultiOperation': true,
  'frontend.enableUpdateWorkflowExecution': true,
  'frontend.workerVersioningDataAPIs': true,
  'frontend.workerVersioningWorkflowAPIs': true,
  'frontend.workerVersioningRuleAPIs': true,
  'system.enableDeploymentVersions': true,
  'system.enableDeployments': true,
};

/** Writes the server's static and dynamic config; returns the command line to start it with. */
export function writeTemporalServerConfig(cfg: TemporalServerConfig): { args: string[]; configFile: string } {
  const dir = resolve(cfg.dir);
  const configDir = join(dir, 'config');
  mkdirSync(configDir, { recursive: true });
  const pg = postgresEndpoint(cfg.adminUrl);
  const p = cfg.ports;
  const dynamicConfigFile = join(configDir, 'dynamicconfig.yaml');
  const dynamic = { ...DEFAULT_DYNAMIC_CONFIG, ...cfg.dynamicConfig };
  writeFileSync(
    dynamicConfigFile,
    `# generated by scripts/temporal-server.ts; rewritten at every start\n${JSON.stringify(
      Object.fromEntries(Object.entries(dynamic).map(([k, v]) => [k, [{ value: v, constraints: {} }]])),
      null,
      2,
    )}\n`,
  );
  const datastore = (databaseName: string, maxConns: number) => ({
    sql: {
      pluginName: 'postgres12',
      databaseName,
      connectAddr: `${pg.host}:${pg.port}`,
      connectProtocol: 'tcp',
      user: pg.user,
      password: pg.password,
      maxConns,
      maxIdleConns: maxConns,
      maxConnLifetime: '1h',
    },
  });
  const service = (grpcPort: number, membershipPort: number, httpPort?: number) => ({
    rpc: { grpcPort, membershipPort, bindOnLocalHost: true, ...(httpPort ? { httpPort } : {}) },
  });
  const config = {
    log: { stdout: true, level: cfg.logLevel },
    persistence: {
      defaultStore: 'postgres-default',
      visibilityStore: 'postgres-visibility',
      numHistoryShards: cfg.historyShards,
      datastores: {
        // One process runs all four services and each opens its own pools (up to 4 × (10 + 3) = 52
        // connections): that leaves room under Postgres' default max_connections (100) for the product's
        // pools (10 per process) on the same server.
        'postgres-default': datastore(cfg.databases.persistence, 10),
        'postgres-visibility': datastore(cfg.databases.visibility, 3),
      },
    },
    global: {
      membership: { maxJoinDuration: '30s', broadcastAddress: '127.0.0.1' },
      metrics: {
        prometheus: { framework: 'tally', timerType: 'histogram', listenAddress: `127.0.0.1:${p.metrics}` },
      },
    },
    services: {
      frontend: service(p.frontend, p.membership[0], p.frontendHttp),
      history: service(p.history, p.membership[1]),
      matching: service(p.matching, p.membership[2]),
      worker: service(p.internalWorker, p.membership[3]),
    },
    clusterMetadata: {
      enableGlobalNamespace: false,
      failoverVersionIncrement: 10,
      masterClusterName: 'active',
      currentClusterName: 'active',
      clusterInformation: {
        active: {
          enabled: true,
          initialFailoverVersion: 1,
          rpcName: 'frontend',
          rpcAddress: `127.0.0.1:${p.frontend}`,
        },
      },
    },
    dcRedirectionPolicy: { policy: 'noop' },
    // Absolute: the server resolves a relative path against its working directory, not the config dir.
    dynamicConfigClient: { filepath: dynamicConfigFile, pollInterval: '10s' },
  };
  const configFile = join(configDir, 'development.yaml');
  // JSON is YAML: no YAML library needed, and nothing to escape by hand.
  writeFileSync(
    configFile,
    `# generated by scripts/temporal-server.ts; rewritten at every start\n${JSON.stringify(config, null, 2)}\n`,
    { mode: 0o600 },
  );
  return {
    args: ['--root', dir, '--config', 'config', '--env', 'development', '--allow-no-auth', 'start'],
    configFile,
  };
}

/** Writes the Web UI's config (pointed at the frontend); returns its command line. */
export function writeTemporalUiConfig(opts: {
  dir: string;
  port: number;
  frontend: string;
  namespace: string;
}): { args: string[] } {
  const dir = resolve(opts.dir);
  mkdirSync(join(dir, 'config'), { recursive: true });
  const config = {
    temporalGrpcAddress: opts.frontend,
    host: '127.0.0.1',
    port: opts.port,
    enableUi: true,
    defaultNamespace: opts.namespace,
    refreshInterval: '1m',
    notifyOnNewVersion: false,
    showTemporalSystemNamespace: false,
    cors: {
      cookieInsecure: true,
      allowOrigins: [`http://127.0.0.1:${opts.port}`, `http://localhost:${opts.port}`],
    },
  };
  writeFileSync(
    join(dir, 'config', 'development.yaml'),
    `# generated by scripts/temporal-server.ts\n${JSON.stringify(config, null, 2)}\n`,
  );
  return { args: ['--root', dir, '--config', 'config', '--env', 'development', 'start'] };
}

// ---- after start -----------------------------------------------------------------------------------------------

/** Connects, retrying until `deadline`; `dead()` returning a message aborts early (the process exited). */
export async function connectToTemporal(
  address: string,
  deadline: number,
  dead: () => string | undefined = () => undefined,
): Promise<Connection> {
  let lastError: unknown;
  while (Date.now() < deadline) {
    const why = dead();
    if (why) throw new Error(why);
    try {
      const connection = await Connection.connect({ address, connectTimeout: '2s' });
      // Connect succeeds once the port listens; the frontend serves once it answers this.
      await connection.workflowService.getSystemInfo({});
      return connection;
    } catch (err) {
      lastError = err;
      await sleep(500);
    }
  }
  throw new Error(`Temporal frontend at ${address} did not answer in time: ${errorMessage(lastError)}`);
}

/** Registers `namespace` unless it exists, then waits until the frontend serves it. */
export async function ensureNamespace(
  connection: Connection,
  namespace: string,
  retentionDays: number,
  deadline: number,
  log: (line: string) => void = defaultLog,
): Promise<void> {
  const describe = async () => {
    try {
      await connection.workflowService.describeNamespace({ namespace });
      return true;
    } catch (err) {
      if ((err as { code?: number }).code === 5 /* NOT_FOUND */) return false;
      throw err;
    }
  };
  if (await describe()) return;
  try {
    await connection.workflowService.registerNamespace({
      namespace,
      workflowExecutionRetentionPeriod: msToTs(retentionDays * 86_400_000),
    });
    log(`registered namespace '${namespace}' (retention ${retentionDays} days)`);
  } catch (err) {
    if ((err as { code?: number }).code !== 6 /* ALREADY_EXISTS */) throw err;
  }
  while (!(await describe())) {
    if (Date.now() > deadline) throw new Error(`namespace '${namespace}' registered but not served in time`);
    await sleep(500);
  }
}

const isMain = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isMain) {
  const { values } = parseArgs({ options: { ui: { type: 'boolean' } } });
  const started = Date.now();
  try {
    const binaries = await findOrBuildTemporalServer();
    const ui = values.ui ? await findOrBuildTemporalUi() : undefined;
    defaultLog(`ready in ${((Date.now() - started) / 1000).toFixed(1)}s`);
    process.stdout.write(`${binaries.server}\n${binaries.sql}\n${ui ? `${ui}\n` : ''}`);
  } catch (err) {
    process.stderr.write(`${errorMessage(err)}\n`);
    process.exit(1);
  }
}
