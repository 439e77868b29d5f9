/**
 * What the cluster is made of: its settings (state dir, databases, ports, secrets), the processes it runs in
 * start order, and — in ONE function, {@link roleEnv} — the environment each process gets.
 *
 * Pure data, no side effects except reading/creating the secrets file: scripts/cluster/control.ts acts on it.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PROJECT_ROOT } from '../../config/load.js';
import { findSoftHsmLibrary } from '../../hsm/softhsm.js';

/** Long-running processes. One-shot provisioning runs with role 'provision'. */
export type Role = 'temporal' | 'temporal-ui' | 'api' | 'worker-pki' | 'worker-pki-hsm';
export type EnvRole = Role | 'provision';

export interface ClusterPorts {
  /** Temporal frontend gRPC: what TEMPORAL_ADDRESS points at. */
  frontend: number;
  /** Temporal frontend HTTP API (Nexus callbacks, HTTP clients). */
  frontendHttp: number;
  history: number;
  matching: number;
  /** Temporal's internal `worker` service (system workflows), not ours. */
  internalWorker: number;
  /** Membership (ringpop) ports, one per service: frontend, history, matching, internal worker. */
  membership: [number, number, number, number];
  /** Prometheus metrics of the Temporal server. */
  metrics: number;
  /** Temporal Web UI (HTTP). */
  ui: number;
  /** One SCEP API replica per port. */
  api: number[];
  /** Each API replica's operator listener (HTTPS), same order as `api`. */
  operatorApi: number[];
  /** First worker health listener (HEALTH_PORT): pki-hsm workers, then pki workers, one port each. */
  workerHealth: number;
  /**
   * First worker's Temporal SDK metrics listener (TEMPORAL_METRICS_PORT, Prometheus), same order as
   * workerHealth. The worker's own metrics are on its health port (/metrics).
   */
  workerTemporalMetrics: number;
}

/**
 * Defaults stay clear of the dev server (7233, UI 8233, and the ports it picks at random above them) and of
 * `npm run dev`'s API (8080).
 */
export const DEFAULT_PORTS: ClusterPorts = {
  frontend: 7333,
  frontendHttp: 7343,
  history: 7334,
  matching: 7335,
  internalWorker: 7339,
  membership: [6333, 6334, 6335, 6339],
  metrics: 9333,
  ui: 8333,
  api: [8081, 8082],
  operatorApi: [8444, 8445],
  workerHealth: 8091,
  workerTemporalMetrics: 9491,
};

/** Every port shifted by `offset` (a test cluster beside a developer's). */
export function shiftPorts(ports: ClusterPorts, offset: number): ClusterPorts {
  const m = ports.membership;
  return {
    frontend: ports.frontend + offset,
    frontendHttp: ports.frontendHttp + offset,
    history: ports.history + offset,
    matching: ports.matching + offset,
    internalWorker: ports.internalWorker + offset,
    membership: [m[0] + offset, m[1] + offset, m[2] + offset, m[3] + offset],
    metrics: ports.metrics + offset,
    ui: ports.ui + offset,
    api: ports.api.map((p) => p + offset),
    operatorApi: ports.operatorApi.map((p) => p + offset),
    workerHealth: ports.workerHealth + offset,
    workerTemporalMetrics: ports.workerTemporalMetrics + offset,
  };
}

/** Secrets generated once per state dir (mode 0600), so a cluster never runs on the well-known dev PINs. */
export interface ClusterSecrets {
  /** One PIN per key domain (DESIGN.md "Key domains"): a process learns only those of its job. */
  hsmRaPin: string;
  hsmCaPin: string;
  hsmDataPin: string;
  hsmSoPin: string;
  operatorToken: string;
  /** The application role's database password (the schema owner is the Postgres admin URL's). */
  databaseAppPassword: string;
}

