import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Client } from '@temporalio/client';
import { DefaultLogger, type LogLevel, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { createHsmActivities, createPkiActivities } from '../activities/index.js';
import { OutboxDispatcher } from '../activities/notify/dispatcher.js';
import { PROJECT_ROOT } from '../config/load.js';
import type { PkiConfig } from '../config/profile-types.js';
import type { Database } from '../db/client.js';
import type { HsmToken } from '../hsm/token.js';
import { ensureSchedules } from '../runtime/schedules.js';
import { HSM_TASK_QUEUE, TASK_QUEUE } from '../workflows/definitions.js';

export type QueueName = typeof TASK_QUEUE | typeof HSM_TASK_QUEUE;
export const QUEUES: readonly QueueName[] = [TASK_QUEUE, HSM_TASK_QUEUE];

/** Built by `npm run build`; production workers load it instead of bundling at start. */
export const WORKFLOW_BUNDLE = join(PROJECT_ROOT, 'dist', 'workflow-bundle.js');

export interface WorkerOptions {
  queues: readonly QueueName[];
  temporalAddress: string;
  namespace: string;
  config: PkiConfig;
  token: HsmToken;
  /** Both queues record what they do. */
  db: Database;
  /** Needed by the `pki` queue only (hand-offs to lifecycle workflows). */
  client?: Client;
  useBundle?: boolean;
}

/**
 * The workers for the requested queues. `pki` runs the workflows and the MDM/storage/hand-off
 * activities, and delivers the event outbox; `pki-hsm` runs only the activities that need a CA key,
 * so only HSM hosts poll it.
 */
export async function createWorkers(
  opts: WorkerOptions,
): Promise<{ workers: Worker[]; connection: NativeConnection; dispatcher?: OutboxDispatcher }> {
  installWorkerLogging();
  const connection = await NativeConnection.connect({ address: opts.temporalAddress });
  const common = {
    connection,
    namespace: opts.namespace,
    // In-flight activities get time to finish on SIGTERM; Temporal retries what does not.
    shutdownGraceTime: '20 seconds',
  } as const;
  const workers: Worker[] = [];
  let dispatcher: OutboxDispatcher | undefined;
  if (opts.queues.includes(TASK_QUEUE)) {
    if (!opts.client) throw new Error('the pki queue needs a Temporal client');
    // CRL refresh and Intune revocation sync: created once, idempotent at every pki worker start.
    await ensureSchedules(opts.client, opts.config);
    const sealer = await opts.token.sealer('field-encryption');
    // Production runs the bundle that was built and reviewed; anywhere else the sources, so a stale
    // dist/ can never run old workflow code beside new activities.
    const useBundle = opts.useBundle ?? process.env.NODE_ENV === 'production';
    if (useBundle && !existsSync(WORKFLOW_BUNDLE))
      throw new Error(
        `${WORKFLOW_BUNDLE} is missing: run npm run build (NODE_ENV=production uses the prebuilt bundle)`,
      );
    workers.push(
      await Worker.create({
        ...common,
        taskQueue: TASK_QUEUE,
        ...(useBundle
          ? { workflowBundle: { codePath: WORKFLOW_BUNDLE } }
          : { workflowsPath: fileURLToPath(new URL('../workflows/index.ts', import.meta.url)) }),
        activities: createPkiActivities({ config: opts.config, db: opts.db, temporal: opts.client, sealer }),
        maxCachedWorkflows: 1000,
        // Non-determinism is left to block the task (Temporal's default) rather than fail it: a device's
        // months-long lifecycle must survive a bad deploy and resume once a fixed worker is out.
      }),
    );
    // Webhooks and e-mail leave from here, never from a workflow: any number of pki workers share it.
    dispatcher = new OutboxDispatcher({ db: opts.db, config: opts.config });
  }
  if (opts.queues.includes(HSM_TASK_QUEUE)) {
    workers.push(
      await Worker.create({
        ...common,
        taskQueue: HSM_TASK_QUEUE,
        activities: createHsmActivities({ config: opts.config, token: opts.token, db: opts.db }),
      }),
    );
  }
  return { workers, connection, ...(dispatcher ? { dispatcher } : {}) };
}

let loggingInstalled = false;

/** TEMPORAL_LOG_LEVEL (TRACE, DEBUG, INFO, WARN, ERROR; default INFO). Installed once per process. */
function installWorkerLogging(): void {
  if (loggingInstalled) return;
  loggingInstalled = true;
  const level = (process.env.TEMPORAL_LOG_LEVEL ?? 'INFO').toUpperCase() as LogLevel;
  Runtime.install({ logger: new DefaultLogger(level) });
}
