/**
 * The floor workflow's worker, as its own process so its CPU can be measured apart:
 * `tsx bench/floor/worker.ts --address 127.0.0.1:7233 [--namespace default] [--task-queue bench-floor]`.
 * Prints "[floor-worker] polling" once ready; SIGINT/SIGTERM stop it.
 */
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { floorActivities } from './activities.js';
import { FLOOR_TASK_QUEUE } from './definitions.js';

const { values } = parseArgs({
  options: {
    address: { type: 'string' },
    namespace: { type: 'string', default: 'default' },
    'task-queue': { type: 'string', default: FLOOR_TASK_QUEUE },
  },
});
if (!values.address) {
  console.error('--address host:port is required');
  process.exit(2);
}
Runtime.install({ logger: new DefaultLogger('WARN') });
const connection = await NativeConnection.connect({ address: values.address });
const worker = await Worker.create({
  connection,
  namespace: values.namespace,
  taskQueue: values['task-queue'],
  workflowsPath: fileURLToPath(new URL('./workflow.ts', import.meta.url)),
  activities: floorActivities,
  // The same cache size as the product's pki worker.
  maxCachedWorkflows: 1000,
});
console.log(`[floor-worker] polling ${values['task-queue']} on ${values.address}`);
try {
  await worker.run();
} finally {
  await connection.close();
}
