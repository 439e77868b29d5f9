import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Profile, profileSchema } from '../../config/profile-types.js';
import { certificates, enrollments } from '../../db/schema.js';
import { type FakeWebhook, startFakeWebhook } from '../fakes/challenge-webhook.js';
import { type FakeIntune, startFakeIntune } from '../fakes/intune.js';
import { type FakeJamf, startFakeJamf } from '../fakes/jamf.js';
import { postOpensslPkcsReq } from '../support/certrep-attributes.js';
import { openssl } from '../support/openssl.js';
import { makeDevice } from '../support/openssl-scep.js';
import { type Pipeline, startPipeline } from '../support/pipeline.js';
import { scepclientEnroll } from '../support/scep-clients.js';

const intuneCreds = { tenantId: 'contoso', clientId: 'pki-app', clientSecret: 'intune-secret' };
const jamfCreds = { clientId: 'jamf-client', clientSecret: 'jamf-secret' };
const hookSecret = Buffer.from('webhook-hmac-secret').toString('base64');
let intune: FakeIntune;
let jamf: FakeJamf;
let hook: FakeWebhook;
let pipeline: Pipeline;

beforeAll(async () => {
  intune = await startFakeIntune(intuneCreds);
  jamf = await startFakeJamf(jamfCreds);
  hook = await startFakeWebhook({ webhookId: 'hook-1', secretBase64: hookSecret });
  Object.assign(process.env, {
    INTUNE_SECRET: intuneCreds.clientSecret,
    JAMF_SECRET: jamfCreds.clientSecret,
    JAMF_WEBHOOK_PASSWORD: 'jamf-hook-password',
    HOOK_SECRET: hookSecret,
    OPERATOR_TOKEN: 'operator-token',
  });
  pipeline = await startPipeline({
    configure: (config) => {
      const base = config.profiles[0]!;
      const profile = (name: string, mdm: unknown, template: Record<string, unknown> = {}): Profile =>
        profileSchema.parse({
          ...base,
          name,
          mdm,
          template: { ...base.template, ...template },
          ca: { ...base.ca, keyLabel: `issuing-ca/${name}`, subject: [['CN', `Issuing CA ${name}`]] },
          // Transient failures are retried quickly; an enrollment here never needs an operator.
          escalation: {
            maxAttempts: 5,
            initialRetrySeconds: 0.2,
            maxRetryIntervalSeconds: 0.5,
            deadlineSeconds: 600,
          },
        });
      config.profiles.push(
        profile('intune', {
          type: 'intune',
          ...intuneCreds,
          clientSecret: undefined,
          clientSecretEnv: 'INTUNE_SECRET',
          authority: `${intune.url}/`,
          graphUrl: intune.url,
        }),
        profile(
          'intune-id',
          {
            type: 'intune',
            deviceIdFrom: 'intuneDeviceId',
            ...intuneCreds,
            clientSecret: undefined,
            clientSecretEnv: 'INTUNE_SECRET',
            authority: `${intune.url}/`,
            graphUrl: intune.url,
          },
          {
            subject: [['CN', '{{device.id}}']],
            subjectAltNames: {
              uri: ['IntuneDeviceId://{{device.intuneDeviceId}}'],
              email: ['{{device.email}}'],
            },
            requesterChosenCommonName: false,
          },
        ),
        profile(
          'jamf',
          {
            type: 'jamf',
            baseUrl: jamf.url,
            clientId: jamfCreds.clientId,
            clientSecretEnv: 'JAMF_SECRET',
            webhookUser: 'jamf-hook',
            webhookPasswordEnv: 'JAMF_WEBHOOK_PASSWORD',
            challengeTtlSeconds: 600,
          },
          {
            subject: [
              ['CN', '{{device.serialNumber}}'],
              ['OU', '{{device.name}}'],
            ],
            requesterChosenCommonName: false,
          },
        ),
        profile('hook', {
          type: 'challenge-webhook',
          url: hook.url,
          secretEnv: 'HOOK_SECRET',
          webhookId: 'hook-1',
        }),
        profile('onetime', { type: 'one-time-challenge', ttlSeconds: 600 }),
      );
    },
  });
});
afterAll(async () => {
  await pipeline?.stop();
  await Promise.all([intune?.close(), jamf?.close(), hook?.close()]);
});

