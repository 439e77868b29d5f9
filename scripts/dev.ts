import { EnrollmentGateway } from '../api/enrollment-gateway.js';
import { loadRegistrationAuthorities } from '../api/ra.js';
import { startApiServer } from '../api/server.js';
import { loadPkiConfig, PROJECT_ROOT } from '../config/load.js';
import { runtimeSettings } from '../config/runtime.js';
import { connectTemporal, openMigratedDatabase, openProvisionedToken } from '../runtime/services.js';
import { createWorkers, QUEUES } from '../worker/workers.js';
import { startTemporalDevServer } from './temporal-dev-server.js';

/**
 * `npm run dev`: the whole pipeline on one machine, in one process beside the Temporal dev server:
 * SoftHSM token with the CA hierarchy, database and migrations, both worker queues, the SCEP API.
 */
const log = (line: string) => console.log(`[dev] ${line}`);
const settings = runtimeSettings();
const config = loadPkiConfig();

const temporal = await startTemporalDevServer({ projectRoot: PROJECT_ROOT, log });
settings.temporalAddress = temporal.address;
log(`Temporal at ${temporal.address}`);

const token = await openProvisionedToken(settings, config);
log(`HSM token "${settings.hsm.tokenLabel}" ready (${settings.hsm.library ?? settings.hsm.softhsmDir})`);
const database = await openMigratedDatabase(settings);
log(`database ready (${database.kind === 'postgres' ? 'Postgres from DATABASE_URL' : `PGlite in ${settings.pgliteDir}`})`);
const client = await connectTemporal(settings);

const { workers, connection } = await createWorkers({
  queues: QUEUES,
  temporalAddress: settings.temporalAddress,
  namespace: settings.temporalNamespace,
  config,
  token,
  db: database.db,
  client,
});
const running = Promise.all(workers.map((w) => w.run()));
const api = await startApiServer(
  {
    config,
    ras: await loadRegistrationAuthorities(token, config),
    gateway: new EnrollmentGateway(client),
    maxBodyBytes: 64 * 1024,
  },
  settings.api,
);

const profile = config.profiles[0]!;
console.log(`
  SCEP URL        ${api.url}/scep   (profile "${profile.name}"; also ${api.url}/cgi-bin/pkiclient.exe)
  Dev challenge   ${profile.mdm.challenge}
  Temporal Web UI ${temporal.uiUrl ?? '(external cluster, see its own UI)'}
  Enroll a device:
    openssl genrsa -traditional -out key.pem 2048
    scepclient -server-url ${api.url}/scep -challenge ${profile.mdm.challenge} \\
      -private-key key.pem -certificate cert.pem -cn laptop-001
  Ctrl-C stops everything.
`);

let stopping = false;
async function stop() {
  if (stopping) return;
  stopping = true;
  log('stopping');
  await api.close();
  for (const worker of workers) if (worker.getState() === 'RUNNING') worker.shutdown();
  await running.catch(() => {});
  await connection.close();
  await client.connection.close();
  await database.close();
  await token.close();
  await temporal.stop();
  process.exit(0);
}
// Temporal's runtime also reacts to these signals by shutting the workers down; stop() waits for that.
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
await running.catch((err) => {
  console.error(err);
  void stop();
});
