import { join } from 'node:path';
import { PROJECT_ROOT } from './load.js';

/** Process settings from the environment (twelve-factor); the PKI itself is in config/pki.json. */
export interface RuntimeSettings {
  /** Postgres URL; unset means an embedded PGlite database under .data/ (single-process dev only). */
  databaseUrl: string | undefined;
  pgliteDir: string;
  temporalAddress: string;
  temporalNamespace: string;
  hsm: { library: string | undefined; tokenLabel: string; pin: string; soPin: string; softhsmDir: string };
  api: { host: string; port: number };
  /** Base URL devices and relying parties reach the API at (CRL distribution point, OCSP). */
  publicBaseUrl: string;
}

export function runtimeSettings(env: NodeJS.ProcessEnv = process.env): RuntimeSettings {
  const dataDir = env.PKI_DATA_DIR ?? join(PROJECT_ROOT, '.data');
  return {
    databaseUrl: env.DATABASE_URL || undefined,
    pgliteDir: join(dataDir, 'pglite'),
    temporalAddress: env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233',
    temporalNamespace: env.TEMPORAL_NAMESPACE ?? 'default',
    hsm: {
      library: env.SOFTHSM2_LIB ?? env.PKCS11_LIBRARY,
      tokenLabel: env.HSM_TOKEN_LABEL ?? 'device-pki',
      pin: env.HSM_PIN ?? '1234',
      soPin: env.HSM_SO_PIN ?? '5678',
      softhsmDir: env.SOFTHSM_DIR ?? join(dataDir, 'softhsm'),
    },
    api: { host: env.API_HOST ?? '127.0.0.1', port: Number(env.API_PORT ?? 8080) },
    publicBaseUrl: (
      env.PKI_PUBLIC_URL || `http://${env.API_HOST ?? '127.0.0.1'}:${env.API_PORT ?? 8080}`
    ).replace(/\/+$/, ''),
  };
}
