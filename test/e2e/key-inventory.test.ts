/**
 * The key inventory (activities/keys/, GET /operator/keys): it lists exactly the keys pkcs11-tool
 * finds in each token, with their roles and NIST SP 800-57 states; a signature is counted; a key
 * gone from its token turns `destroyed`, an operator's `compromised` mark survives listings; a key
 * past keys.maxAgeDays (and a certificate within keys.expiryWarningDays) raises its event once.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { and, eq, like } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { InventoryKey } from '../../activities/keys/store.js';
import type { TokenRole } from '../../config/runtime.js';
import { eventOutbox, keyInventory } from '../../db/schema.js';
import { findSoftHsmLibrary } from '../../hsm/softhsm.js';
import { type Pipeline, startPipeline } from '../support/pipeline.js';
import { exec, scepclientEnroll } from '../support/scep-clients.js';

const stack = inject('stack');
const OPERATOR_TOKEN = 'inventory-operator-token';
const bearer = { authorization: `Bearer ${OPERATOR_TOKEN}`, 'content-type': 'application/json' };
const MAX_AGE_DAYS = 400;
const DAY_MS = 86_400_000;
let pipeline: Pipeline;
const testKey = `inventory-test/${randomUUID().slice(0, 8)}`;

beforeAll(async () => {
  Object.assign(process.env, { OPERATOR_TOKEN, KEYS_HOOK_SECRET: 'inventory-hook-secret' });
  pipeline = await startPipeline({
    configure: (config) => {
      config.keys = {
        ...config.keys,
        maxAgeDays: MAX_AGE_DAYS,
        expiryWarningDays: 10,
        // A target, so the events are recorded in the outbox (nobody listens: the test reads the outbox).
        notifications: { webhooks: [{ url: 'http://127.0.0.1:9/keys', secretEnv: 'KEYS_HOOK_SECRET' }] },
      };
    },
  });
});
afterAll(async () => {
  await pipeline?.stop();
});

const inventory = async (): Promise<{ observedAt: string; keys: InventoryKey[] }> => {
  const res = await fetch(`${pipeline.operatorUrl}/operator/keys`, { headers: bearer });
  expect(res.status).toBe(200);
  return res.json() as Promise<{ observedAt: string; keys: InventoryKey[] }>;
};
const tokenLabel = (role: TokenRole) => pipeline.tokens.get(role).tokenLabel;

/** What pkcs11-tool (another PKCS#11 application) sees: the private and secret key labels of a token. */
async function keyLabelsOf(token: string): Promise<string[]> {
  const { code, output } = await exec(
    'pkcs11-tool',
    ['--module', findSoftHsmLibrary(), '--token-label', token, '--login', '--pin', '1234', '--list-objects'],
    { env: { ...process.env, SOFTHSM2_CONF: join(stack.env.SOFTHSM_DIR!, 'softhsm2.conf') } },
  );
  expect(code, output).toBe(0);
  return output
    .split(/\n(?=\S)/)
    .filter((block) => /^(Private|Secret) Key Object/.test(block))
    .map((block) => /label:\s+(.*)/.exec(block)?.[1]?.trim() ?? '')
    .sort();
}

/** Deletes a key pair with pkcs11-tool, as an HSM administrator would. */
async function deleteKeyPair(token: string, label: string): Promise<void> {
  for (const type of ['privkey', 'pubkey']) {
    const { code, output } = await exec(
      'pkcs11-tool',
      [
        ...['--module', findSoftHsmLibrary(), '--token-label', token, '--login', '--pin', '1234'],
        ...['--delete-object', '--type', type, '--label', label],
      ],
      { env: { ...process.env, SOFTHSM2_CONF: join(stack.env.SOFTHSM_DIR!, 'softhsm2.conf') } },
    );
    expect(code, output).toBe(0);
  }
}