const enroll = (profile: string, cn: string, challenge: string) =>
  scepclientEnroll({ url: `${pipeline.url}/scep/${profile}`, challenge, cn });
const certificatesOf = (cn: string) =>
  pipeline.db.db.select().from(certificates).where(eq(certificates.deviceId, cn));
const enrollmentOf = async (cn: string) =>
  (await pipeline.db.db.select().from(enrollments).where(eq(enrollments.deviceId, cn)))[0];

describe('Intune verification through SCEP', () => {
  it('issues when Intune says Success and tells Intune about the certificate', async () => {
    const run = await enroll('intune', 'intune-ok', 'intune-challenge');
    expect(run.code, run.output).toBe(0);
    expect(await certificatesOf('intune-ok')).toHaveLength(1);
    expect(intune.callsTo('successNotification')).toHaveLength(1);
  });

  it('answers FAILURE with the Intune code and sends a failure notification when Intune says no', async () => {
    intune.knobs.defaultCode = 'ChallengeExpired';
    try {
      const run = await enroll('intune', 'intune-expired', 'stale-challenge');
      expect(run.code).not.toBe(0);
      expect(run.output).toMatch(/badRequest/);
    } finally {
      intune.knobs.defaultCode = 'Success';
    }
    expect(await certificatesOf('intune-expired')).toHaveLength(0);
    expect((await enrollmentOf('intune-expired'))?.failureReason).toContain('ChallengeExpired');
    const notices = intune.callsTo('failureNotification');
    expect(notices).toHaveLength(1);
    expect(JSON.stringify(notices[0]!.body)).toContain('ChallengeExpired');
  });

  it('retries a transient Intune failure and issues exactly one certificate', async () => {
    const before = intune.callsTo('validateRequest').length;
    intune.knobs.failNext('validateRequest', '500', 1);
    const run = await enroll('intune', 'intune-flaky', 'intune-challenge');
    expect(run.code, run.output).toBe(0);
    expect(intune.callsTo('validateRequest').length - before).toBe(2);
    expect(await certificatesOf('intune-flaky')).toHaveLength(1);
  });
});

describe('Intune identity through SCEP', () => {
  const work = mkdtempSync(join(tmpdir(), 'e2e-intune-id-'));
  const send = (device: Awaited<ReturnType<typeof makeDevice>>, transactionId: string) =>
    postOpensslPkcsReq({ scepUrl: `${pipeline.url}/scep/intune-id`, device, transactionId, dir: work });

  it('names the device by the IntuneDeviceId SAN Intune validated, not by the CN; a request Intune refuses gets nothing', async () => {
    const device = await makeDevice(work, 'alice-laptop', 'intune-made-this', {
      san: ['URI:IntuneDeviceId://7d9c0f44-0000-4000-8000-000000000042', 'email:alice@corp.example'],
    });
    const reply = await send(device, 'intune-id-1');
    expect(reply.attributes).toMatchObject({ pkiStatus: '0' });
    const [row] = await certificatesOf('7d9c0f44-0000-4000-8000-000000000042');
    expect(row).toMatchObject({ profile: 'intune-id', subject: 'CN=7d9c0f44-0000-4000-8000-000000000042' });
    const pem = `-----BEGIN CERTIFICATE-----\n${Buffer.from(row!.der).toString('base64')}\n-----END CERTIFICATE-----\n`;
    const certFile = join(work, 'intune-id.pem');
    writeFileSync(certFile, pem);
    const text = (await openssl(['x509', '-in', certFile, '-noout', '-ext', 'subjectAltName'])).output;
    expect(text).toContain('URI:IntuneDeviceId://7d9c0f44-0000-4000-8000-000000000042');
    expect(text).toContain('email:alice@corp.example');

    intune.knobs.codes.set('intune-id-2', 'SubjectNameMismatch');
    const mismatch = await makeDevice(work, 'mallory-laptop', 'intune-made-this', {
      san: ['URI:IntuneDeviceId://7d9c0f44-0000-4000-8000-000000000042'],
    });
    const refused = await send(mismatch, 'intune-id-2');
    expect(refused.attributes).toMatchObject({ pkiStatus: '2', failInfo: '2' });
    expect(await certificatesOf('7d9c0f44-0000-4000-8000-000000000042')).toHaveLength(1);
  });
});

