import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { and, count, eq, gte, lt, sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { profileSchema } from '../../config/profile-types.js';
import { auditEvents, enrollments } from '../../db/schema.js';
import { logger } from '../../runtime/log.js';
import { type Pipeline, startPipeline } from '../support/pipeline.js';
import { scepclientEnroll } from '../support/scep-clients.js';

/**
 * Logs are JSON lines that tie a request to its SCEP transaction, workflow and device, and never
 * carry a secret; the audit trail leaves for a SIEM as JSON lines by date range.
 */
const OPERATOR_TOKEN = 'logs-operator-token-never-logged';
const CHALLENGE = 'logged-challenge-never-logged';
const logFile = join(mkdtempSync(join(tmpdir(), 'e2e-logs-')), 'pki.log');
const bearer = { authorization: `Bearer ${OPERATOR_TOKEN}` };
let pipeline: Pipeline;
const startedAt = new Date(Date.now() - 60_000);

beforeAll(async () => {
  // The logger is made at its first line, after this: everything below goes to the file.
  Object.assign(process.env, { OPERATOR_TOKEN, LOG_FILE: logFile, LOG_LEVEL: 'info' });
  pipeline = await startPipeline({
    configure: (config) => {
      const base = config.profiles.find((p) => p.name === 'devices')!;
      config.profiles.push(
        profileSchema.parse({
          ...base,
          name: 'logged',
          mdm: { type: 'static-challenge', challenge: CHALLENGE },
          ca: { ...base.ca, keyLabel: 'issuing-ca/logged', subject: [['CN', 'Logged Issuing CA']] },
        }),
      );
    },
  });
}, 180_000);
afterAll(async () => {
  await pipeline?.stop();
});

type LogLine = Record<string, unknown>;
function logLines(): LogLine[] {
  return readFileSync(logFile, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as LogLine);
}

describe('structured logs', () => {
  let transactionId: string;
  let workflowId: string;

  it('one JSON line per SCEP request carries the request id, profile, transaction, workflow and device', async () => {
    const run = await scepclientEnroll({
      url: `${pipeline.url}/scep/logged`,
      challenge: CHALLENGE,
      cn: 'log-laptop',
    });
    expect(run.code, run.output).toBe(0);
    const [row] = await pipeline.db.db
      .select({ id: enrollments.id, transactionId: enrollments.transactionId })
      .from(enrollments)
      .where(and(eq(enrollments.profile, 'logged'), eq(enrollments.deviceId, 'log-laptop')));
    ({ id: workflowId, transactionId } = row!);

    const lines = logLines();
    const scep = lines.find(
      (l) => l.msg === 'request' && l.path === '/scep/logged' && l.pkiStatus === 'SUCCESS',
    );
    expect(scep).toMatchObject({
      level: 'info',
      component: 'api',
      profile: 'logged',
      transactionId,
      messageType: 'PKCSReq',
      workflowId,
      claimedDeviceId: 'log-laptop',
      status: 200,
    });
    expect(scep!.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(typeof scep!.time).toBe('string');
  });

  it('the worker logs the recorded outcome with the verified device and the same ids', () => {
    const recorded = logLines().find((l) => l.msg === 'enrollment recorded' && l.workflowId === workflowId);
    expect(recorded).toMatchObject({
      component: 'enrollment',
      profile: 'logged',
      transactionId,
      deviceId: 'log-laptop',
      verifier: 'static-challenge',
      outcome: 'issued',
    });
  });

  it("Temporal's SDK logs into the same JSON lines", () => {
    const temporal = logLines().filter((l) => l.component === 'temporal');
    expect(temporal.length).toBeGreaterThan(0);
    // The CA worker polls activities only; the SDK says so at WARN (the tests' TEMPORAL_LOG_LEVEL).
    expect(temporal).toContainEqual(
      expect.objectContaining({ level: 'warn', sdkComponent: 'worker', taskQueue: 'pki-hsm' }),
    );
  });

  it('echoes a caller request id (x-request-id) and logs under it; makes one for a malformed id', async () => {
    const given = await fetch(`${pipeline.operatorUrl}/operator/devices/logged/log-laptop`, {
      headers: { ...bearer, 'x-request-id': 'siem-trace-42' },
    });
    expect(given.status).toBe(200);
    expect(given.headers.get('x-request-id')).toBe('siem-trace-42');
    const logged = logLines().filter((l) => l.requestId === 'siem-trace-42');
    expect(logged).toEqual([
      expect.objectContaining({
        surface: 'operator',
        path: '/operator/devices/logged/log-laptop',
        status: 200,
      }),
    ]);

    const malformed = await fetch(`${pipeline.url}/healthz`, {
      headers: { 'x-request-id': 'not an id\t{}' },
    });
    expect(malformed.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('never writes a challenge password, the operator token or an Authorization header', async () => {
    // A careless line with secrets in it, as a future change might write: redacted by key name.
    logger().info(
      { challengePassword: CHALLENGE, headers: { authorization: `Bearer ${OPERATOR_TOKEN}` }, pin: '9876' },
      'careless line',
    );
    const careless = logLines().find((l) => l.msg === 'careless line');
    expect(careless).toMatchObject({
      challengePassword: '[redacted]',
      headers: { authorization: '[redacted]' },
      pin: '[redacted]',
    });
    const text = readFileSync(logFile, 'utf8');
    expect(text).not.toContain(CHALLENGE);
    expect(text).not.toContain(OPERATOR_TOKEN);
    // Every line is one JSON object (parsed above) with a level name and a time.
    expect(logLines().every((l) => typeof l.level === 'string' && typeof l.time === 'string')).toBe(true);
  });
});

describe('audit export for SIEMs', () => {
  const exportUrl = (query: Record<string, string>) =>
    `${pipeline.operatorUrl}/operator/audit?${new URLSearchParams(query)}`;
  const ndjson = async (response: Response) =>
    (await response.text())
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  it('streams the audit events of a date range as JSON lines, in time order, as many as the table holds', async () => {
    const range = { from: startedAt.toISOString(), to: new Date(Date.now() + 60_000).toISOString() };
    const exported = async (query: Record<string, string>) => {
      const response = await fetch(exportUrl(query), { headers: bearer });
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toMatch(/^application\/x-ndjson/);
      return ndjson(response);
    };
    // The run's database is shared with other test files: compare this profile's events.
    const held = async () => {
      const [row] = await pipeline.db.db
        .select({ n: count() })
        .from(auditEvents)
        .where(
          and(
            eq(auditEvents.profile, 'logged'),
            gte(auditEvents.occurredAt, new Date(range.from)),
            lt(auditEvents.occurredAt, new Date(range.to)),
          ),
        );
      return row!.n;
    };
    // The lifecycle may still be writing its first entries: wait until export and table agree.
    await expect
      .poll(async () => (await exported({ ...range, profile: 'logged' })).length - (await held()))
      .toBe(0);
    const mine = await exported({ ...range, profile: 'logged' });
    expect(mine.length).toBeGreaterThan(3);
    const everything = await exported(range);
    expect(everything.filter((e) => e.profile === 'logged')).toEqual(mine);
    const times = everything.map((e) => Date.parse(String(e.occurredAt)));
    expect(times).toEqual([...times].sort((a, b) => a - b));
    const succeeded = mine.find((e) => e.action === 'enrollment.succeeded' && e.deviceId === 'log-laptop');
    expect(succeeded).toMatchObject({
      actor: 'workflow',
      profile: 'logged',
      subject: expect.stringMatching(/^enroll\/logged\//),
    });
    expect(Object.keys(succeeded!).sort()).toEqual(
      ['action', 'actor', 'details', 'deviceId', 'id', 'occurredAt', 'profile', 'subject'].sort(),
    );
  });

  it('filters by profile and action', async () => {
    const response = await fetch(
      exportUrl({
        from: startedAt.toISOString(),
        to: new Date(Date.now() + 60_000).toISOString(),
        profile: 'logged',
        action: 'enrollment.succeeded',
      }),
      { headers: bearer },
    );
    const events = await ndjson(response);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ deviceId: 'log-laptop', action: 'enrollment.succeeded' });
  });

  it('pages through thousands of events sharing timestamps to the microsecond, each exactly once', async () => {
    // 2,500 events, three per microsecond: the cursor must keep Postgres's precision and the id order.
    await pipeline.db.db.execute(sql`
      INSERT INTO audit_events (occurred_at, actor, action, subject, details)
      SELECT timestamptz '2020-01-01 00:00:00.000001+00' + (i / 3) * interval '1 microsecond',
             'test', 'test.bulk', 'bulk/' || i, '{}'::jsonb
      FROM generate_series(1, 2500) AS i`);
    const response = await fetch(
      exportUrl({ from: '2020-01-01T00:00:00Z', to: '2020-01-02T00:00:00Z', action: 'test.bulk' }),
      { headers: bearer },
    );
    const events = await ndjson(response);
    expect(events).toHaveLength(2500);
    const subjects = new Set(events.map((e) => e.subject));
    expect(subjects.size).toBe(2500);
    const ids = events.map((e) => Number(e.id));
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
  });

  it.each([
    ['no range', {}, /from: /],
    [
      'a date that is not ISO 8601',
      { from: 'yesterday', to: '2026-12-02T00:00:00Z' },
      /from: must be an ISO 8601/,
    ],
    ['from after to', { from: '2026-12-02T00:00:00Z', to: '2026-12-01T00:00:00Z' }, /from must be before to/],
    ['more than 31 days', { from: '2026-10-01T00:00:00Z', to: '2026-12-01T00:00:00Z' }, /at most 31 days/],
    [
      'an unknown parameter',
      { from: '2026-12-01T00:00:00Z', to: '2026-12-02T00:00:00Z', limit: '5' },
      /limit/,
    ],
  ])('answers 400 with a JSON error for %s', async (_, query, message) => {
    const response = await fetch(exportUrl(query as Record<string, string>), { headers: bearer });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { error: string }).error).toMatch(message);
  });

  it('is for operators only', async () => {
    const response = await fetch(exportUrl({ from: '2026-12-01T00:00:00Z', to: '2026-12-02T00:00:00Z' }));
    expect(response.status).toBe(401);
    // Refusals carry a request id too: the operator quotes it, the logs have the line.
    const requestId = response.headers.get('x-request-id');
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(logLines().find((l) => l.requestId === requestId)).toMatchObject({
      status: 401,
      path: '/operator/audit',
    });
  });
});
