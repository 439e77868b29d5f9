import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { profileSchema } from '../../config/profile-types.js';
import { certificates, enrollments } from '../../db/schema.js';
import { type FakeAtlas, startFakeAtlas } from '../fakes/atlas.js';
import { type SmtpSink, startSmtpSink } from '../fakes/smtp-sink.js';
import { startWebhookReceiver, type WebhookReceiver } from '../fakes/webhook-receiver.js';
import {
  type CertmongerRun,
  certmongerEnroll,
  certmongerPoll as pollAsCertmonger,
} from '../support/certmonger.js';
import { openssl } from '../support/openssl.js';
import { type Pipeline, startPipeline } from '../support/pipeline.js';
import { waitForWorkflows } from '../support/temporal.js';
import { temporalCli } from '../support/temporal-cli.js';

let atlas: FakeAtlas;
let receiver: WebhookReceiver;
let mail: SmtpSink;
let pipeline: Pipeline;
const scep = () => `${pipeline.url}/scep/atlas`;

beforeAll(async () => {
  process.env.ATLAS_API_KEY = 'atlas-key';
  process.env.ATLAS_API_SECRET = 'atlas-secret';
  process.env.EVENTS_SECRET = 'events-hmac-secret';
  atlas = await startFakeAtlas({ apiKey: 'atlas-key', apiSecret: 'atlas-secret' });
  receiver = await startWebhookReceiver({ secret: 'events-hmac-secret' });
  mail = await startSmtpSink();
  pipeline = await startPipeline({
    enrollmentWaitMs: 1500,
    configure: (config) => {
      config.profiles.push(
        profileSchema.parse({
          ...config.profiles[0],
          name: 'atlas',
          ca: atlas.caConfig(),
          notifications: {
            webhooks: [{ url: receiver.url, secretEnv: 'EVENTS_SECRET' }],
            email: {
              smtpHost: mail.host,
              smtpPort: mail.port,
              from: 'pki@example.test',
              to: ['oncall@example.test'],
            },
          },
          // Two quick attempts, then an operator is asked.
          escalation: {
            maxAttempts: 2,
            initialRetrySeconds: 0.2,
            maxRetryIntervalSeconds: 0.5,
            deadlineSeconds: 600,
          },
        }),
      );
      // The same upstream, but nobody answers an escalation for more than 3 s.
      const atlasProfile = config.profiles[config.profiles.length - 1]!;
      config.profiles.push(
        profileSchema.parse({
          ...atlasProfile,
          name: 'atlas-unattended',
          escalation: { ...atlasProfile.escalation, deadlineSeconds: 3 },
        }),
      );
    },
  });
});
afterAll(async () => {
  await pipeline?.stop();
  await Promise.all([atlas?.close(), receiver?.close(), mail?.close()]);
});

/** Webhook deliveries of one event type about one device. */
const eventsOf = (type: string, deviceId: string) =>
  receiver.deliveries.filter(
    (d) => d.headers['x-pki-event'] === type && d.body.includes(`"deviceId":"${deviceId}"`),
  );

/** certmonger's own poll for the request it left pending on the atlas profile. */
const certmongerPoll = (enrolled: CertmongerRun) =>
  pollAsCertmonger(enrolled, { url: scep(), ra: pipeline.ras.get('atlas')! });

