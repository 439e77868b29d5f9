import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { eq } from 'drizzle-orm';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { oneTimeChallengeVerifier } from '../../activities/mdm/one-time-challenge.js';
import { mdmRoutes } from '../../api/mdm/index.js';
import { operatorRoutes } from '../../api/operator/index.js';
import { PROJECT_ROOT } from '../../config/load.js';
import { type PkiConfig, pkiConfigSchema } from '../../config/profile-types.js';
import { type DatabaseHandle, openDatabase } from '../../db/client.js';
import { oneTimeChallenges } from '../../db/schema.js';
import { makeCsr } from '../fakes/csr.js';

const { databaseUrl } = inject('stack');
const suffix = randomUUID().slice(0, 8);
const names = {
  jamf: `jamf-${suffix}`,
  otc: `otc-${suffix}`,
  verified: `otc-verified-${suffix}`,
  fixed: `static-${suffix}`,
};
const env: NodeJS.ProcessEnv = { JAMF_WEBHOOK_PASSWORD: 'hook-pass', OPERATOR_TOKEN: 'op-token' };
let handle: DatabaseHandle;
let config: PkiConfig;

beforeAll(async () => {
  handle = await openDatabase({ url: databaseUrl, pgliteDir: '' });
  const base = JSON.parse(readFileSync(join(PROJECT_ROOT, 'test', 'support', 'test-pki.json'), 'utf8'));
  const template = base.profiles[0];
  // Its own profiles only: the operators' profile the file names is not among them.
  const { operators: _operators, ...rest } = base;
  config = pkiConfigSchema.parse({
    ...rest,
    profiles: [
      {
        ...template,
        name: names.jamf,
        mdm: {
          type: 'jamf',
          baseUrl: 'https://jamf.example',
          clientId: 'c',
          clientSecretEnv: 'JAMF_SECRET',
          webhookUser: 'jamf-hook',
          webhookPasswordEnv: 'JAMF_WEBHOOK_PASSWORD',
          challengeTtlSeconds: 900,
        },
      },
      { ...template, name: names.otc, mdm: { type: 'one-time-challenge', ttlSeconds: 3600 } },
      {
        ...template,
        name: names.verified,
        mdm: { type: 'one-time-challenge', ttlSeconds: 3600 },
        template: { ...template.template, requesterChosenCommonName: false },
      },
      { ...template, name: names.fixed, mdm: { type: 'static-challenge', challenge: 'x' } },
    ],
  });
});
afterAll(async () => {
  await handle?.close();
});

const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
const jamfEvent = {
  webhook: { id: 7, name: 'device-pki challenge', webhookEvent: 'SCEPChallenge', eventTimestamp: Date.now() },
  event: {
    scepServerUrl: 'https://pki.example/scep',
    payloadIdentifier: 'com.example.scep.C02X',
    payloadTypes: ['com.apple.security.scep'],
  },
};

/** The routes under test, in process; these routes never reach Temporal. */
function app(overrides: NodeJS.ProcessEnv = {}) {
  const deps = {
    config,
    db: handle.db,
    temporal: undefined as unknown as Client,
    env: { ...env, ...overrides },
  };
  return new Hono().route('/', mdmRoutes(deps)).route('/', operatorRoutes(deps));
}
const errorOf = async (res: Response) => ((await res.json()) as { error: string }).error;

