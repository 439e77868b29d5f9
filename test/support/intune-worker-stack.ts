import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';
import type { CaIssuance } from '../../config/runtime.js';
import { type FakeIntune, startFakeIntune } from '../fakes/intune.js';
import { type Pipeline, startPipeline } from './pipeline.js';

export const INTUNE_CREDENTIALS = {
  tenantId: 'contoso-tenant',
  clientId: 'app-123',
  clientSecret: 'intune-s3cret',
};

export interface IntuneWorkerStack {
  intune: FakeIntune;
  /** The API, in this test process; it starts no worker. */
  pipeline: Pipeline;
  /** The environment of worker processes (support/worker-process.ts) serving this pipeline. */
  workerEnv: Record<string, string>;
  close(): Promise<void>;
}

/**
 * The shape of the tests that kill workers: the API in this process, the workers as separate OS
 * processes (as in production), and one profile verified by a fake Intune with its own issuing CA.
 * The profile name must be unique across test files: they share one database (CA generations are
 * recorded by profile name).
 */
export async function startIntuneWorkerStack(opts: {
  profile: string;
  caKeyLabel: string;
  caSubject: string;
  caIssuance?: CaIssuance;
}): Promise<IntuneWorkerStack> {
  const intune = await startFakeIntune(INTUNE_CREDENTIALS);
  process.env.INTUNE_CLIENT_SECRET = INTUNE_CREDENTIALS.clientSecret;
  const stack = inject('stack');
  // One profiles file for this process (the API) and the worker processes it starts.
  const config = JSON.parse(readFileSync(stack.env.PKI_CONFIG!, 'utf8'));
  config.profiles.push({
    ...config.profiles[0],
    name: opts.profile,
    mdm: {
      type: 'intune',
      tenantId: INTUNE_CREDENTIALS.tenantId,
      clientId: INTUNE_CREDENTIALS.clientId,
      clientSecretEnv: 'INTUNE_CLIENT_SECRET',
      authority: `${intune.url}/`,
      graphUrl: intune.url,
      timeoutMs: 20_000,
    },
    ca: { ...config.profiles[0].ca, keyLabel: opts.caKeyLabel, subject: [['CN', opts.caSubject]] },
    // A worker that dies mid-step is noticed after 5 s.
    escalation: {
      maxAttempts: 10,
      initialRetrySeconds: 0.5,
      maxRetryIntervalSeconds: 1,
      deadlineSeconds: 600,
      stepTimeoutSeconds: 5,
    },
  });
  const configFile = join(mkdtempSync(join(tmpdir(), `${opts.profile}-config-`)), 'pki.json');
  writeFileSync(configFile, JSON.stringify(config));
  const caIssuance = opts.caIssuance ?? 'queue';
  const pipeline = await startPipeline({ queues: [], enrollmentWaitMs: 1000, configFile, caIssuance });
  return {
    intune,
    pipeline,
    workerEnv: {
      ...stack.env,
      PKI_CONFIG: configFile,
      DATABASE_URL: stack.databaseUrl,
      TEMPORAL_ADDRESS: pipeline.temporalAddress,
      TEMPORAL_NAMESPACE: pipeline.client.options.namespace,
      INTUNE_CLIENT_SECRET: INTUNE_CREDENTIALS.clientSecret,
      CA_ISSUANCE: caIssuance,
    },
    async close() {
      await pipeline.stop();
      await intune.close();
    },
  };
}
