import { parseArgs } from 'node:util';
import { startKeyInventory } from '../activities/keys/recorder.js';
import type { TokenRole } from '../config/runtime.js';
import { startupConfig } from '../config/startup.js';
import { componentLogger } from '../runtime/log.js';
import { dependencyChecks, Readiness, serveHealth } from '../runtime/readiness.js';
import {
  connectTemporal,
  openMigratedDatabase,
  openTokens,
  payloadCodecOf,
  TOKENS_OF,
  temporalConnectionOptions,
} from '../runtime/services.js';
import { closeInStages } from '../runtime/shutdown.js';
import { createWorkers, QUEUES, type QueueName } from './workers.js';

/**
 * `npm run worker -- --queues pki,pki-hsm`: one process per host role. It opens only the HSM tokens
 * of its queues (`pki`: data; `pki-hsm`: CA and data). Temporal's runtime stops the workers on
 * SIGINT/SIGTERM (after the grace time); then the resources close.
 */
const { values } = parseArgs({ options: { queues: { type: 'string', default: QUEUES.join(',') } } });
const queues = values.queues.split(',').map((q) => q.trim()) as QueueName[];
const unknown = queues.filter((q) => !QUEUES.includes(q));
if (unknown.length > 0) {
  console.error(`unknown queue(s) ${unknown.join(', ')}; known: ${QUEUES.join(', ')}`);
  process.exit(2);
}
const log = componentLogger('worker');
const roles = [...new Set(queues.flatMap((q): readonly TokenRole[] => TOKENS_OF[q]))];

// Before anything is opened: a production start with a development setting stops here, naming it.
const { settings, config } = startupConfig('worker', {
  pinVariables: roles.map((role) => `HSM_${role.toUpperCase()}_PIN`),
  servesOperators: false,
});
const tokens = await openTokens(settings, roles);
const codec = payloadCodecOf(tokens.get('data'));
const db = await openMigratedDatabase(settings);
const client = queues.includes('pki') ? await connectTemporal(settings, codec) : undefined;
// This process's tokens in the key inventory (only a pki-hsm worker can list the CA token).
const keyInventory = await startKeyInventory({ db: db.db, tokens, config });
const { workers, connection, dispatcher } = await createWorkers({
  queues,
  connection: temporalConnectionOptions(settings),
  namespace: settings.temporalNamespace,
  config,
  tokens,
  codec,
  db: db.db,
  client,
  caIssuance: settings.caIssuance,
});
// HEALTH_PORT: /healthz and /readyz (Temporal, database, tokens, and every worker of this process RUNNING).
const healthPort = process.env.HEALTH_PORT;
const health = healthPort
  ? await serveHealth(
      { host: process.env.HEALTH_HOST ?? '127.0.0.1', port: Number(healthPort) },
      new Readiness([
        ...dependencyChecks({ temporal: connection, db: db.db, tokens }),
        {
          name: 'workers',
          check: async () => {
            const states = workers.map((w) => w.getState());
            if (states.some((state) => state !== 'RUNNING'))
              throw new Error(`worker states: ${states.join(', ')}`);
          },
        },
      ]),
    )
  : undefined;
// The message keeps the words supervisors and tests wait for ("[worker] polling").
log.info(
  { queues, temporalAddress: settings.temporalAddress, tokens: roles, healthPort: healthPort ?? null },
  `[worker] polling ${queues.join(', ')} on ${settings.temporalAddress} (tokens: ${roles.join(', ')})`,
);
dispatcher?.start();
try {
  await Promise.all(workers.map((w) => w.run()));
} finally {
  // An outbox delivery in flight ends within its own timeouts (a webhook's events.timeoutMs, e-mail's
  // 40 s at most); a stage still open after a minute ends the process with status 1, named in the log.
  const closeBoundMs = Math.max(60_000, config.events.timeoutMs * 2 + 15_000);
  // The workers have finished or handed back their tasks; what is left holds no work of Temporal's.
  await closeInStages(
    [
      { name: 'health port', close: async () => health?.close() },
      { name: 'event outbox', close: async () => dispatcher?.stop() },
      { name: 'key inventory', close: () => keyInventory.stop() },
      { name: 'Temporal worker connection', close: () => connection.close() },
      { name: 'Temporal client', close: async () => client?.connection.close() },
      { name: 'database', close: () => db.close() },
      { name: 'HSM tokens', close: () => tokens.close() },
    ],
    { log, boundMs: closeBoundMs },
  );
  log.info('[worker] stopped');
}
