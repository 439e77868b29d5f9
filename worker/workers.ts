import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Client } from '@temporalio/client';
import type { PayloadCodec } from '@temporalio/common';
import {
  DefaultLogger,
  type LogLevel,
  NativeConnection,
  type NativeConnectionOptions,
  Runtime,
  Worker,
} from '@temporalio/worker';
import { latestCrl } from '../activities/ca/local-hsm/crl.js';
import { createHsmActivities, createPkiActivities } from '../activities/index.js';
import { OutboxDispatcher } from '../activities/notify/dispatcher.js';
import { PROJECT_ROOT } from '../config/load.js';
import type { PkiConfig } from '../config/profile-types.js';
import type { CaIssuance } from '../config/runtime.js';
import type { Database } from '../db/client.js';
import { FIELD_ENCRYPTION_KEY_LABEL } from '../hsm/provision.js';
import type { TokenSet } from '../hsm/token-set.js';
import { temporalLogger } from '../runtime/log.js';
import { ensureSchedules } from '../runtime/schedules.js';
import { ensureServiceCredentialWorkflows } from '../runtime/service-credentials.js';
import { HSM_TASK_QUEUE, TASK_QUEUE } from '../workflows/definitions.js';

export type QueueName = typeof TASK_QUEUE | typeof HSM_TASK_QUEUE;
export const QUEUES: readonly QueueName[] = [TASK_QUEUE, HSM_TASK_QUEUE];

/** Built by `npm run build`; production workers load it instead of bundling at start. */
export const WORKFLOW_BUNDLE = join(PROJECT_ROOT, 'dist', 'workflow-bundle.js');

export interface WorkerOptions {
  queues: readonly QueueName[];
  /** The Temporal frontend (runtime/services.ts temporalConnectionOptions: address, TLS). */
  connection: NativeConnectionOptions;
  namespace: string;
  config: PkiConfig;
  /** The tokens of this process: `pki` needs the data token, `pki-hsm` the CA token too. */
  tokens: TokenSet;
  /** Encrypts every payload the workers hand to Temporal (runtime/payload-codec.ts). */
  codec: PayloadCodec;
  /** Both queues record what they do. */
  db: Database;
  /** Needed by the `pki` queue only (hand-offs to lifecycle workflows). */
  client?: Client;
  useBundle?: boolean;
  /** `local`: the `pki` worker signs enrollments' certificates itself, with this process's CA token. */
  caIssuance?: CaIssuance;
}

/**
 * The workers for the requested queues. `pki` runs the workflows and the MDM/storage/hand-off
 * activities, and delivers the event outbox; `pki-hsm` runs only the activities that need a CA key,
 * so only HSM hosts poll it.
 */
export async function createWorkers(
  opts: WorkerOptions,
): Promise<{ workers: Worker[]; connection: NativeConnection; dispatcher?: OutboxDispatcher }> {
  installWorkerRuntime();
  const connection = await NativeConnection.connect(opts.connection);
  const common = {
    connection,
    namespace: opts.namespace,
    dataConverter: { payloadCodecs: [opts.codec] as PayloadCodec[] },
    // In-flight activities get time to finish on SIGTERM; Temporal retries what does not.
    shutdownGraceTime: '20 seconds',
  } as const;
  const workers: Worker[] = [];
  let dispatcher: OutboxDispatcher | undefined;
  if (opts.queues.includes(TASK_QUEUE)) {
    if (!opts.client) throw new Error('the pki queue needs a Temporal client');
    // CRL refresh and Intune revocation sync: created once, idempotent at every pki worker start.
    await ensureSchedules(opts.client, opts.config);
    // Service credentials (Intune client certificates): one long-lived workflow each.
    await ensureServiceCredentialWorkflows(opts.client, opts.config);
    const sealer = await opts.tokens.get('data').sealer(FIELD_ENCRYPTION_KEY_LABEL);
    const signsLocally = opts.caIssuance === 'local';
    // Enrollments started with CA_ISSUANCE=local sign here: a worker without the key must not take them.
    if (signsLocally && !opts.tokens.has('ca'))
      throw new Error(
        'CA_ISSUANCE=local: the pki worker signs certificates itself and needs the CA token; run it with both queues (--queues pki,pki-hsm) or unset CA_ISSUANCE',
      );
    const bundle = workflowBundlePath(opts.useBundle);
    workers.push(
      await Worker.create({
        ...common,
        taskQueue: TASK_QUEUE,
        ...(bundle
          ? { workflowBundle: { codePath: bundle } }
          : { workflowsPath: fileURLToPath(new URL('../workflows/index.ts', import.meta.url)) }),
        activities: createPkiActivities({
          config: opts.config,
          db: opts.db,
          temporal: opts.client,
          sealer,
          serviceKeys: opts.tokens.get('data'),
          ...(signsLocally ? { caToken: opts.tokens.get('ca') } : {}),
        }),
        maxCachedWorkflows: 1000,
        // Non-determinism is left to block the task (Temporal's default) rather than fail it: a device's
        // months-long lifecycle must survive a bad deploy and resume once a fixed worker is out.
      }),
    );
    // Webhooks and e-mail leave from here, never from a workflow: any number of pki workers share it.
    dispatcher = new OutboxDispatcher({ db: opts.db, config: opts.config });
  }
  if (opts.queues.includes(HSM_TASK_QUEUE)) {
    const activities = createHsmActivities({
      config: opts.config,
      token: opts.tokens.get('ca'),
      db: opts.db,
    });
    await prepareCaHost(opts.config, opts.db, activities);
    workers.push(await Worker.create({ ...common, taskQueue: HSM_TASK_QUEUE, activities }));
  }
  return { workers, connection, ...(dispatcher ? { dispatcher } : {}) };
}

