import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { certificates } from '../../db/schema.js';
import { type FakeIntune, startFakeIntune } from '../fakes/intune.js';
import { certmongerEnroll, certmongerPoll } from '../support/certmonger.js';
import { type Pipeline, startPipeline } from '../support/pipeline.js';
import { waitForWorkflows } from '../support/temporal.js';
import { startWorkerProcess, type WorkerProcess } from '../support/worker-process.js';

const creds = { tenantId: 'contoso-tenant', clientId: 'app-123', clientSecret: 'intune-s3cret' };
let intune: FakeIntune;
let pipeline: Pipeline;
let workerEnv: Record<string, string>;
let worker: WorkerProcess | undefined;

beforeAll(async () => {
  intune = await startFakeIntune(creds);
  process.env.INTUNE_CLIENT_SECRET = creds.clientSecret;
  const stack = inject('stack');
  // One profiles file for this process (the API) and the worker processes it starts.
  const config = JSON.parse(readFileSync(stack.env.PKI_CONFIG!, 'utf8'));
  config.profiles.push({
    ...config.profiles[0],
    name: 'intune',
    mdm: {
      type: 'intune',
      tenantId: creds.tenantId,
      clientId: creds.clientId,
      clientSecretEnv: 'INTUNE_CLIENT_SECRET',
      authority: `${intune.url}/`,
      graphUrl: intune.url,
      timeoutMs: 20_000,
    },
    ca: {
      ...config.profiles[0].ca,
      keyLabel: 'issuing-ca/intune',
      subject: [['CN', 'Crash Test Issuing CA']],
    },
    // A worker that dies mid-step is noticed after 5 s.
    escalation: {
      maxAttempts: 10,
      initialRetrySeconds: 0.5,
      maxRetryIntervalSeconds: 1,
      deadlineSeconds: 600,
      stepTimeoutSeconds: 5,
    },
  });
  const configFile = join(mkdtempSync(join(tmpdir(), 'crash-config-')), 'pki.json');
  writeFileSync(configFile, JSON.stringify(config));
  // The API runs here; the workers run as separate OS processes, as in production.
  pipeline = await startPipeline({ queues: [], enrollmentWaitMs: 1000, configFile });
  workerEnv = {
    ...stack.env,
    PKI_CONFIG: configFile,
    DATABASE_URL: stack.databaseUrl,
    TEMPORAL_ADDRESS: pipeline.temporalAddress,
    TEMPORAL_NAMESPACE: pipeline.client.options.namespace,
    INTUNE_CLIENT_SECRET: creds.clientSecret,
  };
});
afterAll(async () => {
  worker?.process.kill('SIGKILL');
  await pipeline?.stop();
  await intune?.close();
});

describe('a worker killed in the middle of an enrollment', () => {
  it('finishes after a restart with exactly one certificate and one Intune success notification', async () => {
    worker = await startWorkerProcess({ queues: 'pki,pki-hsm', env: workerEnv });
    // Intune takes its time on the first validation: the worker dies while waiting for it.
    intune.knobs.slowMs = 8_000;
    intune.knobs.failNext('validateRequest', 'slow', 1);

    const enrolled = await certmongerEnroll({
      url: `${pipeline.url}/scep/intune`,
      cn: 'crash-laptop',
      challenge: 'intune-signed-challenge',
      untilPending: true,
    });
    expect(enrolled.state, enrolled.log).toBe('PENDING');
    await expect
      .poll(() => intune.callsTo('validateRequest').length, { timeout: 20_000 })
      .toBeGreaterThanOrEqual(1);
    worker.process.kill('SIGKILL');
    expect((await worker.exited).signal).toBe('SIGKILL');

    worker = await startWorkerProcess({ queues: 'pki,pki-hsm', env: workerEnv });
    const [done] = await waitForWorkflows(
      pipeline.client,
      'WorkflowType="enrollment" AND DeviceId="crash-laptop" AND PkiStatus="Issued"',
      1,
      60_000,
    );
    expect(done).toBeDefined();

    const polled = await certmongerPoll(enrolled, {
      url: `${pipeline.url}/scep/intune`,
      ra: pipeline.ras.get('intune')!,
    });
    expect(polled.code, polled.output).toBe(0);
    expect(polled.certificate).toContain('BEGIN CERTIFICATE');

    const rows = await pipeline.db.db
      .select()
      .from(certificates)
      .where(eq(certificates.deviceId, 'crash-laptop'));
    expect(rows).toHaveLength(1);
    expect(intune.callsTo('successNotification').filter((c) => c.status === 200)).toHaveLength(1);
    expect(rows[0]!.mdmContext).toMatchObject({ mdm: 'intune' });

    // And the replacement worker stops cleanly on SIGTERM.
    worker.process.kill('SIGTERM');
    const exit = await worker.exited;
    expect(exit.code).toBe(0);
    expect(worker.output()).toContain('[worker] stopped');
    worker = undefined;
  }, 180_000);
});
