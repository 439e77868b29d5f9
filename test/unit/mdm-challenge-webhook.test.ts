import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type ChallengeWebhookConfig,
  challengeWebhookVerifier,
} from '../../activities/mdm/challenge-webhook.js';
import { MdmUnavailableError } from '../../activities/mdm/http.js';
import { type FakeWebhook, startFakeWebhook } from '../fakes/challenge-webhook.js';
import { makeCsr } from '../fakes/csr.js';

const secret = randomBytes(32).toString('base64');
const env = { WEBHOOK_SECRET: secret };
let webhook: FakeWebhook;
let cfg: ChallengeWebhookConfig;

beforeAll(async () => {
  webhook = await startFakeWebhook({ webhookId: 'wh-1', secretBase64: secret });
  webhook.knobs.decisions.set('good-challenge', { allow: true });
  webhook.knobs.decisions.set('revoked-challenge', { allow: false, message: 'challenge was revoked' });
  cfg = {
    type: 'challenge-webhook',
    url: `${webhook.url}/scep-challenge`,
    secretEnv: 'WEBHOOK_SECRET',
    webhookId: 'wh-1',
    timeoutMs: 500,
  };
});
afterAll(() => webhook?.close());
afterEach(() => {
  webhook.calls.length = 0;
});

const csr = (challenge: string) =>
  makeCsr({
    subject: [
      ['C', 'DE'],
      ['O', 'Corp'],
      ['CN', 'laptop-001'],
      ['serialNumber', 'C02X'],
    ],
    challenge,
    dns: ['laptop-001.corp.example'],
    ip: ['10.0.0.7'],
    email: ['alice@corp.example'],
    uri: ['tag:microsoft.com,2022-09-14:sid:S-1-5-21-1'],
  });
const request = (challenge: string, transactionId = randomUUID()) => ({
  profile: 'corp',
  transactionId,
  csr: csr(challenge),
});

describe('challenge webhook verifier', () => {
  it('vouches for the identity the allow answer names, whatever the CSR says', async () => {
    webhook.knobs.decisions.set('vouching-challenge', {
      allow: true,
      data: {
        deviceId: 'asset-4711',
        upn: 'alice@corp.example',
        dns: ['asset-4711.corp.example'],
        ignored: 1,
      },
    });
    const verifier = challengeWebhookVerifier(cfg, { env });
    expect(await verifier.verify(request('vouching-challenge'))).toEqual({
      verdict: 'approved',
      identity: {
        deviceId: 'asset-4711',
        vouchedBy: 'challenge-webhook',
        attributes: { id: 'asset-4711', upn: 'alice@corp.example', dns: ['asset-4711.corp.example'] },
      },
    });
    webhook.knobs.decisions.set('bad-id', { allow: true, data: { deviceId: 'a/b' } });
    expect(await verifier.verify(request('bad-id'))).toMatchObject({
      verdict: 'rejected',
      reason: expect.stringMatching(/unusable device id/),
    });
  });

  it('approves on allow:true, with a signed step-ca shaped body', async () => {
    const verifier = challengeWebhookVerifier(cfg, { env });
    const req = request('good-challenge');
    // An allow that names no device vouches for nobody: the request names itself (its CN).
    expect(await verifier.verify(req)).toEqual({
      verdict: 'approved',
      identity: {
        deviceId: 'laptop-001',
        vouchedBy: null,
        attributes: { id: 'laptop-001', commonName: 'laptop-001' },
      },
    });
    const [call] = webhook.calls;
    expect(call?.signatureValid).toBe(true);
    expect(call?.webhookId).toBe('wh-1');
    expect(call?.body).toMatchObject({
      provisionerName: 'corp',
      scepChallenge: 'good-challenge',
      scepTransactionID: req.transactionId,
      x509CertificateRequest: {
        subject: { commonName: 'laptop-001', serialNumber: 'C02X', country: ['DE'], organization: ['Corp'] },
        dnsNames: ['laptop-001.corp.example'],
        emailAddresses: ['alice@corp.example'],
        ipAddresses: ['10.0.0.7'],
        uris: ['tag:microsoft.com,2022-09-14:sid:S-1-5-21-1'],
        publicKeyAlgorithm: 'ECDSA',
        raw: Buffer.from(req.csr).toString('base64'),
      },
    });
    expect(Number.isNaN(Date.parse(String(call?.body.timestamp)))).toBe(false);
  });

  it("rejects on allow:false with the webhook's message", async () => {
    const verifier = challengeWebhookVerifier(cfg, { env });
    expect(await verifier.verify(request('revoked-challenge'))).toEqual({
      verdict: 'rejected',
      reason: 'webhook denied: challenge was revoked',
    });
    expect(await verifier.verify(request('anything'))).toEqual({
      verdict: 'rejected',
      reason: 'webhook denied: unknown challenge',
    });
  });

  it('throws on 500, non-JSON, timeout and a cut connection; the next call succeeds', async () => {
    const verifier = challengeWebhookVerifier(cfg, { env });
    for (const [mode, message] of [
      ['500', /HTTP 500/],
      ['non-json', /not JSON/],
      ['slow', /no answer within 500 ms/],
      ['drop', /challenge webhook/],
    ] as const) {
      webhook.knobs.failNext(mode);
      await expect(verifier.verify(request('good-challenge'))).rejects.toThrow(message);
      expect(await verifier.verify(request('good-challenge'))).toMatchObject({ verdict: 'approved' });
    }
  });

  it('throws (never rejects the device) when the webhook refuses our signature', async () => {
    const verifier = challengeWebhookVerifier(cfg, {
      env: { WEBHOOK_SECRET: randomBytes(32).toString('base64') },
    });
    await expect(verifier.verify(request('good-challenge'))).rejects.toThrow(MdmUnavailableError);
    expect(webhook.calls[0]?.signatureValid).toBe(false);
    const nowhere = challengeWebhookVerifier({ ...cfg, url: 'http://127.0.0.1:9/' }, { env });
    await expect(nowhere.verify(request('good-challenge'))).rejects.toThrow(MdmUnavailableError);
  });
});
