import type { Client } from '@temporalio/client';
import type { PayloadCodec } from '@temporalio/common';
import type { Worker } from '@temporalio/worker';
import { generationReader } from '../activities/ca/local-hsm/generations.js';
import { type KeyInventoryRecorder, startKeyInventory } from '../activities/keys/recorder.js';
import { EnrollmentGateway } from '../api/enrollment-gateway.js';
import { operatorCertificateVerifier } from '../api/operator/certificate-auth.js';
import { loadRegistrationAuthorities, type ProfileRa } from '../api/ra.js';
import { ocspResponderCache, registerOcspResponders } from '../api/revocation/ocsp-responders.js';
import { type RunningServer, startApiServer } from '../api/server.js';
import type { PkiConfig } from '../config/profile-types.js';
import type { RuntimeSettings } from '../config/runtime.js';
import type { DatabaseHandle } from '../db/client.js';
import type { TokenSet } from '../hsm/token-set.js';
import { createWorkers, QUEUES, type QueueName } from '../worker/workers.js';
import { loadOperatorTls } from './operator-tls.js';
import { dependencyChecks, Readiness } from './readiness.js';
import { temporalConnectionOptions } from './services.js';

/** Largest PKIOperation body accepted; a PKCSReq is a few KiB. */
export const MAX_SCEP_BODY_BYTES = 64 * 1024;

export interface InProcessPipeline {
  api: RunningServer;
  ras: Map<string, ProfileRa>;
  /** Starts the worker of a queue (no-op if it runs). */
  startQueue(queue: QueueName): Promise<void>;
  /** Stops the worker of a queue after its in-flight work (no-op if it does not run). */
  stopQueue(queue: QueueName): Promise<void>;
  /** Resolves or rejects when a worker stops by itself (not through stopQueue). */
  failed: Promise<never>;
  /** The key inventory of the tokens (lists them now, writes signature counts). */
  keyInventory: KeyInventoryRecorder;
  stop(): Promise<void>;
}

/**
 * API and workers in one process, sharing the HSM logins, database pool and Temporal client: how
 * `npm run dev`, the benchmark and the tests run the product. Each part still uses only the token
 * of its job (the API the RA token, the CA activities the CA token). Production runs them as
 * separate processes (api/main.ts, worker/main.ts), each opening only its own tokens.
 */
export async function startInProcess(opts: {
  settings: RuntimeSettings;
  config: PkiConfig;
  tokens: TokenSet;
  codec: PayloadCodec;
  database: DatabaseHandle;
  client: Client;
  queues?: readonly QueueName[];
  useBundle?: boolean;
}): Promise<InProcessPipeline> {
  const running = new Map<QueueName, { worker: Worker; done: Promise<void>; stopped: () => Promise<void> }>();
  let reportFailure: (err: unknown) => void = () => {};
  const failed = new Promise<never>((_, reject) => {
    reportFailure = reject;
  });
  failed.catch(() => {});

  const startQueue = async (queue: QueueName) => {
    if (running.has(queue)) return;
    const { workers, dispatcher } = await createWorkers({
      queues: [queue],
      connection: temporalConnectionOptions(opts.settings),
      namespace: opts.settings.temporalNamespace,
      config: opts.config,
      tokens: opts.tokens,
      codec: opts.codec,
      db: opts.database.db,
      client: opts.client,
      useBundle: opts.useBundle,
      caIssuance: opts.settings.caIssuance,
    });
    const worker = workers[0]!;
    dispatcher?.start();
    const done = worker.run().then(
      () => {
        if (running.get(queue)?.worker === worker) reportFailure(new Error(`worker for ${queue} stopped`));
      },
      (err) => reportFailure(err),
    );
    running.set(queue, { worker, done, stopped: async () => dispatcher?.stop() });
  };
  const stopQueue = async (queue: QueueName) => {
    const entry = running.get(queue);
    if (!entry) return;
    running.delete(queue);
    if (entry.worker.getState() === 'RUNNING') entry.worker.shutdown();
    await entry.done;
    await entry.stopped();
  };

  // One process holding every token: one inventory recorder lists them all and counts their signatures.
  const keyInventory = await startKeyInventory({
    db: opts.database.db,
    tokens: opts.tokens,
    config: opts.config,
  });
  const ra = opts.tokens.get('ra');
  // The API's responder keys first: a CA worker starting next certifies them at once.
  await registerOcspResponders(ra, opts.database.db, opts.config);
  for (const queue of opts.queues ?? QUEUES) await startQueue(queue);
  // One view of the CA generations for SCEP and for CRL/OCSP: they agree on the current CA.
  const generations = generationReader(opts.database.db);
  const ras = await loadRegistrationAuthorities(ra, opts.config, generations);
  const api = await startApiServer(
    {
      config: opts.config,
      ras,
      generations,
      gateway: new EnrollmentGateway(opts.client),
      caIssuance: opts.settings.caIssuance,
      temporal: opts.client,
      maxBodyBytes: MAX_SCEP_BODY_BYTES,
      db: opts.database.db,
      responderOf: ocspResponderCache(ra, opts.database.db),
      codec: opts.codec,
      readiness: new Readiness(
        dependencyChecks({ temporal: opts.client, db: opts.database.db, tokens: opts.tokens }),
      ),
      operatorCertificate: operatorCertificateVerifier(opts.database.db, opts.config),
    },
    opts.settings.api,
    { ...opts.settings.operator, tls: await loadOperatorTls(ra, opts.config, opts.settings) },
  );
  return {
    api,
    ras,
    startQueue,
    stopQueue,
    failed,
    keyInventory,
    async stop() {
      await api.close();
      for (const queue of [...running.keys()]) await stopQueue(queue);
      await keyInventory.stop();
    },
  };
}