describe('key inventory', () => {
  it('lists exactly the keys in each token, with their roles and states', async () => {
    for (const role of ['ra', 'ca', 'data'] as const) {
      const token = tokenLabel(role);
      // Other test files share these tokens and may add a key meanwhile: compare a listing framed by
      // two identical pkcs11-tool listings.
      let listed: string[] = [];
      let direct: string[] = [];
      for (let attempt = 0; attempt < 5; attempt++) {
        const before = await keyLabelsOf(token);
        await pipeline.keyInventory.refresh();
        listed = (await inventory()).keys
          .filter((k) => k.token === token && k.state !== 'destroyed')
          .map((k) => k.label)
          .sort();
        direct = await keyLabelsOf(token);
        if (JSON.stringify(before) === JSON.stringify(direct)) break;
      }
      expect(direct.length).toBeGreaterThan(0);
      expect(listed).toEqual(direct);
    }

    const { keys, observedAt } = await inventory();
    expect(Date.now() - Date.parse(observedAt)).toBeLessThan(10 * 60_000);
    const find = (role: TokenRole, label: string) =>
      keys.find((k) => k.token === tokenLabel(role) && k.label === label);
    const root = find('ca', pipeline.config.rootCa.keyLabel)!;
    expect(root).toMatchObject({ role: 'root-ca', state: 'active', algorithm: 'rsa-2048', tokenRole: 'ca' });
    expect(root.certificate?.subject).toMatch(/Device PKI Test Root CA/);
    expect(Date.parse(root.notAfter!)).toBeGreaterThan(Date.now());
    expect(find('ca', 'issuing-ca/devices')).toMatchObject({ role: 'issuing-ca', state: 'active' });
    expect(find('ra', pipeline.config.ra.keyLabel)).toMatchObject({
      role: 'ra',
      state: 'active',
      usages: ['sign', 'decrypt'],
    });
    expect(find('ra', 'ocsp/issuing-ca/devices')).toMatchObject({ role: 'ocsp-responder', state: 'active' });
    expect(find('data', 'field-encryption')).toMatchObject({
      role: 'field-encryption',
      algorithm: 'aes-256',
      state: 'active',
      usages: ['decrypt', 'encrypt'],
    });
    expect(find('data', 'payload-kek/1')).toMatchObject({ role: 'payload-kek', state: 'active' });
  });

  it('counts the signatures a key makes: exactly, for a key of its own; an enrollment counts on the issuing CA', async () => {
    const ca = pipeline.tokens.get('ca');
    await ca.generateKeyPair(testKey, 'ec-p256', 'signing');
    await pipeline.keyInventory.refresh();
    const keyOf = async (label: string) =>
      (await inventory()).keys.find((k) => k.token === ca.tokenLabel && k.label === label)!;
    const fresh = await keyOf(testKey);
    expect(fresh).toMatchObject({ role: 'unknown', algorithm: 'ec-p256', state: 'active', signatures: 0 });
    // Made now: CKA_START_DATE is today.
    expect(fresh.createdAt.slice(0, 10)).toBe(new Date().toISOString().slice(0, 10));

    const signer = await ca.signer(testKey);
    for (let i = 0; i < 3; i++) await signer.sign(new TextEncoder().encode(`data ${i}`), 'SHA-256');
    await pipeline.keyInventory.flush();
    expect((await keyOf(testKey)).signatures).toBe(3);
    // Prometheus sees the same count on the API's /metrics.
    const metrics = await (await fetch(`${pipeline.operatorUrl}/metrics`, { headers: bearer })).text();
    expect(metrics).toContain(
      `pki_key_signatures_total{token="${ca.tokenLabel}",label="${testKey}",role="unknown"} 3`,
    );

    const before = (await keyOf('issuing-ca/devices')).signatures;
    const run = await scepclientEnroll({
      url: `${pipeline.url}/scep`,
      challenge: 'test-challenge',
      cn: `inv-${randomUUID().slice(0, 8)}`,
    });
    expect(run.code, run.output).toBe(0);
    await pipeline.keyInventory.flush();
    expect((await keyOf('issuing-ca/devices')).signatures).toBeGreaterThan(before);
  });

  it('an operator marks a key compromised; a key deleted from its token turns destroyed', async () => {
    const token = tokenLabel('ca');
    const bad = await fetch(`${pipeline.operatorUrl}/operator/keys/compromised`, {
      method: 'POST',
      headers: bearer,
      body: JSON.stringify({ token, label: 'no-such-key' }),
    });
    expect(bad.status).toBe(404);
    const marked = await fetch(`${pipeline.operatorUrl}/operator/keys/compromised`, {
      method: 'POST',
      headers: bearer,
      body: JSON.stringify({ token, label: testKey, by: 'alice', note: 'test' }),
    });
    expect(marked.status, await marked.clone().text()).toBe(200);
    expect(await marked.json()).toMatchObject({ label: testKey, state: 'compromised' });
    await pipeline.keyInventory.refresh();
    const after = (await inventory()).keys.find((k) => k.token === token && k.label === testKey);
    expect(after?.state).toBe('compromised');

    await deleteKeyPair(token, testKey);
    await pipeline.keyInventory.refresh();
    const gone = (await inventory()).keys.find((k) => k.token === token && k.label === testKey);
    expect(gone?.state).toBe('destroyed');

    // Destroyed long ago: its last sighting must not make the whole inventory look stale.
    await pipeline.db.db
      .update(keyInventory)
      .set({ lastSeenAt: new Date(Date.now() - 2 * DAY_MS) })
      .where(and(eq(keyInventory.tokenLabel, token), eq(keyInventory.keyLabel, testKey)));
    const { observedAt } = await inventory();
    expect(Date.now() - Date.parse(observedAt)).toBeLessThan(10 * 60_000);
  });

  it('a key past keys.maxAgeDays raises key.age_exceeded once; a certificate near its end raises key.expiring', async () => {
    const later = new Date(Date.now() + (MAX_AGE_DAYS + 1) * DAY_MS);
    await pipeline.keyInventory.refresh(later);
    await pipeline.keyInventory.refresh(later);
    const token = tokenLabel('ca');
    const events = await pipeline.db.db
      .select()
      .from(eventOutbox)
      .where(and(eq(eventOutbox.profile, '*'), like(eventOutbox.deviceId, `${token}/%`)));
    const ofRoot = (type: string) =>
      events.filter((e) => e.type === type && e.deviceId === `${token}/${pipeline.config.rootCa.keyLabel}`);
    expect(ofRoot('key.age_exceeded')).toHaveLength(1);
    expect(ofRoot('key.age_exceeded')[0]!.payload).toMatchObject({
      type: 'key.age_exceeded',
      data: { role: 'root-ca', maxAgeDays: MAX_AGE_DAYS },
    });
    // The test root is valid 30 days: 401 days on, it is past its end too.
    expect(ofRoot('key.expiring')).toHaveLength(1);
    // Listed at real time again, every key is back to its state of today.
    await pipeline.keyInventory.refresh();
    const root = (await inventory()).keys.find(
      (k) => k.token === token && k.label === pipeline.config.rootCa.keyLabel,
    );
    expect(root?.state).toBe('active');
  });
});

describe('console Keys page', () => {
  it('shows the inventory: one row per key with its state', async () => {
    const login = await fetch(`${pipeline.operatorUrl}/console/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { origin: pipeline.operatorUrl, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: OPERATOR_TOKEN, name: 'alice', next: '/console/keys' }),
    });
    expect(login.status).toBe(303);
    const cookie = login.headers
      .getSetCookie()
      .map((c) => c.split(';')[0])
      .join('; ');
    const page = await fetch(`${pipeline.operatorUrl}/console/keys`, { headers: { cookie } });
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toMatch(/<a href="\/console\/keys" class="active">Keys<\/a>/);
    const rootRow = new RegExp(
      `<tr data-token="${tokenLabel('ca')}" data-label="${pipeline.config.rootCa.keyLabel}" data-state="active">`,
    );
    expect(html).toMatch(rootRow);
    const rows = html.match(/<tr data-token=/g) ?? [];
    expect(rows.length).toBe((await inventory()).keys.length);
  });
});
