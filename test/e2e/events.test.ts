import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { and, eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHsmActivities } from '../../activities/index.js';
import { webhookTarget } from '../../activities/notify/outbox.js';
import { profileSchema } from '../../config/profile-types.js';
import { admissions, certificates, eventDeliveries, eventOutbox } from '../../db/schema.js';
import { freePort } from '../../scripts/free-port.js';
import { deviceStateQuery } from '../../workflows/definitions.js';
import { startWebhookReceiver, type WebhookReceiver } from '../fakes/webhook-receiver.js';
import { certsFromPkcs7, openssl, serialOf } from '../support/openssl.js';
import { makeDevice } from '../support/openssl-scep.js';
import { type Pipeline, startPipeline } from '../support/pipeline.js';
import { scepclientEnroll } from '../support/scep-clients.js';
import { waitForWorkflows } from '../support/temporal.js';

/**
 * Events never hold the PKI back: a profile's three webhook receivers are down (connection
 * refused), slow (30 s) and broken (500). Enrollment, hand-off and revocation go at full speed; the
 * outbox delivers what it can, keeps the rest, and dead letters wait for an operator's redelivery.
 */
const OPERATOR_TOKEN = 'events-operator-token';
const SECRET = 'events-webhook-secret';
const bearer = { authorization: `Bearer ${OPERATOR_TOKEN}`, 'content-type': 'application/json' };
let pipeline: Pipeline;
let work: string;
let downPort: number;
let slow: WebhookReceiver;
let broken: WebhookReceiver;
let back: WebhookReceiver | undefined;

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'e2e-events-'));
  downPort = await freePort();
  slow = await startWebhookReceiver({ secret: SECRET, delayMs: 30_000 });
  broken = await startWebhookReceiver({ secret: SECRET, failTimes: 1_000_000 });
  Object.assign(process.env, { OPERATOR_TOKEN, EVENTS_HOOK_SECRET: SECRET });
  pipeline = await startPipeline({
    configure: (config) => {
      const base = config.profiles.find((p) => p.name === 'devices')!;
      config.profiles.splice(0, config.profiles.length, base);
      config.events = { deadLetterAfterSeconds: 60, maxRetryIntervalSeconds: 1, timeoutMs: 2000 };
      config.profiles.push(
        profileSchema.parse({
          ...base,
          name: 'eventful',
          mdm: { type: 'static-challenge', challenge: 'eventful-challenge' },
          ca: { ...base.ca, keyLabel: 'issuing-ca/eventful', subject: [['CN', 'Eventful Issuing CA']] },
          notifications: {
            webhooks: [
              { url: `http://127.0.0.1:${downPort}/hook`, secretEnv: 'EVENTS_HOOK_SECRET' },
              { url: slow.url, secretEnv: 'EVENTS_HOOK_SECRET' },
              { url: broken.url, secretEnv: 'EVENTS_HOOK_SECRET' },
            ],
          },
        }),
      );
    },
  });
});
afterAll(async () => {
  await pipeline?.stop();
  await Promise.all([slow?.close(), broken?.close(), back?.close()]);
});

const scep = `http://127.0.0.1:0/scep/eventful`;
const enroll = (cn: string) =>
  scepclientEnroll({
    url: scep.replace('http://127.0.0.1:0', pipeline.url),
    challenge: 'eventful-challenge',
    cn,
  });
const write = (name: string, content: string | Uint8Array) => {
  const path = join(work, name);
  writeFileSync(path, content);
  return path;
};
const deliveriesOf = (deviceId: string) =>
  pipeline.db.db
    .select({
      id: eventOutbox.id,
      type: eventOutbox.type,
      target: eventDeliveries.target,
      state: eventDeliveries.state,
    })
    .from(eventDeliveries)
    .innerJoin(eventOutbox, eq(eventOutbox.id, eventDeliveries.eventId))
    .where(and(eq(eventOutbox.profile, 'eventful'), eq(eventOutbox.deviceId, deviceId)));

