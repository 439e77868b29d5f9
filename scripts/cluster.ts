/**
 * `npm run cluster -- up|down|status`: the production shape as plain OS processes on this machine.
 *
 *   npm run cluster -- up       build what is missing, start everything, return when all are ready
 *   npm run cluster -- status   every process (role, pid, alive, port, log), the SCEP URLs, the Web UI
 *   npm run cluster -- down     stop everything, APIs first, Temporal last (SIGTERM; SIGKILL after a timeout)
 *
 * What runs (scripts/cluster/topology.ts; same commands and variables as docker-compose.yml):
 *   temporal          Temporal server v1.29.1 on the local Postgres (databases temporal_cluster and
 *                     temporal_cluster_visibility, 16 history shards), frontend 127.0.0.1:7333
 *   temporal-ui       its Web UI, http://127.0.0.1:8333
 *   (provisioning)    database pki_cluster, `npm run hsm:init` and `npm run db:migrate` against it
 *   worker-pki-hsm-1  npm run worker -- --queues pki-hsm
 *   worker-pki-1, -2  npm run worker -- --queues pki
 *   api-1, api-2      npm run api on 127.0.0.1:8081 and :8082 (SCEP at /scep and /scep/<profile>)
 *
 * State lives in `.data/cluster/`: run/ (pid files), logs/ (one per process, appended), temporal/ and ui/
 * (generated configs), softhsm/ (the token), pki/, secrets.json (HSM PINs and the operator token, generated
 * once, mode 0600). `up` twice starts nothing new; `down` with nothing running is fine. The binaries are
 * found or built into .tools/ (first time: ~2-4 min for the server, ~1 min for the UI; see
 * scripts/temporal-server.ts).
 *
 * Environment: DATABASE_URL or CLUSTER_POSTGRES_URL (the Postgres server to use; its database name is
 * ignored; default postgres://postgres@127.0.0.1:5432/postgres), CLUSTER_STATE_DIR, CLUSTER_PORT_OFFSET
 * (shift every port), CLUSTER_HISTORY_SHARDS (before the first `up` only), CLUSTER_PKI_DATABASE,
 * CLUSTER_TEMPORAL_DATABASE, CLUSTER_TEMPORAL_VISIBILITY_DATABASE, CLUSTER_PUBLIC_URL, CLUSTER_UI=0 (no Web
 * UI), CLUSTER_TEMPORAL_LOG_LEVEL, CLUSTER_TEMPORAL_DYNAMIC_CONFIG (JSON object, key → value), PKI_CONFIG
 * (profiles file); TEMPORAL_LOG_LEVEL, SCEP_RATE_PER_MINUTE and SCEP_RATE_BURST pass through to the product.
 *
 * Enroll against either replica, e.g.:
 *   openssl genrsa -traditional -out key.pem 2048
 *   scepclient -server-url http://127.0.0.1:8082/scep -challenge dev-challenge \
 *     -private-key key.pem -certificate cert.pem -cn laptop-001
 *
 * Tests drive the same functions (scripts/cluster/control.ts): kill -9 a process, restart it, restart the
 * Temporal server.
 */
import { clusterDown, clusterStatus, clusterUp, formatStatus } from './cluster/control.js';
import { clusterSettings } from './cluster/topology.js';

const USAGE = 'usage: npm run cluster -- up|down|status';
const command = process.argv[2];
const settings = clusterSettings();
const log = (line: string) => process.stderr.write(`[cluster] ${line}\n`);

try {
  switch (command) {
    case 'up': {
      const report = await clusterUp(settings, log);
      log(
        `up in ${report.seconds.toFixed(1)} s (${Object.entries(report.phases)
          .map(([k, v]) => `${k} ${v.toFixed(1)} s`)
          .join('; ')})`,
      );
      console.log(formatStatus(await clusterStatus(settings)));
      break;
    }
    case 'down':
      await clusterDown(settings, log);
      break;
    case 'status': {
      const status = await clusterStatus(settings);
      console.log(formatStatus(status));
      // Non-zero when something expected is not running: scripts can check the cluster with it.
      if (status.processes.some((p) => !p.alive)) process.exitCode = 3;
      break;
    }
    default:
      console.error(USAGE);
      process.exitCode = 2;
  }
} catch (err) {
  console.error(`[cluster] ${err instanceof Error ? err.message : String(err)}`);
  if (command === 'up')
    console.error('[cluster] what did start keeps running: see `status`, stop it with `down`');
  process.exitCode = 1;
}
