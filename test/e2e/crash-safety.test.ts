import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certificates } from '../../db/schema.js';
import type { FakeIntune } from '../fakes/intune.js';
import { certmongerEnroll, certmongerPoll } from '../support/certmonger.js';
import { type IntuneWorkerStack, startIntuneWorkerStack } from '../support/intune-worker-stack.js';
import type { Pipeline } from '../support/pipeline.js';
import { waitForWorkflows } from '../support/temporal.js';
import { startWorkerProcess, type WorkerProcess } from '../support/worker-process.js';

let stack: IntuneWorkerStack;
let intune: FakeIntune;
let pipeline: Pipeline;
let workerEnv: Record<string, string>;
let worker: WorkerProcess | undefined;

beforeAll(async () => {
  stack = await startIntuneWorkerStack({
    profile: 'intune',
    caKeyLabel: 'issuing-ca/intune',
    caSubject: 'Crash Test Issuing CA',
  });
  ({ intune, pipeline, workerEnv } = stack);
});
afterAll(async () => {
  worker?.process.kill('SIGKILL');
  await stack?.close();
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