export interface ClusterSettings {
  projectRoot: string;
  /** Everything the cluster writes: run/ (pid files), logs/, temporal/, ui/, softhsm/, pki/. */
  stateDir: string;
  /** Postgres server: host, port, user, password (its database name is ignored). */
  postgresUrl: string;
  databases: { pki: string; temporal: string; temporalVisibility: string };
  ports: ClusterPorts;
  /** Fixed forever once the persistence schema holds data: choose before the first `up`. */
  historyShards: number;
  namespace: string;
  retentionDays: number;
  /** `PKI_CONFIG` for every product process; unset: config/pki.json. */
  pkiConfig: string | undefined;
  /** Address written into certificates (CRL distribution point, OCSP): a load balancer in production. */
  publicUrl: string;
  hsmTokenLabel: string;
  /** Number of `pki` workers (each its own OS process). */
  pkiWorkers: number;
  /** Number of `pki-hsm` workers. */
  pkiHsmWorkers: number;
  /** Temporal server log level (its log goes to logs/temporal.log). */
  temporalLogLevel: 'debug' | 'info' | 'warn' | 'error';
  /** Start the Web UI (it is built on first use; ~1 min). */
  ui: boolean;
  /** Extra Temporal dynamic config (key → value), e.g. task-queue partitions for a measurement. */
  temporalDynamicConfig: Record<string, unknown>;
}

/**
 * Settings from defaults, the environment (CLUSTER_* variables, DATABASE_URL for the Postgres server) and
 * `overrides`. Tests pass their own stateDir, databases and ports so they never touch a developer's cluster.
 */
export function clusterSettings(
  overrides: Partial<ClusterSettings> = {},
  env: NodeJS.ProcessEnv = process.env,
): ClusterSettings {
  const ports =
    overrides.ports ??
    (env.CLUSTER_PORT_OFFSET ? shiftPorts(DEFAULT_PORTS, Number(env.CLUSTER_PORT_OFFSET)) : DEFAULT_PORTS);
  const projectRoot = overrides.projectRoot ?? PROJECT_ROOT;
  const apiHost = '127.0.0.1';
  return {
    projectRoot,
    stateDir: resolve(overrides.stateDir ?? env.CLUSTER_STATE_DIR ?? join(projectRoot, '.data', 'cluster')),
    postgresUrl:
      overrides.postgresUrl ??
      env.CLUSTER_POSTGRES_URL ??
      env.DATABASE_URL ??
      'postgres://postgres@127.0.0.1:5432/postgres',
    databases: overrides.databases ?? {
      pki: env.CLUSTER_PKI_DATABASE ?? 'pki_cluster',
      temporal: env.CLUSTER_TEMPORAL_DATABASE ?? 'temporal_cluster',
      temporalVisibility: env.CLUSTER_TEMPORAL_VISIBILITY_DATABASE ?? 'temporal_cluster_visibility',
    },
    ports,
    historyShards: overrides.historyShards ?? Number(env.CLUSTER_HISTORY_SHARDS ?? 16),
    namespace: overrides.namespace ?? 'default',
    retentionDays: overrides.retentionDays ?? 3,
    pkiConfig: overrides.pkiConfig ?? env.PKI_CONFIG,
    publicUrl: overrides.publicUrl ?? env.CLUSTER_PUBLIC_URL ?? `http://${apiHost}:${ports.api[0]}`,
    hsmTokenLabel: overrides.hsmTokenLabel ?? 'device-pki',
    pkiWorkers: overrides.pkiWorkers ?? 2,
    pkiHsmWorkers: overrides.pkiHsmWorkers ?? 1,
    temporalLogLevel:
      overrides.temporalLogLevel ?? (env.CLUSTER_TEMPORAL_LOG_LEVEL as 'warn' | undefined) ?? 'warn',
    ui: overrides.ui ?? env.CLUSTER_UI !== '0',
    temporalDynamicConfig:
      overrides.temporalDynamicConfig ??
      (env.CLUSTER_TEMPORAL_DYNAMIC_CONFIG ? JSON.parse(env.CLUSTER_TEMPORAL_DYNAMIC_CONFIG) : {}),
  };
}

/** Where each piece of state lives. */
export function statePaths(settings: ClusterSettings) {
  const s = settings.stateDir;
  return {
    run: join(s, 'run'),
    logs: join(s, 'logs'),
    temporal: join(s, 'temporal'),
    ui: join(s, 'ui'),
    softhsm: join(s, 'softhsm'),
    pkiData: join(s, 'pki'),
    secrets: join(s, 'secrets.json'),
    lock: join(s, 'up.lock'),
  };
}

/**
 * Reads the cluster's secrets, generating each one that is missing (first use, or a secret added to
 * {@link ClusterSecrets} since this state dir was created) and keeping the others.
 */
