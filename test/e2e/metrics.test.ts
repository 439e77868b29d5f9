import { execFile, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq, like, min } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Profile, profileSchema } from '../../config/profile-types.js';
import { certificates, crls, enrollments } from '../../db/schema.js';
import { Readiness, serveHealth } from '../../runtime/readiness.js';
import { freePort } from '../../scripts/free-port.js';
import { enrollmentWorkflowId } from '../../workflows/definitions.js';
import { type FakeWebhook, startFakeWebhook } from '../fakes/challenge-webhook.js';
import { postOpensslPkcsReq } from '../support/certrep-attributes.js';
import { makeDevice } from '../support/openssl-scep.js';
import { type Pipeline, startPipeline } from '../support/pipeline.js';
import { parseExposition, type Sample, sampleValue } from '../support/prometheus.js';
import { scepclientEnroll } from '../support/scep-clients.js';
import { startWorkerProcess } from '../support/worker-process.js';

/**
 * /metrics after a scripted set of enrollments: successes, a wrong challenge, a policy refusal, an
 * MDM refusal and an MDM outage that escalates. The exposition is parsed and every count is exact;
 * the fleet counts equal what the database holds, and move when an operator rejects the escalation.
 */
const OPERATOR_TOKEN = 'metrics-operator-token';
const hookSecret = Buffer.from('metrics-hook-secret').toString('base64');
const work = mkdtempSync(join(tmpdir(), 'e2e-metrics-'));
let pipeline: Pipeline;
let hook: FakeWebhook;
let temporalMetricsPort: number;
const startedAt = Math.floor(Date.now() / 1000);

beforeAll(async () => {
  hook = await startFakeWebhook({ webhookId: 'metrics-hook', secretBase64: hookSecret });
  temporalMetricsPort = await freePort();
  // Read when the first worker installs Temporal's runtime (once per process: this file's).
  Object.assign(process.env, {
    OPERATOR_TOKEN,
    METRICS_HOOK_SECRET: hookSecret,
    TEMPORAL_METRICS_PORT: String(temporalMetricsPort),
  });
  pipeline = await startPipeline({
    configure: (config) => {
      const base = config.profiles.find((p) => p.name === 'devices')!;
      const profile = (name: string, extra: Record<string, unknown>): Profile =>
        profileSchema.parse({
          ...base,
          name,
          ca: { ...base.ca, keyLabel: `issuing-ca/${name}`, subject: [['CN', `Issuing CA ${name}`]] },
          ...extra,
        });
      config.profiles.push(
        profile('metrics-open', { mdm: { type: 'static-challenge', challenge: 'metrics-challenge' } }),
        profile('metrics-strict', {
          mdm: { type: 'static-challenge', challenge: 'strict-challenge' },
          template: { ...base.template, minRsaBits: 4096 },
        }),
        profile('metrics-hook', {
          mdm: {
            type: 'challenge-webhook',
            url: hook.url,
            secretEnv: 'METRICS_HOOK_SECRET',
            webhookId: 'metrics-hook',
          },
          // One failed attempt escalates at once: the outage below becomes an operator's case.
          escalation: { maxAttempts: 1, initialRetrySeconds: 0.1, maxRetryIntervalSeconds: 0.1 },
        }),
      );
    },
  });
}, 180_000);
afterAll(async () => {
  await pipeline?.stop();
  await hook?.close();
});

const enroll = (profile: string, cn: string, challenge: string) =>
  scepclientEnroll({ url: `${pipeline.url}/scep/${profile}`, challenge, cn });