describe('challenge webhook verification', () => {
  it('issues on allow, refuses on deny with the hook message, and retries a 500', async () => {
    hook.knobs.decisions.set('hook-ok', { allow: true });
    hook.knobs.decisions.set('hook-no', { allow: false, message: 'device is quarantined' });
    expect((await enroll('hook', 'hook-ok', 'hook-ok')).code).toBe(0);

    const denied = await enroll('hook', 'hook-no', 'hook-no');
    expect(denied.code).not.toBe(0);
    expect((await enrollmentOf('hook-no'))?.failureReason).toContain('device is quarantined');

    hook.knobs.failNext('500', 1);
    expect((await enroll('hook', 'hook-flaky', 'hook-ok')).code).toBe(0);
    expect(await certificatesOf('hook-flaky')).toHaveLength(1);
    expect(hook.calls.every((c) => c.signatureValid)).toBe(true);
  });
});

describe('one-time challenges', () => {
  it('works once: the second device presenting the same challenge is refused', async () => {
    const created = await fetch(`${pipeline.operatorUrl}/operator/profiles/onetime/challenges`, {
      method: 'POST',
      headers: { authorization: 'Bearer operator-token', 'content-type': 'application/json' },
      body: JSON.stringify({ issuedTo: 'helpdesk ticket 42' }),
    });
    expect(created.status).toBe(201);
    const { challenge } = (await created.json()) as { challenge: string };
    expect((await enroll('onetime', 'once-1', challenge)).code).toBe(0);

    const second = await enroll('onetime', 'once-2', challenge);
    expect(second.code).not.toBe(0);
    expect((await enrollmentOf('once-2'))?.failureReason).toMatch(/unknown, used or expired/);
  });
});

describe('Jamf', () => {
  const scepChallenge = async () => {
    const response = await fetch(`${pipeline.operatorUrl}/jamf/jamf/scep-challenge`, {
      method: 'POST',
      headers: {
        authorization: `Basic ${Buffer.from('jamf-hook:jamf-hook-password').toString('base64')}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({
        webhook: { id: 1, name: 'scep', webhookEvent: 'SCEPChallenge', eventTimestamp: Date.now() },
        event: {
          scepServerUrl: `${pipeline.url}/scep/jamf`,
          payloadIdentifier: 'profile-1',
          payloadTypes: ['com.apple.security.scep'],
        },
      }),
    });
    expect(response.status).toBe(200);
    return response.text();
  };

  it('issues to a device in the Jamf inventory with a challenge from the SCEPChallenge webhook, and refuses one it does not know', async () => {
    jamf.knobs.computers.add('C02XK1JHJGH5');
    expect((await enroll('jamf', 'C02XK1JHJGH5', await scepChallenge())).code).toBe(0);

    const stranger = await enroll('jamf', 'C02UNKNOWN99', await scepChallenge());
    expect(stranger.code).not.toBe(0);
    expect((await enrollmentOf('C02UNKNOWN99'))?.failureReason).toContain('not in Jamf inventory');
  });

  it("takes the device id and subject from Jamf's inventory record, whatever the CSR's CN says", async () => {
    jamf.knobs.computers.add('c02lower77');
    jamf.knobs.records.set('c02lower77', {
      serialNumber: 'C02LOWER77',
      name: 'Design MacBook',
      udid: 'UDID-77',
    });
    const run = await enroll('jamf', 'c02lower77', await scepChallenge());
    expect(run.code, run.output).toBe(0);
    expect(await certificatesOf('c02lower77')).toHaveLength(0);
    const [row] = await certificatesOf('C02LOWER77');
    expect(row?.subject).toBe('CN=C02LOWER77,OU=Design MacBook');
    expect(row?.identity).toMatchObject({
      deviceId: 'C02LOWER77',
      vouchedBy: 'jamf',
      attributes: { udid: 'UDID-77' },
    });
  });
});
