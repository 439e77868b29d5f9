import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq } from 'drizzle-orm';
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  type DeviceKey,
  generateDeviceKeys,
  openDeviceKeyToken,
  ScepClient,
} from '../../bench/scep-client/index.js';
import { PROJECT_ROOT } from '../../config/load.js';
import { profileSchema } from '../../config/profile-types.js';
import { certificates } from '../../db/schema.js';
import { toPem } from '../../pki/pem.js';
import { type FakeWebhook, startFakeWebhook } from '../fakes/challenge-webhook.js';
import { type SmtpSink, startSmtpSink } from '../fakes/smtp-sink.js';
import { htmlOf } from '../support/mail.js';
import { certsFromPkcs7, openssl } from '../support/openssl.js';
import { type Pipeline, startPipeline } from '../support/pipeline.js';
import { waitForWorkflows } from '../support/temporal.js';

/**
 * The operator console in a real browser (Debian chromium driven by playwright-core): an operator
 * logs in, sees what waits for them, retries an escalated enrollment (the device's poll then gets its
 * certificate), finds a device and revokes it (OCSP then says revoked). Screenshots of every page are
 * kept in test-artifacts/console/ (the README shows them).
 */
const OPERATOR_TOKEN = 'console-e2e-operator-token';
const HOOK_SECRET = Buffer.from('console-hook-secret').toString('base64');
const ARTIFACTS = join(PROJECT_ROOT, 'test-artifacts', 'console');
const CHROMIUM_FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

let pipeline: Pipeline;
let hook: FakeWebhook;
let mail: SmtpSink;
let browser: Browser;
let context: BrowserContext;
let page: Page;
let keys: DeviceKey[];
let deviceToken: Awaited<ReturnType<typeof openDeviceKeyToken>>;
let work: string;

const shot = async (name: string) => {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
};

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'e2e-console-'));
  mkdirSync(ARTIFACTS, { recursive: true });
  const stack = inject('stack');
  // Device keys in a token of their own, made before this process opens any (SoftHSM reads tokens once).
  deviceToken = await openDeviceKeyToken(stack.env.SOFTHSM_DIR!, 'console-devices');
  keys = await generateDeviceKeys(2, deviceToken);
  hook = await startFakeWebhook({ webhookId: 'console-hook', secretBase64: HOOK_SECRET });
  mail = await startSmtpSink();
  Object.assign(process.env, { OPERATOR_TOKEN, CONSOLE_HOOK_SECRET: HOOK_SECRET });
  pipeline = await startPipeline({
    enrollmentWaitMs: 1_000,
    configure: (config) => {
      // The daily report is e-mailed to the workplace team (the SMTP sink).
      config.reports.notifications = {
        webhooks: [],
        email: {
          smtpHost: mail.host,
          smtpPort: mail.port,
          secure: false,
          from: 'pki@example.test',
          to: ['workplace@example.test'],
        },
      };
      const base = config.profiles.find((p) => p.name === 'devices')!;
      config.profiles.splice(0, config.profiles.length, base);
      config.profiles.push(
        profileSchema.parse({
          ...base,
          name: 'console',
          mdm: {
            type: 'challenge-webhook',
            url: hook.url,
            secretEnv: 'CONSOLE_HOOK_SECRET',
            webhookId: 'console-hook',
          },
          ca: {
            ...base.ca,
            keyLabel: 'issuing-ca/console',
            subject: [
              ['CN', 'Console Test Issuing CA'],
              ['O', 'Device PKI Tests'],
            ],
          },
          // Two quick attempts at the MDM, then an operator is asked.
          escalation: {
            maxAttempts: 2,
            initialRetrySeconds: 0.2,
            maxRetryIntervalSeconds: 0.5,
            deadlineSeconds: 600,
          },
        }),
      );
    },
  });
  process.env.TEMPORAL_UI_URL = 'http://127.0.0.1:8233';
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_FLAGS });
  // The operator listener's certificate chains to the test root, which this browser does not know.
  context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 800 } });
  page = await context.newPage();
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await pipeline?.stop();
  await hook?.close();
  await mail?.close();
  await deviceToken?.close();
});