async function revokedEverywhere(pem: string, serialHex: string): Promise<void> {
  const ca = await fetch(`${pipeline.url}/scep/eventful?operation=GetCACert`);
  const [, issuing, root] = await certsFromPkcs7(new Uint8Array(await ca.arrayBuffer()), work);
  const issuingFile = write('issuing.pem', issuing!);
  const chainFile = write('chain.pem', `${issuing}\n${root}\n`);
  const certFile = write(`${serialHex}.pem`, pem);
  const crl = await fetch(`${pipeline.url}/crl/eventful.crl`);
  const crlFile = write(`${serialHex}.crl`, new Uint8Array(await crl.arrayBuffer()));
  const crlText = (
    await openssl(['crl', '-inform', 'DER', '-in', crlFile, '-noout', '-text'])
  ).output.toLowerCase();
  expect(crlText).toContain(serialHex.toLowerCase());
  const ocsp = await openssl([
    'ocsp',
    '-issuer',
    issuingFile,
    '-cert',
    certFile,
    '-url',
    `${pipeline.url}/ocsp`,
    '-CAfile',
    chainFile,
  ]);
  expect(ocsp.output).toMatch(/: revoked/);
}

describe('events never hold the PKI back', () => {
  it('enrollment succeeds and the lifecycle is Active within a second, whatever the receivers do', async () => {
    const run = await enroll('evt-laptop');
    expect(run.code, run.output).toBe(0);
    const issuedAt = Date.now();
    const lifecycle = pipeline.client.workflow.getHandle('device/eventful/evt-laptop');
    await expect
      .poll(async () => (await lifecycle.query(deviceStateQuery).catch(() => undefined))?.status, {
        timeout: 1000,
        interval: 50,
      })
      .toBe('Active');
    expect(Date.now() - issuedAt).toBeLessThan(1000);
    // The event is in the outbox for all three receivers; nothing was waited for.
    expect((await deliveriesOf('evt-laptop')).filter((d) => d.type === 'enrollment.succeeded')).toHaveLength(
      3,
    );
  });

  it('an operator revokes 1 s after issuance: CRL, OCSP and PkiStatus say revoked within 5 s; the next command is as fast', async () => {
    const run = await enroll('evt-revoked');
    expect(run.code, run.output).toBe(0);
    const serialHex = await serialOf(run.certificatePem!, work);
    await new Promise((r) => setTimeout(r, 1000));
    const started = Date.now();
    const revoke = await fetch(`${pipeline.operatorUrl}/operator/devices/eventful/evt-revoked/revoke`, {
      method: 'POST',
      headers: bearer,
      body: '{"reason":"keyCompromise","by":"alice"}',
    });
    expect(revoke.status).toBe(202);
    await waitForWorkflows(
      pipeline.client,
      'WorkflowId="device/eventful/evt-revoked" AND PkiStatus="Revoked"',
      1,
      5000,
    );
    await revokedEverywhere(run.certificatePem!, serialHex);
    expect(Date.now() - started).toBeLessThan(5000);

    const next = Date.now();
    const readmit = await fetch(`${pipeline.operatorUrl}/operator/devices/eventful/evt-revoked/readmit`, {
      method: 'POST',
      headers: bearer,
      body: '{"by":"alice"}',
    });
    expect(readmit.status).toBe(202);
    await waitForWorkflows(
      pipeline.client,
      'WorkflowId="device/eventful/evt-revoked" AND PkiStatus="Pending"',
      1,
      5000,
    );
    expect(Date.now() - next).toBeLessThan(5000);
  });

  it('revokes by serial a certificate whose lifecycle never existed', async () => {
    // A certificate the CA signed and stored, with no enrollment workflow and no hand-off behind it:
    // as if the hand-off had failed right after issuance.
    const device = await makeDevice(work, 'evt-orphan', 'eventful-challenge');
    const enrollmentId = 'enroll/eventful/orphan-1';
    await pipeline.db.db.insert(admissions).values({
      enrollmentId,
      profile: 'eventful',
      deviceId: 'evt-orphan',
      identity: { deviceId: 'evt-orphan', vouchedBy: null, attributes: { id: 'evt-orphan' } },
      csrSha256: createHash('sha256').update(device.csrDer).digest('hex'),
    });
    const now = Date.now();
    const issued = await createHsmActivities({
      config: pipeline.config,
      db: pipeline.db.db,
      token: pipeline.tokens.get('ca'),
    }).issueCertificate({
      profile: 'eventful',
      enrollmentId,
      csr: Buffer.from(device.csrDer).toString('base64'),
      notBefore: new Date(now - 60_000).toISOString(),
      notAfter: new Date(now + 3_600_000).toISOString(),
    });
    const serialHex = issued.serialHex;
    const pem = `-----BEGIN CERTIFICATE-----\n${issued.certificate}\n-----END CERTIFICATE-----\n`;
    const run = { certificatePem: pem };
    await expect(
      pipeline.client.workflow.getHandle('device/eventful/evt-orphan').describe(),
    ).rejects.toThrow();

    const url = `${pipeline.operatorUrl}/operator/certificates/${serialHex.toUpperCase()}/revoke`;
    const revoked = await fetch(url, {
      method: 'POST',
      headers: bearer,
      body: '{"reason":"keyCompromise","by":"alice"}',
    });
    expect(revoked.status).toBe(200);
    expect(await revoked.json()).toMatchObject({
      serialHex,
      alreadyRevoked: false,
      lifecycleNotified: false,
    });
    await revokedEverywhere(run.certificatePem!, serialHex);
    // Idempotent: the first reason and time stand.
    const again = await fetch(url, { method: 'POST', headers: bearer, body: '{"reason":"superseded"}' });
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ alreadyRevoked: true });
    const [row] = await pipeline.db.db
      .select()
      .from(certificates)
      .where(eq(certificates.serialHex, serialHex));
    expect(row).toMatchObject({ status: 'revoked', revocationReason: 'keyCompromise' });
    const view = await fetch(`${pipeline.operatorUrl}/operator/devices/eventful/evt-orphan`, {
      headers: bearer,
    });
    expect(await view.json()).toMatchObject({
      certificates: [expect.objectContaining({ serialHex, status: 'revoked' })],
    });
    expect(
      (
        await fetch(`${pipeline.operatorUrl}/operator/certificates/00ff/revoke`, {
          method: 'POST',
          headers: bearer,
        })
      ).status,
    ).toBe(404);
  });

  it('delivers every event once the receiver is back; dead letters are listed and redelivered', async () => {
    // The receiver that was down comes back where it was.
    back = await startWebhookReceiver({ secret: SECRET, port: downPort });
    const all = await pipeline.db.db
      .select({ id: eventOutbox.id })
      .from(eventOutbox)
      .where(eq(eventOutbox.profile, 'eventful'));
    expect(all.length).toBeGreaterThanOrEqual(5);
    // Every event reaches it (within the dead-letter window, retries every second), each once or more,
    // always with its own delivery id.
    await expect
      .poll(() => new Set(back!.deliveries.map((d) => d.headers['x-pki-delivery'])).size, { timeout: 20_000 })
      .toBeGreaterThanOrEqual(all.length);
    expect(back.deliveries.every((d) => d.verified)).toBe(true);

    // The broken receiver's deliveries outlive the dead-letter time (60 s): their clock is moved on
    // rather than waited for; the dispatcher's next failed attempt makes them dead letters.
    await pipeline.db.db
      .update(eventDeliveries)
      .set({ pendingSince: new Date(Date.now() - 120_000) })
      .where(
        and(eq(eventDeliveries.state, 'pending'), eq(eventDeliveries.target, webhookTarget(broken.url))),
      );
    await expect
      .poll(
        async () => {
          const listed = await fetch(`${pipeline.operatorUrl}/operator/events?state=dead&profile=eventful`, {
            headers: bearer,
          });
          return ((await listed.json()) as { deliveries: unknown[] }).deliveries.length;
        },
        { timeout: 30_000 },
      )
      .toBeGreaterThanOrEqual(all.length);
    const listed = await fetch(`${pipeline.operatorUrl}/operator/events?state=dead&profile=eventful`, {
      headers: bearer,
    });
    const dead = (await listed.json()) as { deliveries: Array<{ id: string; lastError: string }> };
    expect(dead.deliveries.some((d) => /answered 500/.test(d.lastError))).toBe(true);

    // Fixed; an operator redelivers one event.
    broken.failuresLeft = 0;
    const { id } = dead.deliveries.find((d) => /answered 500/.test(d.lastError))!;
    const before = broken.deliveries.filter(
      (d) => d.headers['x-pki-delivery'] === id && d.status === 204,
    ).length;
    const redeliver = await fetch(
      `${pipeline.operatorUrl}/operator/events/${encodeURIComponent(id)}/redeliver`,
      {
        method: 'POST',
        headers: bearer,
        body: '{"by":"alice"}',
      },
    );
    expect(redeliver.status).toBe(202);
    await expect
      .poll(
        () => broken.deliveries.filter((d) => d.headers['x-pki-delivery'] === id && d.status === 204).length,
        {
          timeout: 10_000,
        },
      )
      .toBe(before + 1);
  }, 90_000);
});
