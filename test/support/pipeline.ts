import { randomUUID } from 'node:crypto';
import Long from 'long';
import type { Client, Connection } from '@temporalio/client';
import type { Worker } from '@temporalio/worker';
import { inject } from 'vitest';
import { EnrollmentGateway } from '../../api/enrollment-gateway.js';
import { loadRegistrationAuthorities, type ProfileRa } from '../../api/ra.js';
import { type RunningServer, startApiServer } from '../../api/server.js';
import { loadPkiConfig } from '../../config/load.js';
import type { PkiConfig } from '../../config/profile-types.js';
import { runtimeSettings } from '../../config/runtime.js';
import { type DatabaseHandle, openDatabase } from '../../db/client.js';
import type { HsmToken } from '../../hsm/token.js';
import { connectTemporal, openToken } from '../../runtime/services.js';
import { ensureSearchAttributes } from '../../scripts/temporal-dev-server.js';
import { createWorkers, QUEUES, type QueueName } from '../../worker/workers.js';

export interface Pipeline {
  url: string;
  config: PkiConfig;
  client: Client;
  db: DatabaseHandle;
  token: HsmToken;
  ras: Map<string, ProfileRa>;
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
export async function startPipeline(opts: { queues?: QueueName[]; enrollmentWaitMs?: number } = {}): Promise<Pipeline> {
  const stack = inject('stack');
  Object.assign(process.env, stack.env);
  const settings = {
    ...runtimeSettings(),
    temporalAddress: stack.temporalAddress,
    databaseUrl: stack.databaseUrl,
    // Test files run in parallel: each gets its own namespace, so no worker serves another file's tasks.
    temporalNamespace: `test-${randomUUID().slice(0, 8)}`,
  };
  const config = loadPkiConfig();
  if (opts.enrollmentWaitMs !== undefined) for (const p of config.profiles) p.enrollmentWaitMs = opts.enrollmentWaitMs;

  const token = await openToken(settings);
  const db = await openDatabase({ url: settings.databaseUrl, pgliteDir: '', maxConnections: 4 });
  const client = await connectTemporal(settings);
  await registerNamespace(client, settings.temporalNamespace);
  const running = new Map<QueueName, { worker: Worker; done: Promise<void> }>();

  const startQueue = async (queue: QueueName) => {
    if (running.has(queue)) return;
    const { workers } = await createWorkers({
      queues: [queue],
      temporalAddress: settings.temporalAddress,
      namespace: settings.temporalNamespace,
      config,
      token,
      db: db.db,
      client,
      useBundle: false,
    });
    const worker = workers[0]!;
    running.set(queue, { worker, done: worker.run() });
  };
  const stopQueue = async (queue: QueueName) => {
    const entry = running.get(queue);
    if (!entry) return;
    running.delete(queue);
    entry.worker.shutdown();
    await entry.done;
  };
  for (const queue of opts.queues ?? QUEUES) await startQueue(queue);

  const ras = await loadRegistrationAuthorities(token, config);
  const api: RunningServer = await startApiServer(
    { config, ras, gateway: new EnrollmentGateway(client), maxBodyBytes: 64 * 1024 },
    { host: '127.0.0.1', port: 0 },
  );

  return {
    url: api.url,
    config,
    client,
    db,
    token,
    ras,
    startQueue,
    stopQueue,
    async stop() {
      await api.close();
      for (const queue of [...running.keys()]) await stopQueue(queue);
      await client.connection.close();
      await db.close();
      await token.close();
    },
  };
}

async function registerNamespace(client: Client, namespace: string): Promise<void> {
  await client.connection.workflowService.registerNamespace({
    namespace,
    workflowExecutionRetentionPeriod: { seconds: Long.fromNumber(24 * 3600) },
  });
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