/** GET /metrics with a bearer token (null: none). */
async function scrape(token: string | null = OPERATOR_TOKEN): Promise<Response> {
  return fetch(`${pipeline.operatorUrl}/metrics`, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
}

async function samples(): Promise<Sample[]> {
  const response = await scrape();
  expect(response.status).toBe(200);
  return parseExposition(await response.text());
}

/** A scraped value, polled until it matches (what reaches visibility or the database asynchronously). */
const scraped = (name: string, labels: Record<string, string>) =>
  expect.poll(async () => sampleValue(await samples(), name, labels), { timeout: 30_000, interval: 250 });

const enrollmentsTotal = (all: Sample[], profile: string, verifier: string, outcome: string) =>
  sampleValue(all, 'pki_enrollments_total', { profile, verifier, outcome });

describe('/metrics on the operator listener', () => {
  it('runs the scripted enrollments', async () => {
    const runs = await Promise.all([
      enroll('metrics-open', 'm-ok-1', 'metrics-challenge'),
      enroll('metrics-open', 'm-ok-2', 'metrics-challenge'),
      enroll('metrics-open', 'm-wrong', 'not-the-challenge'),
      enroll('metrics-strict', 'm-weak-key', 'strict-challenge'),
    ]);
    const [ok1, ok2, wrongChallenge, weakKey] = runs.map((r) => r.code);
    expect([ok1, ok2]).toEqual([0, 0]);
    expect(wrongChallenge).not.toBe(0);
    expect(weakKey).not.toBe(0);
    hook.knobs.decisions.set('hook-ok', { allow: true });
    hook.knobs.decisions.set('hook-no', { allow: false, message: 'device is quarantined' });
    expect((await enroll('metrics-hook', 'm-hook-ok', 'hook-ok')).code).toBe(0);
    expect((await enroll('metrics-hook', 'm-hook-no', 'hook-no')).code).not.toBe(0);
    // The MDM is down for the next call: with one attempt allowed, the enrollment escalates.
    hook.knobs.failNext('500', 1);
    const pending = await postOpensslPkcsReq({
      scepUrl: `${pipeline.url}/scep/metrics-hook`,
      device: await makeDevice(work, 'm-hook-down', 'hook-ok'),
      transactionId: 'metrics-escalated-1',
      dir: work,
    });
    expect(pending.attributes).toMatchObject({ pkiStatus: '3' });
  }, 180_000);

  it('refuses a scrape without the operator token, and the public listener has no /metrics', async () => {
    expect((await scrape(null)).status).toBe(401);
    expect((await scrape('wrong-token')).status).toBe(401);
    expect((await fetch(`${pipeline.url}/metrics`)).status).toBe(404);
  });

  it('counts enrollments by profile, verifier and outcome, exactly as recorded', async () => {
    // The escalation reaches visibility asynchronously: wait for it, then read everything once.
    await scraped('pki_escalations_open', { profile: 'metrics-hook' }).toBe(1);
    const all = await samples();
    expect(enrollmentsTotal(all, 'metrics-open', 'static-challenge', 'issued')).toBe(2);
    expect(enrollmentsTotal(all, 'metrics-open', 'static-challenge', 'failed')).toBe(1);
    expect(enrollmentsTotal(all, 'metrics-strict', 'static-challenge', 'failed')).toBe(1);
    expect(enrollmentsTotal(all, 'metrics-strict', 'static-challenge', 'issued')).toBeUndefined();
    expect(enrollmentsTotal(all, 'metrics-hook', 'challenge-webhook', 'issued')).toBe(1);
    expect(enrollmentsTotal(all, 'metrics-hook', 'challenge-webhook', 'failed')).toBe(1);
    // The run's database is shared with the other test files: count this file's profiles only.
    const total = all
      .filter((s) => s.name === 'pki_enrollments_total' && s.labels.profile!.startsWith('metrics-'))
      .reduce((sum, s) => sum + s.value, 0);
    const rows = await pipeline.db.db
      .select({ id: enrollments.id })
      .from(enrollments)
      .where(like(enrollments.profile, 'metrics-%'));
    expect(total).toBe(rows.length);
    expect(total).toBe(6);

    // This process ran the workers: its own metrics saw each verification and each recorded outcome.
    const mdm = (verifier: string, result: string) =>
      sampleValue(all, 'pki_mdm_requests_total', { verifier, result });
    expect(mdm('static-challenge', 'approved')).toBe(3); // the weak key passed the MDM, not the policy
    expect(mdm('static-challenge', 'rejected')).toBe(1);
    expect(mdm('challenge-webhook', 'approved')).toBe(1);
    expect(mdm('challenge-webhook', 'rejected')).toBe(1);
    expect(mdm('challenge-webhook', 'error')).toBe(1);
    const durations = (profile: string, outcome: string) =>
      sampleValue(all, 'pki_enrollment_duration_seconds_count', { profile, outcome });
    expect(durations('metrics-open', 'issued')).toBe(2);
    expect(durations('metrics-open', 'failed')).toBe(1);
    expect(durations('metrics-strict', 'failed')).toBe(1);
    expect(durations('metrics-hook', 'issued')).toBe(1);
    for (const op of ['sign', 'decrypt', 'seal'])
      expect(sampleValue(all, 'pki_hsm_operation_duration_seconds_count', { op })).toBeGreaterThan(0);

    expect(sampleValue(all, 'pki_metrics_source_up', { source: 'database' })).toBe(1);
    expect(sampleValue(all, 'pki_metrics_source_up', { source: 'temporal' })).toBe(1);
  });

  it('reports certificates by state, the earliest expiry, CRL nextUpdate and the open escalation', async () => {
    const all = await samples();
    expect(sampleValue(all, 'pki_certificates', { profile: 'metrics-open', state: 'valid' })).toBe(2);
    expect(sampleValue(all, 'pki_certificates', { profile: 'metrics-hook', state: 'valid' })).toBe(1);
    expect(sampleValue(all, 'pki_certificates', { profile: 'metrics-strict' })).toBeUndefined();

    const [earliest] = await pipeline.db.db
      .select({ notAfter: min(certificates.notAfter) })
      .from(certificates)
      .where(eq(certificates.profile, 'metrics-open'));
    expect(
      sampleValue(all, 'pki_certificate_earliest_expiry_timestamp_seconds', { profile: 'metrics-open' }),
    ).toBe(Math.floor(earliest!.notAfter!.getTime() / 1000));

    const [crl] = await pipeline.db.db
      .select({ nextUpdate: crls.nextUpdate })
      .from(crls)
      .where(eq(crls.issuingCa, 'issuing-ca/metrics-open'));
    expect(sampleValue(all, 'pki_crl_next_update_timestamp_seconds', { ca: 'issuing-ca/metrics-open' })).toBe(
      Math.floor(crl!.nextUpdate.getTime() / 1000),
    );

    expect(sampleValue(all, 'pki_escalations_open', { profile: 'metrics-open' })).toBe(0);
    const since = sampleValue(all, 'pki_escalation_oldest_timestamp_seconds', { profile: 'metrics-hook' });
    expect(since).toBeGreaterThanOrEqual(startedAt);
    expect(since).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000));
  });

  it('moves the fleet counts when an operator rejects the escalation', async () => {
    const workflowId = enrollmentWorkflowId('metrics-hook', 'metrics-escalated-1');
    const rejected = await fetch(
      `${pipeline.operatorUrl}/operator/enrollments/${encodeURIComponent(workflowId)}/reject`,
      {
        method: 'POST',
        headers: { authorization: `Bearer ${OPERATOR_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify({ reason: 'MDM outage, enroll again', by: 'alice' }),
      },
    );
    expect(rejected.status).toBe(202);
    await scraped('pki_enrollments_total', {
      profile: 'metrics-hook',
      verifier: 'challenge-webhook',
      outcome: 'failed',
    }).toBe(2);
    await scraped('pki_escalations_open', { profile: 'metrics-hook' }).toBe(0);
    const all = await samples();
    expect(
      sampleValue(all, 'pki_escalation_oldest_timestamp_seconds', { profile: 'metrics-hook' }),
    ).toBeUndefined();
    expect(
      sampleValue(all, 'pki_enrollment_duration_seconds_count', {
        profile: 'metrics-hook',
        outcome: 'failed',
      }),
    ).toBe(2);
  });

  it('passes promtool check metrics (the pki_* families this product defines)', async () => {
    // prom-client's own nodejs_active_*_total gauges fail promtool's naming lint: not ours to rename.
    const text = (await (await scrape()).text())
      .split('\n')
      .filter((line) => /^(# (HELP|TYPE) )?pki_/.test(line))
      .join('\n');
    expect(text).toContain('# TYPE pki_enrollments_total counter');
    const result = await promtool(['check', 'metrics'], `${text}\n`);
    expect(result.code, result.output).toBe(0);
  });
});

describe('a real Prometheus', () => {
  it('scrapes the API over TLS with the operator token, and the Temporal SDK endpoint, storing the same counts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'e2e-prometheus-'));
    writeFileSync(join(dir, 'operator-token'), OPERATOR_TOKEN);
    copyFileSync('ops/prometheus/alerts.yml', join(dir, 'alerts.yml'));
    writeFileSync(
      join(dir, 'prometheus.yml'),
      [
        'global: { scrape_interval: 1s, evaluation_interval: 1s }',
        'rule_files: [alerts.yml]',
        'scrape_configs:',
        '  - job_name: api',
        '    scheme: https',
        `    tls_config: { ca_file: "${process.env.NODE_EXTRA_CA_CERTS}" }`,
        '    authorization: { credentials_file: operator-token }',
        `    static_configs: [{ targets: ["${new URL(pipeline.operatorUrl).host}"] }]`,
        '  - job_name: temporal-sdk',
        `    static_configs: [{ targets: ["127.0.0.1:${temporalMetricsPort}"] }]`,
        '',
      ].join('\n'),
    );
    const port = await freePort();
    const prometheus = spawn(
      'prometheus',
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    prometheus.stdout!.on('data', (d) => (output += d));
    prometheus.stderr!.on('data', (d) => (output += d));
    const exited = new Promise((resolve) => prometheus.once('exit', resolve));
    type Result = Array<{ metric: Record<string, string>; value: [number, string] }>;
    const query = async (q: string): Promise<Result> => {
      const response = await fetch(
        `http://127.0.0.1:${port}/api/v1/query?query=${encodeURIComponent(q)}`,
      ).catch(() => undefined);
      if (!response?.ok) return [];
      return ((await response.json()) as { data: { result: Result } }).data.result;
    };
    try {
      await expect
        .poll(async () => (await query('up == 1')).map((r) => r.metric.job).sort(), {
          timeout: 30_000,
          interval: 500,
        })
        .toEqual(['api', 'temporal-sdk']);
      await expect
        .poll(async () => (await query('pki_enrollments_total{profile=~"metrics-.*"}')).length, {
          timeout: 10_000,
        })
        .toBeGreaterThan(0);
      const key = (l: Record<string, string>) => `${l.profile}/${l.verifier}/${l.outcome}`;
      // This file's profiles: other test files enroll into the same database meanwhile.
      const stored = Object.fromEntries(
        (await query('pki_enrollments_total{profile=~"metrics-.*"}')).map((r) => [
          key(r.metric),
          Number(r.value[1]),
        ]),
      );
      const scraped = Object.fromEntries(
        (await samples())
          .filter((s) => s.name === 'pki_enrollments_total' && s.labels.profile!.startsWith('metrics-'))
          .map((s) => [key(s.labels), s.value]),
      );
      expect(stored).toEqual(scraped);
      expect(stored['metrics-open/static-challenge/issued']).toBe(2);
      expect((await query('count({__name__=~"temporal_.+"})'))[0]?.value[1]).toMatch(/^[1-9]/);
    } finally {
      prometheus.kill('SIGTERM');
      await exited;
    }
    expect(output).not.toMatch(/level=error/);
  }, 60_000);

  it('the example scrape configuration passes promtool check config', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'e2e-prometheus-config-'));
    for (const file of ['prometheus.yml', 'alerts.yml'])
      copyFileSync(`ops/prometheus/${file}`, join(dir, file));
    // The files it names, as an operator would provide them.
    writeFileSync(join(dir, 'operator-token'), OPERATOR_TOKEN);
    copyFileSync(process.env.NODE_EXTRA_CA_CERTS!, join(dir, 'root-ca.pem'));
    const result = await promtool(['check', 'config', join(dir, 'prometheus.yml')]);
    expect(result.code, result.output).toBe(0);
  });
});