function postJamf(
  body: unknown,
  authorization: string | null = basic('jamf-hook', 'hook-pass'),
  profile = names.jamf,
  e: NodeJS.ProcessEnv = {},
) {
  return app(e).request(`/jamf/${profile}/scep-challenge`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

async function verifyOnce(profile: string, challenge: string) {
  const verifier = oneTimeChallengeVerifier(handle.db);
  const csr = makeCsr({ subject: [['CN', 'C02X']], challenge });
  const first = await verifier.verify({ profile, transactionId: randomUUID(), csr });
  const second = await verifier.verify({ profile, transactionId: randomUUID(), csr });
  return [first.verdict, second.verdict];
}

describe('Jamf SCEPChallenge webhook', () => {
  it('refuses wrong, missing or malformed credentials with 401', async () => {
    for (const auth of [
      basic('jamf-hook', 'wrong'),
      basic('someone', 'hook-pass'),
      null,
      'Basic !!!',
      'Bearer hook-pass',
    ]) {
      const res = await postJamf(jamfEvent, auth);
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Basic /);
      expect(await errorOf(res)).toBe('wrong or missing webhook credentials');
    }
  });

  it('refuses a body that is not a SCEPChallenge event with 400', async () => {
    expect((await postJamf('{not json')).status).toBe(400);
    const wrongEvent = await postJamf({
      ...jamfEvent,
      webhook: { ...jamfEvent.webhook, webhookEvent: 'ComputerAdded' },
    });
    expect(wrongEvent.status).toBe(400);
    expect(await errorOf(wrongEvent)).toMatch(/webhook\.webhookEvent/);
    expect((await postJamf({ webhook: jamfEvent.webhook, event: {} })).status).toBe(400);
  });

  it('answers 404 for unknown and non-Jamf profiles, 503 when the password is not configured', async () => {
    expect((await postJamf(jamfEvent, undefined, 'no-such-profile')).status).toBe(404);
    expect((await postJamf(jamfEvent, undefined, names.otc)).status).toBe(404);
    const unset = await postJamf(jamfEvent, undefined, names.jamf, { JAMF_WEBHOOK_PASSWORD: '' });
    expect(unset.status).toBe(503);
  });

  it('answers the challenge as text/plain; it verifies once', async () => {
    const res = await postJamf(jamfEvent);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const challenge = await res.text();
    expect(challenge).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const rows = await handle.db
      .select()
      .from(oneTimeChallenges)
      .where(eq(oneTimeChallenges.profile, names.jamf));
    const row = rows.find((r) => r.issuedTo === 'jamf:com.example.scep.C02X');
    expect(row).toBeDefined();
    const ttl = (row!.expiresAt.getTime() - row!.createdAt.getTime()) / 1000;
    expect(ttl).toBeCloseTo(900, 0);
    expect(await verifyOnce(names.jamf, challenge)).toEqual(['approved', 'rejected']);
    // Bound to its profile.
    const again = await (await postJamf(jamfEvent)).text();
    expect(await verifyOnce(names.otc, again)).toEqual(['rejected', 'rejected']);
  });
});

describe('operator challenge endpoint', () => {
  const post = (
    profile: string,
    body: unknown,
    authorization: string | null = 'Bearer op-token',
    e: NodeJS.ProcessEnv = {},
  ) =>
    app(e).request(`/operator/profiles/${profile}/challenges`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(authorization ? { authorization } : {}) },
      body: body === undefined ? '' : JSON.stringify(body),
    });

  it('refuses everything with 503 when OPERATOR_TOKEN is unset', async () => {
    const res = await post(names.otc, {}, 'Bearer op-token', { OPERATOR_TOKEN: undefined });
    expect(res.status).toBe(503);
    expect(await errorOf(res)).toMatch(/OPERATOR_TOKEN is not set/);
  });

  it('refuses a missing or wrong token with 401, before saying anything about profiles', async () => {
    expect((await post(names.otc, {}, null)).status).toBe(401);
    expect((await post(names.otc, {}, 'Bearer nope')).status).toBe(401);
    expect((await post('no-such-profile', {}, 'Bearer nope')).status).toBe(401);
    expect((await post(names.otc, {}, basic('op', 'op-token'))).status).toBe(401);
  });

  it('creates a challenge (201) with the profile TTL or the one asked for; it verifies once', async () => {
    const res = await post(names.otc, undefined);
    expect(res.status).toBe(201);
    const created = (await res.json()) as { challenge: string; expiresAt: string };
    const ttl = (Date.parse(created.expiresAt) - Date.now()) / 1000;
    expect(ttl).toBeGreaterThan(3590);
    expect(ttl).toBeLessThan(3610);
    expect(await verifyOnce(names.otc, created.challenge)).toEqual(['approved', 'rejected']);

    const short = await post(names.otc, { ttlSeconds: 120, issuedTo: 'ticket-42' });
    expect(short.status).toBe(201);
    const shortBody = (await short.json()) as { expiresAt: string };
    expect((Date.parse(shortBody.expiresAt) - Date.now()) / 1000).toBeLessThan(130);

    const jamf = await post(names.jamf, {});
    expect(jamf.status).toBe(201);
  });

  it('binds a challenge to the device it names: it vouches for that device and no other', async () => {
    const res = await post(names.verified, { deviceId: 'laptop-bound-7' });
    expect(res.status).toBe(201);
    const { challenge, deviceId } = (await res.json()) as { challenge: string; deviceId: string };
    expect(deviceId).toBe('laptop-bound-7');
    const verifier = oneTimeChallengeVerifier(handle.db);
    // The CSR names another device: the identity is still the bound one.
    const csr = makeCsr({ subject: [['CN', 'somebody-else']], challenge });
    const verdict = await verifier.verify({ profile: names.verified, transactionId: randomUUID(), csr });
    expect(verdict).toEqual({
      verdict: 'approved',
      identity: {
        deviceId: 'laptop-bound-7',
        vouchedBy: 'one-time-challenge',
        attributes: { id: 'laptop-bound-7' },
      },
    });
  });

  it('refuses an unbound challenge for a profile that accepts only verified identities', async () => {
    const res = await post(names.verified, {});
    expect(res.status).toBe(400);
    expect(await errorOf(res)).toMatch(/name the device \(deviceId\)/);
    expect((await post(names.verified, { deviceId: 'has/slash' })).status).toBe(400);
  });

  it('answers 400 for a bad body, 404 for an unknown profile, 409 for a static-challenge profile', async () => {
    expect((await post(names.otc, { ttlSeconds: 5 })).status).toBe(400);
    expect((await post(names.otc, { unexpected: true })).status).toBe(400);
    expect((await post('no-such-profile', {})).status).toBe(404);
    expect((await post(names.fixed, {})).status).toBe(409);
  });
});