describe('the operator console in a browser', () => {
  it('asks for a login, refuses a wrong token, and lets the operator in', async () => {
    await page.goto(`${pipeline.operatorUrl}/console/queue`);
    expect(new URL(page.url()).pathname).toBe('/console/login');
    await shot('login');
    await page.fill('input[name=name]', 'alice');
    await page.fill('input[name=token]', 'not-the-token');
    await page.click('button[type=submit]');
    await expect.poll(() => page.textContent('[role=status]')).toContain('wrong operator token');

    await page.fill('input[name=name]', 'alice');
    await page.fill('input[name=token]', OPERATOR_TOKEN);
    await page.click('button[type=submit]');
    // Back where the operator was going.
    expect(new URL(page.url()).pathname).toBe('/console/queue');
    expect(await page.textContent('[data-testid=operator]')).toBe('alice');
  });

  it('an escalated enrollment: counted on the overview, retried from the queue, the device polls its certificate', async () => {
    const scep = await ScepClient.connect({
      url: `${pipeline.url}/scep/console`,
      pollIntervalMs: 500,
      pollTimeoutMs: 120_000,
    });
    try {
      // The MDM's webhook is down for both attempts: the enrollment escalates, the device polls.
      hook.knobs.decisions.set('console-challenge', { allow: true });
      hook.knobs.failNext('500', 2);
      const enrolled = scep.enroll({
        key: keys[0]!,
        commonName: 'console-laptop',
        challengePassword: 'console-challenge',
      });
      const [escalated] = await waitForWorkflows(
        pipeline.client,
        'WorkflowType="enrollment" AND DeviceId="console-laptop" AND PkiStatus="Escalated"',
        1,
        30_000,
      );

      await page.goto(`${pipeline.operatorUrl}/console`);
      expect(await page.textContent('[data-testid=escalated-count] .n')).toBe('1');
      expect(await page.textContent('[data-testid=awaiting-count] .n')).toBe('0');
      await shot('overview-escalation');

      await page.click('[data-testid=escalated-count]');
      const row = page.locator(`tr[data-workflow-id="${escalated!.workflowId}"]`);
      expect(await row.locator('td').first().textContent()).toBe('console-laptop');
      expect(await row.textContent()).toContain('verify');
      // The link into the Temporal Web UI for this very workflow.
      const href = await row.locator('a', { hasText: 'Web UI' }).getAttribute('href');
      expect(href).toBe(
        `http://127.0.0.1:8233/namespaces/${pipeline.client.options.namespace}/workflows/${encodeURIComponent(escalated!.workflowId)}`,
      );
      await shot('queue');

      await row.locator('button', { hasText: 'Retry' }).click();
      expect(await page.textContent('[role=status]')).toContain('retry sent');
      const result = await enrolled;
      expect(result.status).toBe('SUCCESS');
      // Recorded under the name the operator logged in with, as the token's holder.
      const [done] = await waitForWorkflows(
        pipeline.client,
        `WorkflowId="${escalated!.workflowId}" AND ExecutionStatus="Completed" AND PkiStatus="Issued"`,
        1,
      );
      expect(done).toBeDefined();
    } finally {
      scep.close();
    }
  });

  it('finds a device, shows its certificate and audit trail, and revokes it: OCSP says revoked', async () => {
    await page.goto(`${pipeline.operatorUrl}/console/devices`);
    await page.fill('input[name=q]', 'console-lap');
    await page.click('button:has-text("Search")');
    await page.click('[data-testid=devices] a:has-text("console-laptop")');
    expect(new URL(page.url()).pathname).toBe('/console/devices/console/console-laptop');
    const [cert] = await pipeline.db.db
      .select()
      .from(certificates)
      .where(eq(certificates.deviceId, 'console-laptop'));
    expect(await page.textContent('[data-testid=certificates]')).toContain(cert!.serialHex);
    expect(await page.textContent('[data-testid=certificates]')).toContain('valid');
    expect(await page.textContent('[data-testid=audit]')).toContain('token:alice');
    await shot('device');

    await page.selectOption('select[name=reason]', 'keyCompromise');
    await page.click('button:has-text("Revoke every valid certificate")');
    expect(await page.textContent('[role=status]')).toContain('revoke sent');
    await expect
      .poll(
        async () =>
          (
            await pipeline.db.db
              .select()
              .from(certificates)
              .where(eq(certificates.serialHex, cert!.serialHex))
          )[0]?.status,
        { timeout: 30_000 },
      )
      .toBe('revoked');
    await page.reload();
    expect(await page.textContent('[data-testid=certificates]')).toContain('revoked (keyCompromise)');
    await shot('device-revoked');

    // A relying party asks OCSP about the certificate the device got.
    const ca = await fetch(`${pipeline.url}/scep/console?operation=GetCACert`);
    const [, issuing, root] = await certsFromPkcs7(new Uint8Array(await ca.arrayBuffer()), work);
    const file = (name: string, content: string) => {
      const path = join(work, name);
      writeFileSync(path, content);
      return path;
    };
    const ocsp = await openssl([
      'ocsp',
      '-issuer',
      file('issuing.pem', issuing!),
      '-cert',
      file('device.pem', toPem(cert!.der)),
      '-url',
      `${pipeline.url}/ocsp`,
      '-CAfile',
      file('chain.pem', `${issuing}\n${root}\n`),
    ]);
    expect(ocsp.code, ocsp.output).toBe(0);
    expect(ocsp.output).toMatch(/: revoked/);
    expect(ocsp.output).toMatch(/Reason: keyCompromise/);
  });

  it('runs the daily report from the overview and shows its categories for the profile', async () => {
    await page.goto(`${pipeline.operatorUrl}/console`);
    await page.click('button:has-text("Run the daily report now")');
    expect(await page.textContent('[role=status]')).toContain('daily report run');
    // This profile is this file's alone: one device obtained a certificate, was revoked, holds none.
    const row = page.locator('[data-testid=report-profiles] tr[data-profile=console]');
    const count = async (category: string) => row.locator(`td[data-category=${category}]`).textContent();
    expect(await count('obtained')).toBe('1');
    expect(await count('renewSoon')).toBe('0');
    expect(await count('failed')).toBe('0');
    expect(await count('notRenewedInTime')).toBe('0');
    expect(await count('noValidCertificate')).toBe('1');
    expect(await page.locator('.charts svg').count()).toBe(2);
    await shot('overview');
    // The CSV behind the link carries the same row.
    const href = await page.getAttribute('a[href$=".csv"]', 'href');
    // Fetched with the browser's own session (the context's cookies).
    const csv = await (await context.request.get(new URL(href!, page.url()).toString())).text();
    const header = csv.split(/\r?\n/)[0]!.split(',');
    const consoleRow = csv
      .split(/\r?\n/)
      .find((line) => line.startsWith('console,'))!
      .split(',');
    const column = (name: string) => consoleRow[header.indexOf(name)];
    expect(column('obtained')).toBe('1');
    expect(column('no_valid_certificate')).toBe('1');

    // The e-mail the run sent, as a mail client shows it: the same figures and both charts.
    await expect.poll(() => mail.messages.length, { timeout: 10_000 }).toBe(1);
    const email = await context.newPage();
    await email.setContent(await htmlOf(mail.messages[0]!));
    expect(await email.locator('svg').count()).toBe(2);
    expect(await email.locator('tr', { hasText: 'console' }).first().textContent()).toMatch(
      /console\s*1\s*0\s*0\s*0\s*1/,
    );
    await email.screenshot({ path: join(ARTIFACTS, 'report-email.png'), fullPage: true });
    await email.close();
  });

  it('"refused today" opens the Web UI on today\'s refusals', async () => {
    const scep = await ScepClient.connect({ url: `${pipeline.url}/scep/console` });
    try {
      // The MDM's webhook does not know this challenge: refused.
      const refused = await scep.enroll({
        key: keys[1]!,
        commonName: 'console-stranger',
        challengePassword: 'guessed',
      });
      expect(refused.status).toBe('FAILURE');
    } finally {
      scep.close();
    }
    await page.goto(`${pipeline.operatorUrl}/console`);
    const link = await page.getAttribute('[data-testid=saved-views] a:has-text("refused today")', 'href');
    const opened = await context.request.get(new URL(link!, page.url()).toString(), { maxRedirects: 0 });
    expect(opened.status()).toBe(303);
    const target = new URL(opened.headers().location!);
    expect(`${target.origin}${target.pathname}`).toBe(
      `http://127.0.0.1:8233/namespaces/${pipeline.client.options.namespace}/workflows`,
    );
    const query = target.searchParams.get('query')!;
    expect(query).toContain(`CloseTime >= "${new Date().toISOString().slice(0, 10)}T00:00:00Z"`);
    const [listed] = await waitForWorkflows(pipeline.client, `${query} AND DeviceId="console-stranger"`, 1);
    expect(listed).toBeDefined();
  });

  it('lists the keys of every token, the issuing CA of this profile among them', async () => {
    await page.goto(`${pipeline.operatorUrl}/console`);
    await page.click('header a:has-text("Keys")');
    // The issuing CA's key, in the CA token (other tokens hold only copies of its certificate).
    const row = page.locator(
      `[data-testid=keys] tr[data-token="${process.env.HSM_CA_TOKEN_LABEL}"][data-label="issuing-ca/console"]`,
    );
    expect(await row.count()).toBe(1);
    expect(await row.getAttribute('data-state')).toBe('active');
    await shot('keys');

    // An operator's finding: a key of its own in the CA token, marked compromised from the page.
    const ca = pipeline.tokens.get('ca');
    await ca.generateKeyPair('console-suspect-key', 'ec-p256', 'signing');
    await pipeline.keyInventory.refresh();
    await page.reload();
    const suspect = page.locator(
      `[data-testid=keys] tr[data-token="${ca.tokenLabel}"][data-label="console-suspect-key"]`,
    );
    expect(await suspect.getAttribute('data-state')).toBe('active');
    await suspect.locator('input[name=note]').fill('found on a stolen laptop');
    await suspect.locator('button', { hasText: 'Mark compromised' }).click();
    expect(await page.textContent('[role=status]')).toContain('console-suspect-key marked compromised');
    expect(await suspect.getAttribute('data-state')).toBe('compromised');
  });

  it('refuses a form posted from another site, and a console page without a session', async () => {
    const cookies = await context.cookies(`${pipeline.operatorUrl}/console`);
    const session = cookies.find((c) => c.name === 'pki_console');
    expect(session?.httpOnly).toBe(true);
    expect(session?.sameSite).toBe('Strict');
    // A cross-site form post carrying the operator's cookie (as a browser would without SameSite).
    const forged = await fetch(`${pipeline.operatorUrl}/console/devices/console/console-laptop/readmit`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        origin: 'https://attacker.example',
        cookie: `pki_console=${session!.value}`,
      },
      body: '',
      redirect: 'manual',
    });
    expect(forged.status).toBe(403);
    const anonymous = await fetch(`${pipeline.operatorUrl}/console/devices`, { redirect: 'manual' });
    expect(anonymous.status).toBe(303);
    expect(anonymous.headers.get('location')).toBe('/console/login?next=%2Fconsole%2Fdevices');

    // A session token forged with a guessed key (the JWT's shape is public): not a session.
    const [header, payload] = session!.value.split('.');
    const forgedSession = `${header}.${payload}.${Buffer.alloc(32, 7).toString('base64url')}`;
    const withForged = await fetch(`${pipeline.operatorUrl}/console/devices`, {
      headers: { cookie: `pki_console=${forgedSession}` },
      redirect: 'manual',
    });
    expect(withForged.status).toBe(303);
    expect(withForged.headers.get('location')).toMatch(/^\/console\/login/);

    // A phishing link that logs the operator in and sends them elsewhere: the console stays home.
    const login = await fetch(`${pipeline.operatorUrl}/console/login`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        origin: new URL(pipeline.operatorUrl).origin,
      },
      body: new URLSearchParams({ name: 'alice', token: OPERATOR_TOKEN, next: '//attacker.example/x' }),
      redirect: 'manual',
    });
    expect(login.status).toBe(303);
    expect(login.headers.get('location')).toBe('/console');
  });

  it('a session stops counting once operators must present certificates', async () => {
    const cookie = (await context.cookies(`${pipeline.operatorUrl}/console`)).find(
      (c) => c.name === 'pki_console',
    )!;
    const page = () =>
      fetch(`${pipeline.operatorUrl}/console/devices`, {
        headers: { cookie: `pki_console=${cookie.value}` },
        redirect: 'manual',
      });
    expect((await page()).status).toBe(200);
    process.env.OPERATOR_AUTH = 'client-certificate';
    try {
      const refused = await page();
      expect(refused.status).toBe(303);
      expect(refused.headers.get('location')).toMatch(/^\/console\/login/);
    } finally {
      delete process.env.OPERATOR_AUTH;
    }
  });

  it('guessing the operator token at the login form is slowed to 10 tries a minute', async () => {
    // Run last: this client's login budget is spent afterwards.
    const guess = () =>
      fetch(`${pipeline.operatorUrl}/console/login`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          origin: new URL(pipeline.operatorUrl).origin,
        },
        body: new URLSearchParams({ name: 'mallory', token: `guess-${Math.random()}`, next: '/console' }),
        redirect: 'manual',
      });
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) statuses.push((await guess()).status);
    // Earlier logins of this file spent some of the burst: the guesses are refused (401) until the
    // budget is gone, then rate limited (429), and stay so.
    expect(statuses).toContain(401);
    expect(statuses.at(-1)).toBe(429);
    expect(statuses.slice(statuses.indexOf(429))).toEqual(
      statuses.slice(statuses.indexOf(429)).map(() => 429),
    );
  });
});
