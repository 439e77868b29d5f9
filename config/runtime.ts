import { join } from 'node:path';
import { PROJECT_ROOT } from './load.js';

/**
 * The key domains (DESIGN.md "Trust model"): each token holds the keys of one job and has its own PIN;
 * a process opens only the tokens its job needs (runtime/services.ts).
 * - `ra`: the SCEP RA key, the OCSP responder keys, copies of the public CA certificates. The API.
 * - `ca`: the issuing CA keys (and the root's, unless it has its own token). `pki-hsm` workers and
 *   ceremonies only.
 * - `data`: the field-encryption key and the payload key-encryption keys. Every process.
 * - `root`: optional; the root key alone, opened only by ceremony commands.
 */
export type TokenRole = 'ra' | 'ca' | 'data' | 'root';

export interface TokenSettings {
  label: string;
  pin: string;
  /** The environment variable the PIN came from (named in production refusals). */
  pinVariable: string;
}

export interface HsmSettings {
  /** A PKCS#11 module: with it set the tokens are someone else's, used as they are. */
  library: string | undefined;
  softhsmDir: string;
  /** SoftHSM's SO PIN: only provisioning creates tokens with it. */
  soPin: string;
  tokens: Record<Exclude<TokenRole, 'root'>, TokenSettings> & { root?: TokenSettings };
}

/**
 * Where our own CA signs an enrollment's certificate (CA_ISSUANCE):
 * - `queue` (default): on `pki-hsm`, the queue only hosts holding the CA token poll; the workflow waits
 *   for that host (a remote activity), so `pki` workers never touch a CA key.
 * - `local`: the process that runs the workflows holds the CA token too (one host runs both queues:
 *   `npm run dev`, or `npm run worker` with both queues) and signs as a local activity, in the same
 *   workflow task as the other steps. Workers started with it refuse to start without the CA token.
 */
export type CaIssuance = 'queue' | 'local';

/** Process settings from the environment (twelve-factor); the PKI itself is in config/pki.json. */
export interface RuntimeSettings {
  /** Postgres URL; unset means an embedded PGlite database under .data/ (single-process dev only). */
  databaseUrl: string | undefined;
  /**
   * The schema owner's URL (DATABASE_MIGRATION_URL): migrations run with it and grant the
   * application role of DATABASE_URL (db/roles.ts). Unset in development: DATABASE_URL does both.
   */
  databaseMigrationUrl: string | undefined;
  /** The role the migrator grants to (DATABASE_APP_ROLE); default: the user named in DATABASE_URL. */
  databaseAppRole: string | undefined;
  pgliteDir: string;
  temporalAddress: string;
  temporalNamespace: string;
  /** TLS to the Temporal frontend (a cluster with mTLS): PEM files, and the name to check. */
  temporalTls?: { certFile?: string; keyFile?: string; caFile?: string; serverName?: string };
  hsm: HsmSettings;
  api: { host: string; port: number };
  /**
   * The HTTPS listener of operators and integrations (operator API, MDM webhooks, codec server; SCEP
   * too). Its certificate and key are files: OPERATOR_TLS_CERT / OPERATOR_TLS_KEY, or those that
   * provisioning made under <PKI_DATA_DIR>/tls for OPERATOR_TLS_HOSTNAMES.
   */
  operator: { host: string; port: number; certFile: string; keyFile: string; hostnames: string[] };
  /** Base URL devices and relying parties reach the API at (CRL distribution point, OCSP). */
  publicBaseUrl: string;
  /** API and workers must agree: the API writes it into each enrollment's policy. */
  caIssuance: CaIssuance;
}

export function runtimeSettings(env: NodeJS.ProcessEnv = process.env): RuntimeSettings {
  const dataDir = env.PKI_DATA_DIR ?? join(PROJECT_ROOT, '.data');
  return {
    databaseUrl: env.DATABASE_URL || undefined,
    databaseMigrationUrl: env.DATABASE_MIGRATION_URL || undefined,
    databaseAppRole:
      env.DATABASE_APP_ROLE ||
      (env.DATABASE_MIGRATION_URL && env.DATABASE_URL
        ? decodeURIComponent(new URL(env.DATABASE_URL).username) || undefined
        : undefined),
    pgliteDir: join(dataDir, 'pglite'),
    temporalAddress: env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233',
    temporalNamespace: env.TEMPORAL_NAMESPACE ?? 'default',
    ...(env.TEMPORAL_TLS_CERT || env.TEMPORAL_TLS_CA || env.TEMPORAL_TLS_SERVER_NAME
      ? {
          temporalTls: {
            ...(env.TEMPORAL_TLS_CERT ? { certFile: env.TEMPORAL_TLS_CERT } : {}),
            ...(env.TEMPORAL_TLS_KEY ? { keyFile: env.TEMPORAL_TLS_KEY } : {}),
            ...(env.TEMPORAL_TLS_CA ? { caFile: env.TEMPORAL_TLS_CA } : {}),
            ...(env.TEMPORAL_TLS_SERVER_NAME ? { serverName: env.TEMPORAL_TLS_SERVER_NAME } : {}),
          },
        }
      : {}),
    hsm: {
      library: env.SOFTHSM2_LIB ?? env.PKCS11_LIBRARY,
      soPin: env.HSM_SO_PIN ?? '5678',
      softhsmDir: env.SOFTHSM_DIR ?? join(dataDir, 'softhsm'),
      tokens: {
        ra: token(env, 'RA', 'device-pki-ra'),
        ca: token(env, 'CA', 'device-pki-ca'),
        data: token(env, 'DATA', 'device-pki-data'),
        ...(env.HSM_ROOT_TOKEN_LABEL ? { root: token(env, 'ROOT', env.HSM_ROOT_TOKEN_LABEL) } : {}),
      },
    },
    api: { host: env.API_HOST ?? '127.0.0.1', port: Number(env.API_PORT ?? 8080) },
    operator: {
      host: env.OPERATOR_HOST ?? env.API_HOST ?? '127.0.0.1',
      port: Number(env.OPERATOR_PORT ?? 8443),
      certFile: env.OPERATOR_TLS_CERT ?? join(dataDir, 'tls', 'operator.crt'),
      keyFile: env.OPERATOR_TLS_KEY ?? join(dataDir, 'tls', 'operator.key'),
      hostnames: (env.OPERATOR_TLS_HOSTNAMES ?? '127.0.0.1,localhost')
        .split(',')
        .map((h) => h.trim())
        .filter(Boolean),
    },
    publicBaseUrl: (
      env.PKI_PUBLIC_URL || `http://${env.API_HOST ?? '127.0.0.1'}:${env.API_PORT ?? 8080}`
    ).replace(/\/+$/, ''),
    caIssuance: caIssuance(env.CA_ISSUANCE),
  };
}

function caIssuance(value: string | undefined): CaIssuance {
  if (value === undefined || value === '' || value === 'queue') return 'queue';
  if (value === 'local') return 'local';
  throw new Error(`CA_ISSUANCE must be "queue" or "local", not "${value}"`);
}

/** HSM_<ROLE>_TOKEN_LABEL and HSM_<ROLE>_PIN; the development PIN when unset (production refuses it). */
function token(env: NodeJS.ProcessEnv, role: string, defaultLabel: string): TokenSettings {
  return {
    label: env[`HSM_${role}_TOKEN_LABEL`] || defaultLabel,
    pin: env[`HSM_${role}_PIN`] || '1234',
    pinVariable: `HSM_${role}_PIN`,
  };
}