describe('process metrics elsewhere', () => {
  it("a worker's health listener serves this process's metrics at /metrics", async () => {
    const listener = await serveHealth({ host: '127.0.0.1', port: 0 }, new Readiness([]));
    try {
      const response = await fetch(`${listener.url}/metrics`);
      expect(response.status).toBe(200);
      const all = parseExposition(await response.text());
      expect(
        sampleValue(all, 'pki_mdm_requests_total', { verifier: 'static-challenge', result: 'approved' }),
      ).toBe(3);
      // Fleet metrics are the API's to serve (they read Postgres and Temporal): not here.
      expect(all.some((s) => s.name === 'pki_enrollments_total')).toBe(false);
    } finally {
      await listener.close();
    }
  });

  it('a worker process (npm run worker) serves /metrics on HEALTH_PORT and the SDK metrics on TEMPORAL_METRICS_PORT', async () => {
    const stack = inject('stack');
    const [healthPort, sdkPort] = [await freePort(), await freePort()];
    // A CA worker in the dev server's `default` namespace: idle there, it takes none of this file's tasks.
    const worker = await startWorkerProcess({
      queues: 'pki-hsm',
      env: {
        ...stack.env,
        DATABASE_URL: stack.databaseUrl,
        TEMPORAL_ADDRESS: pipeline.temporalAddress,
        TEMPORAL_NAMESPACE: 'default',
        HEALTH_PORT: String(healthPort),
        TEMPORAL_METRICS_PORT: String(sdkPort),
      },
    });
    try {
      const own = await (await fetch(`http://127.0.0.1:${healthPort}/metrics`)).text();
      expect(own).toContain('# TYPE pki_hsm_operation_duration_seconds histogram');
      expect(parseExposition(own).some((s) => s.name === 'process_cpu_user_seconds_total')).toBe(true);
      expect(own).not.toContain('pki_enrollments_total');
      const sdk = parseExposition(await (await fetch(`http://127.0.0.1:${sdkPort}/metrics`)).text());
      expect(sdk.some((s) => s.name.startsWith('temporal_') && s.labels.task_queue === 'pki-hsm')).toBe(true);
      // Its log lines are JSON too, the ready line included.
      const lines = worker
        .output()
        .split('\n')
        .filter((l) => l.startsWith('{'));
      expect(lines.map((l) => JSON.parse(l))).toContainEqual(
        expect.objectContaining({ component: 'worker', queues: ['pki-hsm'], healthPort: String(healthPort) }),
      );
    } finally {
      worker.process.kill('SIGTERM');
      await worker.exited;
    }
  }, 120_000);

  it("Temporal's SDK serves its worker metrics on TEMPORAL_METRICS_PORT", async () => {
    const response = await fetch(`http://127.0.0.1:${temporalMetricsPort}/metrics`);
    expect(response.status).toBe(200);
    const all = parseExposition(await response.text());
    const names = new Set(all.map((s) => s.name));
    expect([...names].some((n) => n.startsWith('temporal_'))).toBe(true);
    expect(names).toContain('temporal_workflow_completed_total');
  });
});

describe('alert rules', () => {
  it('ops/prometheus/alerts.yml passes promtool check rules', async () => {
    const result = await promtool(['check', 'rules', 'ops/prometheus/alerts.yml']);
    expect(result.code, result.output).toBe(0);
    expect(result.output).toMatch(/SUCCESS: 6 rules found/);
  });

  it('each alert fires on the series it is written for (promtool test rules)', async () => {
    const result = await promtool(['test', 'rules', 'ops/prometheus/alerts.test.yml']);
    expect(result.code, result.output).toBe(0);
  });
});

function promtool(args: string[], input?: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = execFile('promtool', args, (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, output: stdout + stderr }),
    );
    if (input !== undefined) child.stdin!.end(input);
  });
}