/**
 * The workflow code a `pki` worker runs. Production runs the bundle that was built and reviewed
 * (`npm run build`); `WORKFLOW_BUNDLE` names another release's bundle, so a rolling deploy can start
 * the new release's workers beside the old ones (README "Deploying a workflow change"). Anywhere else
 * the sources, so a stale dist/ can never run old workflow code beside new activities.
 */
function workflowBundlePath(useBundle: boolean | undefined): string | undefined {
  const path =
    process.env.WORKFLOW_BUNDLE ||
    ((useBundle ?? process.env.NODE_ENV === 'production') ? WORKFLOW_BUNDLE : undefined);
  if (path && !existsSync(path))
    throw new Error(
      `${path} is missing: run npm run build (NODE_ENV=production uses the prebuilt bundle; WORKFLOW_BUNDLE names another)`,
    );
  return path;
}

/**
 * Before a CA host polls: every CA it signs for has a CRL (the API serves CRLs, it never signs one)
 * and a certified OCSP responder (when the API registered one). The hourly refresh keeps both fresh.
 */
async function prepareCaHost(
  config: PkiConfig,
  db: Database,
  ca: ReturnType<typeof createHsmActivities>,
): Promise<void> {
  for (const profile of config.profiles) {
    if (profile.ca.type !== 'local-hsm') continue;
    if (!(await latestCrl(db, profile.ca.keyLabel))) await ca.publishCrl({ issuingCa: profile.ca.keyLabel });
  }
  await ca.certifyOcspResponders({});
}

let runtimeInstalled = false;

/**
 * Temporal's runtime, installed once per process (Runtime.install can run only once): its logs
 * (the SDK's, workflow and activity context loggers', and Core's native ones, forwarded) become
 * JSON lines of the product's logger at TEMPORAL_LOG_LEVEL (TRACE, DEBUG, INFO, WARN, ERROR; default
 * INFO); with TEMPORAL_METRICS_PORT set, Core serves the SDK's worker metrics (temporal_* : task
 * latencies, slots, polls, sticky cache) for Prometheus at http://TEMPORAL_METRICS_HOST:PORT/metrics.
 */
function installWorkerRuntime(env: NodeJS.ProcessEnv = process.env): void {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  const level = (env.TEMPORAL_LOG_LEVEL ?? 'INFO').toUpperCase() as LogLevel;
  const metricsPort = env.TEMPORAL_METRICS_PORT;
  const sink = temporalLogger();
  Runtime.install({
    // DefaultLogger filters by TEMPORAL_LOG_LEVEL; pino writes what passes (meta: workflowId, runId...).
    logger: new DefaultLogger(level, (entry) => sink.log(entry.level, entry.message, entry.meta)),
    telemetryOptions: {
      // Core's own lines (Rust) through the same logger instead of straight to stderr.
      logging: { forward: {}, filter: { core: 'WARN', other: 'ERROR' } },
      ...(metricsPort
        ? {
            metrics: {
              prometheus: {
                bindAddress: `${env.TEMPORAL_METRICS_HOST ?? '127.0.0.1'}:${metricsPort}`,
                // Prometheus conventions: counters end in _total, durations in seconds.
                countersTotalSuffix: true,
                useSecondsForDurations: true,
              },
            },
          }
        : {}),
    },
  });
}