export function clusterSecrets(settings: ClusterSettings): ClusterSecrets {
  const file = statePaths(settings).secrets;
  const stored: Partial<ClusterSecrets> = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {};
  const secrets: ClusterSecrets = {
    hsmRaPin: stored.hsmRaPin ?? randomBytes(12).toString('hex'),
    hsmCaPin: stored.hsmCaPin ?? randomBytes(12).toString('hex'),
    hsmDataPin: stored.hsmDataPin ?? randomBytes(12).toString('hex'),
    hsmSoPin: stored.hsmSoPin ?? randomBytes(12).toString('hex'),
    operatorToken: stored.operatorToken ?? randomBytes(24).toString('base64url'),
    databaseAppPassword: stored.databaseAppPassword ?? randomBytes(18).toString('base64url'),
  };
  if (Object.keys(secrets).some((k) => stored[k as keyof ClusterSecrets] === undefined)) {
    mkdirSync(settings.stateDir, { recursive: true });
    writeFileSync(file, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 });
  }
  return secrets;
}

/** postgres://user:pass@host:port/<database> on the cluster's Postgres server (as its admin: the schema owner). */
export function databaseUrl(settings: ClusterSettings, database: string): string {
  const url = new URL(settings.postgresUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

/** The product's database role: rows only, no DDL, audit events append-only (db/roles.ts). */
export function databaseAppRole(settings: ClusterSettings): string {
  return `${settings.databases.pki}_app`;
}

/** The product database as the application role: what the API and workers connect with. */
export function appDatabaseUrl(settings: ClusterSettings): string {
  const url = new URL(databaseUrl(settings, settings.databases.pki));
  url.username = databaseAppRole(settings);
  url.password = clusterSecrets(settings).databaseAppPassword;
  return url.toString();
}

export function temporalAddress(settings: ClusterSettings): string {
  return `127.0.0.1:${settings.ports.frontend}`;
}

/** Variables every process may inherit from the shell that runs `cluster up`: no credentials among them. */
const INHERITED = ['PATH', 'HOME', 'USER', 'LANG', 'LC_ALL', 'TZ', 'TMPDIR', 'NODE_EXTRA_CA_CERTS'];
/** Product tunables (no credentials) that pass through to the product processes when the caller sets them. */
const TUNABLES = ['TEMPORAL_LOG_LEVEL', 'SCEP_RATE_PER_MINUTE', 'SCEP_RATE_BURST'];

/**
 * THE environment of each cluster process — the one place to change when credentials move.
 *
 * Each process starts from a clean environment (only {@link INHERITED} passes through from the caller), so a
 * process holds exactly what is listed here: the variable names are config/runtime.ts's, the same that
 * docker-compose.yml sets per service.
 *
 * Key custody (DESIGN.md "Key domains"): three tokens, each with its own PIN, and each role gets the PINs
 * of its job only (token labels are not secrets: every product process knows them):
 *   - api:             RA (SCEP decryption, replies, OCSP responder keys) + data (payload codec)
 *   - worker-pki:      data (field encryption, payload codec)
 *   - worker-pki-hsm:  CA (issuing CA keys sign here and only here) + data
 *   - provision:       all three and the SO PIN (the key ceremony: tokens, CA hierarchy, operator TLS)
 *   - temporal, temporal-ui: no product credentials at all
 * The database likewise: provisioning migrates as the schema owner (DATABASE_MIGRATION_URL) and grants
 * the application role; the long-running processes connect as that role (DATABASE_URL) and cannot alter
 * a table or touch the audit trail. Only the API gets OPERATOR_TOKEN.
 *
 * NODE_ENV stays unset: processes run the sources (a stale dist/ workflow bundle never runs here).
 */
export function roleEnv(
  role: EnvRole,
  settings: ClusterSettings,
  opts: { apiPort?: number; healthPort?: number; temporalMetricsPort?: number } = {},
): Record<string, string> {
  const inherited = Object.fromEntries(
    INHERITED.flatMap((k) => (process.env[k] !== undefined ? [[k, process.env[k]!]] : [])),
  );
  if (role === 'temporal' || role === 'temporal-ui') return inherited;

  const paths = statePaths(settings);
  const secrets = clusterSecrets(settings);
  // The product's common settings: database, Temporal, data dir, profiles file, public URL.
  const product: Record<string, string> = {
    ...inherited,
    ...Object.fromEntries(
      TUNABLES.flatMap((k) => (process.env[k] !== undefined ? [[k, process.env[k]!]] : [])),
    ),
    DATABASE_URL: appDatabaseUrl(settings),
    TEMPORAL_ADDRESS: temporalAddress(settings),
    TEMPORAL_NAMESPACE: settings.namespace,
    PKI_DATA_DIR: paths.pkiData,
    PKI_PUBLIC_URL: settings.publicUrl,
    ...(settings.pkiConfig ? { PKI_CONFIG: resolve(settings.pkiConfig) } : {}),
  };
  // The HSM as production reaches it: a PKCS#11 library and tokens by label. With SOFTHSM2_LIB set, the
  // long-running processes open the tokens as they are (runtime/services.ts openTokens) instead of
  // rewriting softhsm2.conf at every start; provisioning creates them. PINs per role below.
  const hsm: Record<string, string> = {
    SOFTHSM_DIR: paths.softhsm,
    SOFTHSM2_CONF: join(paths.softhsm, 'softhsm2.conf'),
    SOFTHSM2_LIB: findSoftHsmLibrary(),
    HSM_RA_TOKEN_LABEL: `${settings.hsmTokenLabel}-ra`,
    HSM_CA_TOKEN_LABEL: `${settings.hsmTokenLabel}-ca`,
    HSM_DATA_TOKEN_LABEL: `${settings.hsmTokenLabel}-data`,
  };
  const pins = {
    ra: { HSM_RA_PIN: secrets.hsmRaPin },
    ca: { HSM_CA_PIN: secrets.hsmCaPin },
    data: { HSM_DATA_PIN: secrets.hsmDataPin },
  };
  // Integration secrets the profiles file names (static challenge overrides, MDM and CA credentials) pass
  // through from the caller to the roles that verify and issue.
  const integration = Object.fromEntries(
    Object.entries(process.env).filter(
      (e): e is [string, string] => e[1] !== undefined && /^PKI_PROFILE_\w+_CHALLENGE$/.test(e[0]),
    ),
  );

  switch (role) {
    case 'provision':
      return {
        ...product,
        ...hsm,
        ...pins.ra,
        ...pins.ca,
        ...pins.data,
        HSM_SO_PIN: secrets.hsmSoPin,
        DATABASE_MIGRATION_URL: databaseUrl(settings, settings.databases.pki),
        DATABASE_APP_ROLE: databaseAppRole(settings),
        // db-migrate creates the role when missing (scripts/migrate.ts).
        DATABASE_APP_PASSWORD: secrets.databaseAppPassword,
        ...integration,
      };
    case 'api': {
      const replica = Math.max(0, settings.ports.api.indexOf(opts.apiPort ?? settings.ports.api[0]!));
      return {
        ...product,
        ...hsm,
        ...pins.ra,
        ...pins.data,
        ...integration,
        // Single-DES / RC2 SCEP clients need OpenSSL's legacy provider (package.json `npm run api`).
        NODE_OPTIONS: '--openssl-legacy-provider',
        API_HOST: '127.0.0.1',
        API_PORT: String(opts.apiPort ?? settings.ports.api[0]),
        OPERATOR_HOST: '127.0.0.1',
        OPERATOR_PORT: String(settings.ports.operatorApi[replica]),
        OPERATOR_TOKEN: secrets.operatorToken,
        // The console links each enrollment and device to its workflow in the cluster's Web UI.
        ...(settings.ui ? { TEMPORAL_UI_URL: `http://127.0.0.1:${settings.ports.ui}` } : {}),
      };
    }
    case 'worker-pki':
    case 'worker-pki-hsm': {
      const health: Record<string, string> = {
        ...(opts.healthPort !== undefined ? { HEALTH_PORT: String(opts.healthPort) } : {}),
        ...(opts.temporalMetricsPort !== undefined
          ? { TEMPORAL_METRICS_PORT: String(opts.temporalMetricsPort) }
          : {}),
      };
      const keys = role === 'worker-pki-hsm' ? { ...pins.ca, ...pins.data } : pins.data;
      return { ...product, ...hsm, ...keys, ...integration, ...health };
    }
  }
}

/** How the supervisor decides a freshly started process is serving. */
export type Readiness =
  | { kind: 'http'; url: string }
  | { kind: 'log'; pattern: string }
  | { kind: 'temporal'; address: string };

export interface ProcessSpec {
  /** Unique, stable: names the pid file and the log file (`api-1`, `worker-pki-2`). */
  name: string;
  role: Role;
  command: string;
  args: string[];
  /** Computed when the process starts (it reads or creates the secrets): listing specs has no side effects. */
  env: () => Record<string, string>;
  cwd: string;
  port?: number;
  ready: Readiness;
  /** SIGTERM, then SIGKILL after this long. */
  stopTimeoutMs: number;
  /** Processes of one tier start together; tiers start in order and stop in reverse order. */
  tier: number;
}

/** Node with tsx as a loader, in this process: the pid is the product's process (not an npm or tsx wrapper). */
function nodeScript(script: string, ...args: string[]): { command: string; args: string[] } {
  return { command: process.execPath, args: ['--import', 'tsx', script, ...args] };
}

/** The provisioning steps run before the product processes (role 'provision'), in order. */
export function provisioningSteps(): Array<{ name: string; command: string; args: string[] }> {
  return [
    // = `npm run hsm:init`: RA, CA and data tokens + CA hierarchy (creates only what is missing).
    { name: 'hsm-init', ...nodeScript('scripts/softhsm.ts') },
    // = `npm run db:migrate`: as the schema owner, then grants the application role.
    { name: 'db-migrate', ...nodeScript('scripts/migrate.ts') },
  ];
}

/**
 * The product processes in start order (the Temporal server and its UI are added by control.ts, which knows
 * their binaries): `pki-hsm` workers first, then `pki` workers, then the API replicas — so the APIs stop first
 * and the workers drain after them. Same commands as docker-compose.yml and package.json:
 *   api:            npm run api                          (node api/main.ts)
 *   worker-pki:     npm run worker -- --queues pki       (node worker/main.ts --queues pki)
 *   worker-pki-hsm: npm run worker -- --queues pki-hsm
 */
export function productProcesses(settings: ClusterSettings): ProcessSpec[] {
  const cwd = settings.projectRoot;
  // Each worker's /readyz (HEALTH_PORT): Temporal, database, its tokens, its workers RUNNING.
  let nextHealthPort = settings.ports.workerHealth;
  // Each worker's Temporal SDK metrics sit at the same distance from its health port.
  const temporalMetricsOf = (healthPort: number) =>
    settings.ports.workerTemporalMetrics + (healthPort - settings.ports.workerHealth);
  const workerReady = (port: number): Readiness => ({ kind: 'http', url: `http://127.0.0.1:${port}/readyz` });
  // worker/workers.ts: shutdownGraceTime 20 s for in-flight activities.
  const workerStop = 30_000;
  const specs: ProcessSpec[] = [];
  for (let i = 1; i <= settings.pkiHsmWorkers; i++) {
    const healthPort = nextHealthPort++;
    const temporalMetricsPort = temporalMetricsOf(healthPort);
    specs.push({
      name: `worker-pki-hsm-${i}`,
      role: 'worker-pki-hsm',
      ...nodeScript('worker/main.ts', '--queues', 'pki-hsm'),
      env: () => roleEnv('worker-pki-hsm', settings, { healthPort, temporalMetricsPort }),
      cwd,
      port: healthPort,
      ready: workerReady(healthPort),
      stopTimeoutMs: workerStop,
      tier: 2,
    });
  }
  for (let i = 1; i <= settings.pkiWorkers; i++) {
    const healthPort = nextHealthPort++;
    const temporalMetricsPort = temporalMetricsOf(healthPort);
    specs.push({
      name: `worker-pki-${i}`,
      role: 'worker-pki',
      ...nodeScript('worker/main.ts', '--queues', 'pki'),
      env: () => roleEnv('worker-pki', settings, { healthPort, temporalMetricsPort }),
      cwd,
      port: healthPort,
      ready: workerReady(healthPort),
      stopTimeoutMs: workerStop,
      tier: 2,
    });
  }
  settings.ports.api.forEach((port, i) => {
    specs.push({
      name: `api-${i + 1}`,
      role: 'api',
      ...nodeScript('api/main.ts'),
      env: () => roleEnv('api', settings, { apiPort: port }),
      cwd,
      port,
      ready: { kind: 'http', url: `http://127.0.0.1:${port}/readyz` },
      stopTimeoutMs: 15_000,
      tier: 3,
    });
  });
  return specs;
}
