import { randomUUID } from 'node:crypto';
import type { Client, Connection } from '@temporalio/client';
import Long from 'long';
import { inject } from 'vitest';
import type { KeyInventoryRecorder } from '../../activities/keys/recorder.js';
import type { ProfileRa } from '../../api/ra.js';
import { loadPkiConfig } from '../../config/load.js';
import type { PkiConfig } from '../../config/profile-types.js';
import { type CaIssuance, runtimeSettings } from '../../config/runtime.js';
import { type DatabaseHandle, openDatabase } from '../../db/client.js';
import { ensurePkiHierarchy } from '../../hsm/provision.js';
import type { TokenSet } from '../../hsm/token-set.js';
import { startInProcess } from '../../runtime/in-process.js';
import {
  connectTemporal,
  ensureUpstreamChains,
  openTokens,
  payloadCodecOf,
  TOKENS_OF,
} from '../../runtime/services.js';
import { ensureSearchAttributes } from '../../scripts/temporal-dev-server.js';
import type { QueueName } from '../../worker/workers.js';

export interface Pipeline {
  /** The public listener: SCEP, CRL, OCSP (what devices and relying parties reach). */
  url: string;
  /** The operator listener (HTTPS, operator token or certificate): operator API, MDM webhooks, codec. */
  operatorUrl: string;
  temporalAddress: string;
  config: PkiConfig;
  client: Client;
  db: DatabaseHandle;
  /** Every token, as a ceremony opens them (the pipeline's parts each use only their own). */
  tokens: TokenSet;
  ras: Map<string, ProfileRa>;
  /** The key inventory recorder of the pipeline's tokens (refresh: list them now; flush: write signature counts). */
  keyInventory: KeyInventoryRecorder;
  /** Starts a worker for a queue that is not running (e.g. bring the HSM host back). */
  startQueue(queue: QueueName): Promise<void>;
  /** Stops the worker of a queue, letting its in-flight work finish. */
  stopQueue(queue: QueueName): Promise<void>;
  stop(): Promise<void>;
}

/**
 * The product in this test process: API on a free port and workers, against the run's Temporal,
 * Postgres and SoftHSM token. One per test file (the HSM login is per process).
 */
export interface PipelineOptions {
  queues?: QueueName[];
  enrollmentWaitMs?: number;
  /** Adjust the test configuration (add profiles pointing at fake servers, shorten timings...). */
  configure?: (config: PkiConfig) => void;
  /** Another Temporal server than the run's shared one (e.g. one a test kills and restarts). */
  temporalAddress?: string;
  /** Keep a namespace across pipelines (a restarted pipeline must find its workflows again). */
  namespace?: string;
  /** A profiles file of the test's own (worker processes it starts read the same file). */
  configFile?: string;
  /** Where our CA signs (CA_ISSUANCE); default `queue`, the production split. */
  caIssuance?: CaIssuance;
}

export async function startPipeline(opts: PipelineOptions = {}): Promise<Pipeline> {
  const stack = inject('stack');
  Object.assign(process.env, stack.env);
  if (opts.configFile) process.env.PKI_CONFIG = opts.configFile;
  const settings = {
    ...runtimeSettings(),
    temporalAddress: opts.temporalAddress ?? stack.temporalAddress,
    databaseUrl: stack.databaseUrl,
    // Test files run in parallel: each gets its own namespace, so no worker serves another file's tasks.
    temporalNamespace: opts.namespace ?? `test-${randomUUID().slice(0, 8)}`,
    api: { host: '127.0.0.1', port: 0 },
    operator: { ...runtimeSettings().operator, port: 0 },
    caIssuance: opts.caIssuance ?? 'queue',
  };
  const config = loadPkiConfig();
  if (opts.enrollmentWaitMs !== undefined)
    for (const p of config.profiles) p.enrollmentWaitMs = opts.enrollmentWaitMs;
  opts.configure?.(config);

  const tokens = await openTokens(settings, TOKENS_OF.ceremony);
  // Profiles a test added get their CA and RA certificate (idempotent for the others).
  await ensurePkiHierarchy(tokens, config);
  await ensureUpstreamChains(tokens.get('ra'), config);
  const codec = payloadCodecOf(tokens.get('data'));
  const db = await openDatabase({ url: settings.databaseUrl, pgliteDir: '', maxConnections: 4 });
  const client = await connectTemporal(settings, codec);
  await registerNamespace(client, settings.temporalNamespace);
  const pipeline = await startInProcess({
    settings,
    config,
    tokens,
    codec,
    database: db,
    client,
    queues: opts.queues,
    useBundle: false,
  });

  return {
    url: pipeline.api.url,
    operatorUrl: pipeline.api.operatorUrl!,
    temporalAddress: settings.temporalAddress,
    config,
    client,
    db,
    tokens,
    ras: pipeline.ras,
    keyInventory: pipeline.keyInventory,
    startQueue: pipeline.startQueue,
    stopQueue: pipeline.stopQueue,
    async stop() {
      await pipeline.stop();
      await client.connection.close();
      await db.close();
      await tokens.close();
    },
  };
}

async function registerNamespace(client: Client, namespace: string): Promise<void> {
  try {
    await client.connection.workflowService.registerNamespace({
      namespace,
      workflowExecutionRetentionPeriod: { seconds: Long.fromNumber(24 * 3600) },
    });
  } catch (err) {
    // A restarted pipeline reuses its namespace.
    if (!/already exists/i.test(String((err as Error).message))) throw err;
  }
  // A new namespace takes a moment to be served everywhere in the server.
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      await ensureSearchAttributes(client.connection as Connection, namespace, () => {});
      await client.workflow.count();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}