describe('GlobalSign Atlas behind a slow or broken upstream', () => {
  it('answers PENDING while Atlas answers 202, and certmonger polling later gets the certificate', async () => {
    atlas.pendingRounds = 6;
    const enrolled = await certmongerEnroll({
      url: scep(),
      cn: 'atlas-slow',
      challenge: 'test-challenge',
      untilPending: true,
    });
    expect(enrolled.state, enrolled.log).toBe('PENDING');
    await waitForWorkflows(
      pipeline.client,
      'WorkflowType="enrollment" AND DeviceId="atlas-slow" AND PkiStatus="Issued"',
      1,
      30_000,
    );
    const polled = await certmongerPoll(enrolled);
    expect(polled.code, polled.output).toBe(0);
    writeFileSync(join(enrolled.dir, 'atlas-chain.pem'), atlas.chain.issuingPem + atlas.chain.rootPem);
    writeFileSync(join(enrolled.dir, 'issued.pem'), polled.certificate!);
    const verify = await openssl([
      'verify',
      '-CAfile',
      join(enrolled.dir, 'atlas-chain.pem'),
      join(enrolled.dir, 'issued.pem'),
    ]);
    expect(verify.output).toContain(': OK');
    expect(atlas.count('POST', '/certificates')).toBe(1);
    atlas.pendingRounds = 0;
  }, 120_000);

  it('escalates when Atlas is down; an operator sees it in the CLI, retries once it is back, and the device gets its certificate', async () => {
    atlas.failNext(1_000, 503);
    const enrolled = await certmongerEnroll({
      url: scep(),
      cn: 'atlas-outage',
      challenge: 'test-challenge',
      untilPending: true,
    });
    expect(enrolled.state, enrolled.log).toBe('PENDING');

    // The operator's work list, and the operators' pager: a signed webhook and an e-mail.
    await waitForWorkflows(pipeline.client, 'DeviceId="atlas-outage" AND PkiStatus="Escalated"', 1, 30_000);
    await expect
      .poll(() => eventsOf('enrollment.escalated', 'atlas-outage').length, { timeout: 15_000 })
      .toBe(1);
    expect(eventsOf('enrollment.escalated', 'atlas-outage')[0]!.verified).toBe(true);
    await expect
      .poll(() => mail.messages.filter((m) => m.raw.includes('atlas-outage')).length, { timeout: 15_000 })
      .toBe(1);
    expect(mail.messages.find((m) => m.raw.includes('atlas-outage'))!.to).toEqual(['oncall@example.test']);
    const listed = await temporalCli(pipeline, [
      'workflow',
      'list',
      '--query',
      'PkiStatus="Escalated" AND ExecutionStatus="Running"',
    ]);
    const workflowId = /enroll\/atlas\/\S+/.exec(listed.output)?.[0];
    expect(workflowId, listed.output).toBeDefined();

    // While escalated, the device's poll is answered PENDING: no certificate.
    const early = await certmongerPoll(enrolled);
    expect(early.certificate).toBeUndefined();

    atlas.failNext(0);
    const postsBefore = atlas.count('POST', '/certificates');
    const signal = await temporalCli(pipeline, [
      'workflow',
      'signal',
      '--workflow-id',
      workflowId!,
      '--name',
      'retry',
      '--input',
      '{"by":"on-call"}',
    ]);
    expect(signal.code, signal.output).toBe(0);

    await waitForWorkflows(pipeline.client, `WorkflowId="${workflowId}" AND PkiStatus="Issued"`, 1, 30_000);
    await expect
      .poll(() => eventsOf('enrollment.succeeded', 'atlas-outage').length, { timeout: 15_000 })
      .toBe(1);
    const late = await certmongerPoll(enrolled);
    expect(late.code, late.output).toBe(0);
    expect(late.certificate).toContain('BEGIN CERTIFICATE');
    expect(atlas.count('POST', '/certificates') - postsBefore).toBe(1);
    const rows = await pipeline.db.db
      .select()
      .from(certificates)
      .where(eq(certificates.deviceId, 'atlas-outage'));
    expect(rows).toHaveLength(1);
  }, 120_000);

  it('fails the enrollment when the operator rejects it, with the reason recorded and sent to the device', async () => {
    atlas.failNext(1_000, 503);
    const enrolled = await certmongerEnroll({
      url: scep(),
      cn: 'atlas-rejected',
      challenge: 'test-challenge',
      untilPending: true,
    });
    expect(enrolled.state, enrolled.log).toBe('PENDING');
    const [escalated] = await waitForWorkflows(
      pipeline.client,
      'DeviceId="atlas-rejected" AND PkiStatus="Escalated"',
      1,
      30_000,
    );
    const signal = await temporalCli(pipeline, [
      'workflow',
      'signal',
      '--workflow-id',
      escalated!.workflowId,
      '--name',
      'reject',
      '--input',
      '{"reason":"upstream CA contract ended","by":"on-call"}',
    ]);
    expect(signal.code, signal.output).toBe(0);
    await waitForWorkflows(
      pipeline.client,
      `WorkflowId="${escalated!.workflowId}" AND PkiStatus="Failed"`,
      1,
      30_000,
    );
    atlas.failNext(0);

    const polled = await certmongerPoll(enrolled);
    expect(polled.certificate).toBeUndefined();
    expect(polled.code).not.toBe(0);
    const [row] = await pipeline.db.db
      .select()
      .from(enrollments)
      .where(eq(enrollments.id, escalated!.workflowId));
    expect(row).toMatchObject({
      status: 'failed',
      failInfo: 'badRequest',
      failureReason: 'upstream CA contract ended',
    });
  }, 120_000);

  it('revokes an Atlas certificate at Atlas when an operator signals revoke', async () => {
    const lifecycle = pipeline.client.workflow.getHandle('device/atlas/atlas-slow');
    await lifecycle.signal('revoke', { reason: 'keyCompromise', by: 'on-call' });
    await waitForWorkflows(
      pipeline.client,
      'WorkflowId="device/atlas/atlas-slow" AND PkiStatus="Revoked"',
      1,
      30_000,
    );
    const [row] = await pipeline.db.db
      .select()
      .from(certificates)
      .where(eq(certificates.deviceId, 'atlas-slow'));
    expect(row).toMatchObject({ status: 'revoked', revocationReason: 'keyCompromise' });
    expect(atlas.count('PATCH', '/certificates')).toBe(1);
    expect([...atlas.certificates.values()].filter((c) => c.status === 'REVOKED')).toHaveLength(1);
  }, 60_000);

  it('fails an escalated enrollment nobody decides on once the escalation deadline passes', async () => {
    atlas.failNext(1_000, 503);
    try {
      const enrolled = await certmongerEnroll({
        url: `${pipeline.url}/scep/atlas-unattended`,
        cn: 'atlas-unattended',
        challenge: 'test-challenge',
        untilPending: true,
      });
      expect(enrolled.state, enrolled.log).toBe('PENDING');
      const [failed] = await waitForWorkflows(
        pipeline.client,
        'DeviceId="atlas-unattended" AND PkiStatus="Failed"',
        1,
        30_000,
      );
      const [row] = await pipeline.db.db
        .select()
        .from(enrollments)
        .where(eq(enrollments.id, failed!.workflowId));
      expect(row?.status).toBe('failed');
      expect(row?.failureReason).toContain('no operator decision before the escalation deadline');
    } finally {
      atlas.failNext(0);
    }
  }, 60_000);
});
