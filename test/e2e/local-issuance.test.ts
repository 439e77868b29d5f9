import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certificates } from '../../db/schema.js';
import { toPem } from '../../pki/pem.js';
import {
  type EnrollmentInput,
  type EnrollmentResult,
  enrollmentWorkflowId,
  TASK_QUEUE,
} from '../../workflows/definitions.js';
import type { FakeIntune } from '../fakes/intune.js';
import { certmongerEnroll, certmongerPoll } from '../support/certmonger.js';
import { enrollmentInputOf } from '../support/enrollment-input.js';
import { replayRecorded } from '../support/history-fixtures.js';
import { type IntuneWorkerStack, startIntuneWorkerStack } from '../support/intune-worker-stack.js';
import { certificateText } from '../support/openssl.js';
import { buildPkcsReq, makeDevice } from '../support/openssl-scep.js';
import type { Pipeline } from '../support/pipeline.js';
import { scepclientEnroll } from '../support/scep-clients.js';
import { waitForWorkflows } from '../support/temporal.js';
import { startWorkerProcess, type WorkerProcess } from '../support/worker-process.js';

/**
 * CA_ISSUANCE=local (config/runtime.ts): one host runs both queues, so the workflow worker holds the
 * CA token and signs in a local activity. What must not change: one certificate per transaction,
 * also when the worker dies after signing (the workflow task that signed never completed, so the
 * whole story runs again), and a `pki` worker without the CA key never takes such an enrollment.
 */
let stack: IntuneWorkerStack;
let intune: FakeIntune;
let pipeline: Pipeline;
let workerEnv: Record<string, string>;
let worker: WorkerProcess | undefined;

beforeAll(async () => {
  process.env.OPERATOR_TOKEN ??= 'local-issuance-operator-token';
  // The API here writes signsLocally into each enrollment; the workers run with CA_ISSUANCE=local.
  stack = await startIntuneWorkerStack({
    profile: 'intune-local',
    caKeyLabel: 'issuing-ca/local',
    caSubject: 'Local Issuance CA',
    caIssuance: 'local',
  });
  ({ intune, pipeline, workerEnv } = stack);
}, 120_000);
afterAll(async () => {
  worker?.process.kill('SIGKILL');
  await stack?.close();
});

describe('CA_ISSUANCE=local: the workflow worker signs', () => {
  it('refuses to start a pki worker that holds no CA token', async () => {
    const refused = await startWorkerProcess({ queues: 'pki', env: workerEnv }).then(
      (w) => {
        w.process.kill('SIGKILL');
        return 'started';
      },
      (err: Error) => err.message,
    );
    expect(refused).toContain(
      'CA_ISSUANCE=local: the pki worker signs certificates itself and needs the CA token',
    );
  }, 60_000);

  it('issues in one workflow task, the CA step a local activity, and the history replays', async () => {
    worker = await startWorkerProcess({ queues: 'pki,pki-hsm', env: workerEnv });
    const run = await scepclientEnroll({
      url: `${pipeline.url}/scep`,
      challenge: 'test-challenge',
      cn: 'local-laptop',
    });
    expect(run.code, run.output).toBe(0);
    const [done] = await waitForWorkflows(
      pipeline.client,
      'WorkflowType="enrollment" AND DeviceId="local-laptop" AND ExecutionStatus="Completed"',
      1,
    );
    const history = await pipeline.client.workflow.getHandle(done!.workflowId).fetchHistory();
    const events = history.events ?? [];
    // No activity went through a task queue, and the whole story took one workflow task.
    expect(events.filter((e) => e.activityTaskScheduledEventAttributes)).toHaveLength(0);
    expect(events.filter((e) => e.workflowTaskCompletedEventAttributes)).toHaveLength(1);
    // The Web UI still shows each step: local activities are recorded as markers, the CA's among them.
    const markers = events.filter(
      (e) => e.markerRecordedEventAttributes?.markerName === 'core_local_activity',
    );
    expect(markers.length).toBeGreaterThanOrEqual(5);
    const rows = await pipeline.db.db
      .select()
      .from(certificates)
      .where(eq(certificates.deviceId, 'local-laptop'));
    expect(rows).toHaveLength(1);

    await replayRecorded(pipeline, done!, history, 'enrollment-local-issuance');
  }, 180_000);

  it('a worker killed after signing: the story runs again and the device gets the one certificate', async () => {
    worker ??= await startWorkerProcess({ queues: 'pki,pki-hsm', env: workerEnv });
    // Intune hears of the certificate after it was signed: the worker dies while waiting for it,
    // inside the workflow task that signed (nothing of it is in the history yet).
    intune.knobs.slowMs = 8_000;
    intune.knobs.failNext('successNotification', 'slow', 1);
    const enrolled = await certmongerEnroll({
      url: `${pipeline.url}/scep/intune-local`,
      cn: 'local-crash-laptop',
      challenge: 'intune-signed-challenge',
      untilPending: true,
    });
    expect(enrolled.state, enrolled.log).toBe('PENDING');
    await expect
      .poll(() => intune.callsTo('successNotification').length, { timeout: 30_000 })
      .toBeGreaterThanOrEqual(1);
    const signed = await pipeline.db.db
      .select()
      .from(certificates)
      .where(eq(certificates.deviceId, 'local-crash-laptop'));
    expect(signed).toHaveLength(1);
    worker.process.kill('SIGKILL');
    expect((await worker.exited).signal).toBe('SIGKILL');

    worker = await startWorkerProcess({ queues: 'pki,pki-hsm', env: workerEnv });
    await waitForWorkflows(
      pipeline.client,
      'WorkflowType="enrollment" AND DeviceId="local-crash-laptop" AND ExecutionStatus="Completed"',
      1,
      60_000,
    );
    const polled = await certmongerPoll(enrolled, {
      url: `${pipeline.url}/scep/intune-local`,
      ra: pipeline.ras.get('intune-local')!,
    });
    expect(polled.code, polled.output).toBe(0);
    expect(polled.certificate).toContain('BEGIN CERTIFICATE');

    // Signed once: the second run of the story found the certificate of this enrollment.
    const rows = await pipeline.db.db
      .select()
      .from(certificates)
      .where(eq(certificates.deviceId, 'local-crash-laptop'));
    expect(rows).toHaveLength(1);
    expect(rows[0]!.serialHex).toBe(signed[0]!.serialHex);
    // The story ran again after the restart (a second notice), and Intune heard of that certificate only.
    expect(intune.callsTo('successNotification').length).toBeGreaterThanOrEqual(2);
    const serials = new Set(
      intune
        .callsTo('successNotification')
        .map(
          (c) =>
            (c.body as { notification: { certificateSerialNumber: string } }).notification
              .certificateSerialNumber,
        ),
    );
    expect([...serials]).toEqual([signed[0]!.serialHex.toUpperCase()]);
  }, 180_000);
});

