import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { certificates } from '../../db/schema.js';
import { certmongerEnroll, certmongerPoll } from '../support/certmonger.js';
import { serialOf } from '../support/openssl.js';
import { type Pipeline, startPipeline } from '../support/pipeline.js';
import { startRecordingProxy } from '../support/recording-proxy.js';
import { scepclientEnroll } from '../support/scep-clients.js';
import { waitForWorkflows } from '../support/temporal.js';

let pipeline: Pipeline;

beforeAll(async () => {
  // No HSM host polls pki-hsm yet, so issuance is the slow step; the API waits only 1 s.
  pipeline = await startPipeline({ queues: ['pki'], enrollmentWaitMs: 1000 });
});
afterAll(async () => {
  await pipeline?.stop();
});

describe('a slow step', () => {
  it('answers PENDING; the device asking again later gets its certificate from the same transaction', async () => {
    const proxy = await startRecordingProxy(pipeline.url);
    try {
      const enrolling = scepclientEnroll({
        url: `${proxy.url}/scep`,
        challenge: 'test-challenge',
        cn: 'laptop-slow',
        timeoutMs: 120_000,
      });
      const [waiting] = await waitForWorkflows(
        pipeline.client,
        'WorkflowType="enrollment" AND DeviceId="laptop-slow" AND PkiStatus="Issuing"',
        1,
      );
      // The HSM host comes back once the device holds its PENDING (scepclient asks again after 30 s).
      await expect
        .poll(() => proxy.exchanges.filter((e) => e.path.includes('PKIOperation')).length, {
          timeout: 10_000,
        })
        .toBe(1);
      await pipeline.startQueue('pki-hsm');
      const run = await enrolling;
      expect(run.code, run.output).toBe(0);
      expect(run.output).toMatch(/pkiStatus=PENDING[\s\S]*pkiStatus=SUCCESS/);
      expect(run.certificatePem).toContain('BEGIN CERTIFICATE');

      const operations = proxy.exchanges.filter((e) => e.path.includes('PKIOperation'));
      expect(operations).toHaveLength(2);
      expect(Buffer.from(operations[1]!.requestBody).equals(Buffer.from(operations[0]!.requestBody))).toBe(
        true,
      );
      await waitForWorkflows(
        pipeline.client,
        `WorkflowId="${waiting!.workflowId}" AND PkiStatus="Issued"`,
        1,
      );
      const issued = await pipeline.db.db
        .select()
        .from(certificates)
        .where(eq(certificates.deviceId, 'laptop-slow'));
      expect(issued).toHaveLength(1);
    } finally {
      await proxy.close();
    }
  }, 150_000);
});

describe('certmonger polling with GetCertInitial', () => {
  it('gets PENDING for its PKCSReq, then its CertPoll returns the certificate', async () => {
    await pipeline.stopQueue('pki-hsm');
    const scep = `${pipeline.url}/scep`;
    const enrolled = await certmongerEnroll({
      url: scep,
      cn: 'server-slow',
      challenge: 'test-challenge',
      untilPending: true,
    });
    expect(enrolled.state, enrolled.log).toBe('PENDING');
    expect(enrolled.getCertInitialPem, enrolled.log).toContain('BEGIN');
    await waitForWorkflows(
      pipeline.client,
      'WorkflowType="enrollment" AND DeviceId="server-slow" AND PkiStatus="Issuing"',
      1,
    );

    // Still no HSM host: the poll is answered PENDING (scep-submit exits non-zero without a certificate).
    const poll = () => certmongerPoll(enrolled, { url: scep, ra: pipeline.ras.get('devices')! });
    const early = await poll();
    expect(early.code).not.toBe(0);
    expect(early.certificate).toBeUndefined();

    await pipeline.startQueue('pki-hsm');
    await waitForWorkflows(
      pipeline.client,
      'WorkflowType="enrollment" AND DeviceId="server-slow" AND PkiStatus="Issued"',
      1,
    );
    const late = await poll();
    expect(late.code, late.output).toBe(0);
    const issued = await pipeline.db.db
      .select()
      .from(certificates)
      .where(eq(certificates.deviceId, 'server-slow'));
    expect(issued).toHaveLength(1);
    expect(await serialOf(late.certificate!, enrolled.dir)).toBe(issued[0]!.serialHex.toLowerCase());
  }, 150_000);
});
