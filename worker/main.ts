import { parseArgs } from 'node:util';
import { startupConfig } from '../config/startup.js';
import { connectTemporal, openMigratedDatabase, openToken } from '../runtime/services.js';
import { createWorkers, QUEUES, type QueueName } from './workers.js';

/**
 * `npm run worker -- --queues pki,pki-hsm`: one process per host role. Temporal's runtime stops the
 * workers on SIGINT/SIGTERM (after the grace time); then the resources close.
 */
const { values } = parseArgs({ options: { queues: { type: 'string', default: QUEUES.join(',') } } });
const queues = values.queues.split(',').map((q) => q.trim()) as QueueName[];
const unknown = queues.filter((q) => !QUEUES.includes(q));
if (unknown.length > 0) {
  console.error(`unknown queue(s) ${unknown.join(', ')}; known: ${QUEUES.join(', ')}`);
  process.exit(2);
}

// Before anything is opened: a production start with a development setting stops here, naming it.
const { settings, config } = startupConfig('worker', { pinVariables: ['HSM_PIN'], servesOperators: false });
const token = await openToken(settings);
const db = await openMigratedDatabase(settings);
const client = queues.includes('pki') ? await connectTemporal(settings) : undefined;
const { workers, connection, dispatcher } = await createWorkers({
  queues,
  temporalAddress: settings.temporalAddress,
  namespace: settings.temporalNamespace,
  config,
  token,
  db: db.db,
  client,
});
console.log(`[worker] polling ${queues.join(', ')} on ${settings.temporalAddress}`);
dispatcher?.start();
try {
  await Promise.all(workers.map((w) => w.run()));
} finally {
  await dispatcher?.stop();
  await connection.close();
  await client?.connection.close();
  await db.close();
  await token.close();
  console.log('[worker] stopped');
}