/**
 * The attacker: a compromised API process. It holds the data token (so it speaks the payload codec)
 * and may start workflows, so it can write any enrollment input, signsLocally included. With
 * CA_ISSUANCE=local the signature happens in the workflow worker, one hop from that input: the
 * signer must still take nothing from it but the CSR and the enrollment id, and check those.
 */
describe('CA_ISSUANCE=local: a forged enrollment input cannot widen what the worker signs', () => {
  const PROFILE = 'intune-local';
  let work: string;
  let raFile: string;

  beforeAll(async () => {
    worker ??= await startWorkerProcess({ queues: 'pki,pki-hsm', env: workerEnv });
    work = mkdtempSync(join(tmpdir(), 'local-forgery-'));
    raFile = join(work, 'ra.pem');
    writeFileSync(raFile, toPem(pipeline.ras.get(PROFILE)!.raCertificate));
  }, 60_000);

  /** A real device's PKCSReq (openssl), read by the product's own decoder into the input the API writes. */
  async function honestInput(cn: string): Promise<EnrollmentInput> {
    const device = await makeDevice(work, cn, 'intune-signed-challenge');
    const der = await buildPkcsReq(device, {
      dir: work,
      raFile,
      transactionId: `forgery-${randomBytes(8).toString('hex')}`,
    });
    const input = await enrollmentInputOf(pipeline, PROFILE, der, 'local');
    if (!input.policy.ca.signsLocally) throw new Error('the API did not write a local-issuance input');
    return input;
  }

  /** Starts the forged input straight on the pki queue, as the compromised API could. */
  async function startForged(input: EnrollmentInput) {
    const workflowId = enrollmentWorkflowId(input.profile, input.transactionId);
    const result = (await pipeline.client.workflow.execute('enrollment', {
      taskQueue: TASK_QUEUE,
      workflowId,
      args: [input],
    })) as EnrollmentResult;
    const history = await pipeline.client.workflow.getHandle(workflowId).fetchHistory();
    // The attack reached the local signer: no activity went through a task queue.
    expect((history.events ?? []).filter((e) => e.activityTaskScheduledEventAttributes)).toHaveLength(0);
    const rows = await pipeline.db.db
      .select()
      .from(certificates)
      .where(eq(certificates.deviceId, input.claimedDeviceId));
    return { result, rows };
  }

  it('ten years of validity written into the policy: FAILURE, nothing signed', async () => {
    const input = await honestInput('forged-validity-laptop');
    const { result, rows } = await startForged({
      ...input,
      policy: { ...input.policy, validitySeconds: 3650 * 24 * 3600 },
    });
    expect(result.outcome.status).toBe('FAILURE');
    expect(result.outcome.status === 'FAILURE' && result.outcome.reason).toMatch(
      /exceeds the profile|beyond the profile/,
    );
    expect(rows).toHaveLength(0);
  }, 120_000);

  it("another subject and a server name written into the template: the profile's template is applied", async () => {
    const input = await honestInput('forged-template-laptop');
    const { result, rows } = await startForged({
      ...input,
      policy: {
        ...input.policy,
        template: {
          ...input.policy.template,
          subject: [['CN', 'Domain Admins']],
          subjectAltNames: { ...input.policy.template.subjectAltNames, dns: ['vpn-gateway.example.com'] },
        },
      },
    });
    expect(result.outcome.status).toBe('SUCCESS');
    if (result.outcome.status !== 'SUCCESS') return;
    expect(rows.map((r) => r.serialHex)).toEqual([result.outcome.issued.serialHex]);
    const text = await certificateText(toPem(Buffer.from(result.outcome.issued.certificate, 'base64')), work);
    expect(text).toMatch(/Subject: CN\s*=\s*forged-template-laptop/);
    expect(text).not.toContain('Domain Admins');
    expect(text).not.toContain('vpn-gateway.example.com');
  }, 120_000);
});
