import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { eq } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { localDate } from '../../activities/reports/daily-report.js';
import {
  countsOf,
  type DailyReport,
  emptyFigures,
  type ProfileFigures,
} from '../../activities/reports/report.js';
import { saveReport } from '../../activities/reports/store.js';
import { profileSchema } from '../../config/profile-types.js';
import { auditEvents } from '../../db/schema.js';
import { ensureSchedules } from '../../runtime/schedules.js';
import { DAILY_REPORT_SCHEDULE_ID } from '../../workflows/definitions.js';
import { type FakeAtlas, startFakeAtlas } from '../fakes/atlas.js';
import { type SmtpSink, startSmtpSink } from '../fakes/smtp-sink.js';
import { startWebhookReceiver, type WebhookReceiver } from '../fakes/webhook-receiver.js';
import { certmongerEnroll } from '../support/certmonger.js';
import { htmlOf } from '../support/mail.js';
import { type Pipeline, startPipeline } from '../support/pipeline.js';
import { scepclientEnroll } from '../support/scep-clients.js';
import { waitForWorkflows } from '../support/temporal.js';

/**
 * The daily report on the real stack: devices enrolled over SCEP, refused by the MDM, by policy and
 * by the CA, escalated and rejected by an operator, left until the escalation deadline, renewing
 * soon, expired, overdue, revoked and never issued. The report workflow (run through the operator
 * API) must count each exactly; its HTML e-mail reaches the SMTP sink with its charts, its signed
 * `report.daily` webhook carries the same figures, and so does the CSV.
 */
const OPERATOR_TOKEN = 'daily-report-operator-token';
const HOOK_SECRET = 'daily-report-hook-secret';
const bearer = { authorization: `Bearer ${OPERATOR_TOKEN}`, 'content-type': 'application/json' };
const TIME_ZONE = 'Europe/Berlin';
const DAY = 86_400;

let pipeline: Pipeline;
let atlas: FakeAtlas;
let mail: SmtpSink;
let receiver: WebhookReceiver;

beforeAll(async () => {
  Object.assign(process.env, {
    OPERATOR_TOKEN,
    REPORT_HOOK_SECRET: HOOK_SECRET,
    ATLAS_API_KEY: 'atlas-key',
    ATLAS_API_SECRET: 'atlas-secret',
  });
  atlas = await startFakeAtlas({ apiKey: 'atlas-key', apiSecret: 'atlas-secret' });
  mail = await startSmtpSink();
  receiver = await startWebhookReceiver({ secret: HOOK_SECRET });
  pipeline = await startPipeline({
    enrollmentWaitMs: 1500,
    configure: (config) => {
      const base = config.profiles.find((p) => p.name === 'devices')!;
      const local = (name: string, extra: Record<string, unknown> = {}) =>
        profileSchema.parse({
          ...base,
          name,
          mdm: { type: 'static-challenge', challenge: `${name}-challenge` },
          ca: { ...base.ca, keyLabel: `issuing-ca/${name}`, subject: [['CN', `${name} Issuing CA`]] },
          ...extra,
        });
      const atlasCa = atlas.caConfig();
      const quickEscalation = { maxAttempts: 2, initialRetrySeconds: 0.2, maxRetryIntervalSeconds: 0.5 };
      config.profiles.push(
        local('rpt-main', { template: { ...base.template, validitySeconds: 30 * DAY } }),
        local('rpt-short', { template: { ...base.template, validitySeconds: 2 * DAY } }),
        // Valid 60 s: RenewalDue after 5 s, RenewalOverdue after 10 s, Expired after 60 s.
        local('rpt-timed', {
          template: { ...base.template, validitySeconds: 60, backdateSeconds: 0 },
          lifecycle: { renewalLeadSeconds: 55, overdueMarginSeconds: 50, supersededGraceSeconds: null },
        }),
        local('rpt-atlas', { ca: atlasCa, escalation: { ...quickEscalation, deadlineSeconds: 600 } }),
        local('rpt-unattended', { ca: atlasCa, escalation: { ...quickEscalation, deadlineSeconds: 3 } }),
      );
      config.reports = {
        time: '06:30',
        timeZone: TIME_ZONE,
        renewSoonDays: 7,
        trendReports: 14,
        notifications: {
          webhooks: [{ url: receiver.url, secretEnv: 'REPORT_HOOK_SECRET' }],
          email: {
            smtpHost: mail.host,
            smtpPort: mail.port,
            secure: false,
            from: 'pki@example.test',
            to: ['reports@example.test'],
          },
        },
      };
    },
  });
});
afterAll(async () => {
  await pipeline?.stop();
  await Promise.all([atlas?.close(), mail?.close(), receiver?.close()]);
});

const enroll = (
  profile: string,
  cn: string,
  opts: { challenge?: string; dir?: string; timeoutMs?: number } = {},
) =>
  scepclientEnroll({
    url: `${pipeline.url}/scep/${profile}`,
    challenge: opts.challenge ?? `${profile}-challenge`,
    cn,
    ...(opts.dir ? { dir: opts.dir } : {}),
    ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}),
  });
/** Atlas's chain is EC, which micromdm's scepclient cannot encrypt to: certmonger, as in escalation.test.ts. */
const enrollThroughAtlas = (profile: string, cn: string) =>
  certmongerEnroll({
    url: `${pipeline.url}/scep/${profile}`,
    cn,
    challenge: `${profile}-challenge`,
    untilPending: true,
  });
const enrollmentOf = (deviceId: string, status: string, timeoutMs = 30_000) =>
  waitForWorkflows(
    pipeline.client,
    `WorkflowType="enrollment" AND DeviceId="${deviceId}" AND PkiStatus="${status}"`,
    1,
    timeoutMs,
  );
const lifecycleIs = (profile: string, deviceId: string, status: string, timeoutMs = 90_000) =>
  waitForWorkflows(
    pipeline.client,
    `WorkflowId="device/${profile}/${deviceId}" AND PkiStatus="${status}"`,
    1,
    timeoutMs,
  );
const operator = (path: string, init: RequestInit = {}) =>
  fetch(`${pipeline.operatorUrl}${path}`, { ...init, headers: bearer });

/** Figures of a profile: every category and detail zero except what is given. */
function figures(profile: string, given: Partial<ProfileFigures>): ProfileFigures {
  const f = { ...emptyFigures(profile), ...given };
  return {
    ...f,
    notRenewedInTime: f.notRenewedInTimeDetail.expired + f.notRenewedInTimeDetail.overdue,
    noValidCertificate:
      f.noValidCertificateDetail.blocked +
      f.noValidCertificateDetail.lapsed +
      f.noValidCertificateDetail.neverIssued,
  };
}

/** The HTML part of a raw message, transfer-decoded (quoted-printable or base64). */
describe('the daily report', () => {
  it('creates the reports/daily schedule at the configured time and time zone', async () => {
    const schedule = await pipeline.client.schedule.getHandle(DAILY_REPORT_SCHEDULE_ID).describe();
    expect(schedule.spec.timezone).toBe(TIME_ZONE);
    expect(schedule.spec.calendars?.[0]).toMatchObject({
      hour: [{ start: 6, end: 6, step: 1 }],
      minute: [{ start: 30, end: 30, step: 1 }],
    });
    expect(schedule.action).toMatchObject({ type: 'startWorkflow', workflowType: 'dailyReport' });

    // A worker started with another report time moves the existing schedule to it.
    const later = { ...pipeline.config, reports: { ...pipeline.config.reports, time: '07:45' } };
    expect(await ensureSchedules(pipeline.client, later)).not.toContain(DAILY_REPORT_SCHEDULE_ID);
    const moved = await pipeline.client.schedule.getHandle(DAILY_REPORT_SCHEDULE_ID).describe();
    expect(moved.spec.calendars?.[0]).toMatchObject({
      hour: [{ start: 7, end: 7, step: 1 }],
      minute: [{ start: 45, end: 45, step: 1 }],
    });
    expect(moved.spec.timezone).toBe(TIME_ZONE);
  });

  it('counts a seeded scenario exactly, and delivers it by e-mail, webhook, JSON and CSV', async () => {
    // Started first: the 60-second certificates need the time to run out (and to go overdue).
    const expiring = await enroll('rpt-timed', 'rpt-expires');
    expect(expiring.code, expiring.output).toBe(0);
    const overdueFrom = Date.now() + 35_000;

    // rpt-main: two enrolled (one then revoked), one refused by the MDM, one by policy (1024-bit key).
    for (const cn of ['rpt-ok', 'rpt-revoked']) {
      const run = await enroll('rpt-main', cn);
      expect(run.code, run.output).toBe(0);
    }
    const wrong = await enroll('rpt-main', 'rpt-bad-challenge', { challenge: 'not-the-challenge' });
    expect(wrong.code).not.toBe(0);
    const smallKeyDir = mkdtempSync(join(tmpdir(), 'rpt-small-key-'));
    await promisify(execFile)('openssl', [
      'genrsa',
      '-traditional',
      '-out',
      join(smallKeyDir, 'key.pem'),
      '1024',
    ]);
    const small = await enroll('rpt-main', 'rpt-small-key', { dir: smallKeyDir });
    expect(small.code).not.toBe(0);
    const revoke = await operator('/operator/devices/rpt-main/rpt-revoked/revoke', {
      method: 'POST',
      body: '{"reason":"keyCompromise","by":"alice"}',
    });
    expect(revoke.status).toBe(202);
    await lifecycleIs('rpt-main', 'rpt-revoked', 'Revoked', 15_000);

    // rpt-short: valid 2 days, within the 7 days of "renew soon".
    const soon = await enroll('rpt-short', 'rpt-soon');
    expect(soon.code, soon.output).toBe(0);

    // Atlas refuses one request on policy grounds: the CA refused.
    atlas.rejectCommonName = 'rpt-ca-refused';
    await enrollThroughAtlas('rpt-atlas', 'rpt-ca-refused');
    await enrollmentOf('rpt-ca-refused', 'Failed');
    atlas.rejectCommonName = undefined;

    // Atlas down: one escalation an operator rejects, one nobody answers before its deadline.
    atlas.failNext(1_000_000, 503);
    await Promise.all([
      enrollThroughAtlas('rpt-atlas', 'rpt-rejected'),
      enrollThroughAtlas('rpt-unattended', 'rpt-deadline'),
    ]);
    const [escalated] = await enrollmentOf('rpt-rejected', 'Escalated');
    const reject = await operator(
      `/operator/enrollments/${encodeURIComponent(escalated!.workflowId)}/reject`,
      { method: 'POST', body: '{"reason":"upstream CA outage, re-enroll tomorrow","by":"alice"}' },
    );
    expect(reject.status).toBe(202);
    await enrollmentOf('rpt-rejected', 'Failed');
    await enrollmentOf('rpt-deadline', 'Failed');
    atlas.failNext(0);

    // rpt-timed: the second certificate is overdue (valid 50 s more) when the first has expired.
    await new Promise((r) => setTimeout(r, Math.max(0, overdueFrom - Date.now())));
    const overdue = await enroll('rpt-timed', 'rpt-overdue');
    expect(overdue.code, overdue.output).toBe(0);
    await lifecycleIs('rpt-timed', 'rpt-overdue', 'RenewalOverdue', 30_000);
    await lifecycleIs('rpt-timed', 'rpt-expires', 'Expired', 60_000);

    // An earlier report, for the trend.
    const yesterday = localDate(new Date(Date.now() - DAY * 1000), TIME_ZONE);
    const earlierTotals = figures('*', { obtained: 40, failed: 3 });
    await saveReport(pipeline.db.db, {
      reportDate: yesterday,
      timeZone: TIME_ZONE,
      generatedAt: new Date(Date.now() - DAY * 1000).toISOString(),
      periodStart: new Date(Date.now() - 2 * DAY * 1000).toISOString(),
      periodEnd: new Date(Date.now() - DAY * 1000).toISOString(),
      renewSoonDays: 7,
      totals: earlierTotals,
      profiles: [],
      trend: [],
      change: null,
    });

    const run = await operator('/operator/reports/run', { method: 'POST', body: '{"by":"alice"}' });
    expect(run.status).toBe(201);
    const { report, emailed, workflowId } = (await run.json()) as {
      report: DailyReport;
      emailed: boolean;
      workflowId: string;
    };
    expect(emailed).toBe(true);
    // Who asked for the run is on record, under the run's workflow id.
    const asked = await pipeline.db.db
      .select({ actor: auditEvents.actor, action: auditEvents.action })
      .from(auditEvents)
      .where(eq(auditEvents.subject, workflowId));
    expect(asked).toEqual([{ actor: 'token:alice', action: 'report.run_requested' }]);
    expect(report.reportDate).toBe(localDate(new Date(report.generatedAt), TIME_ZONE));
    const of = (name: string) => report.profiles.find((p) => p.profile === name);

    expect(of('rpt-main')).toEqual(
      figures('rpt-main', {
        obtained: 2,
        failed: 2,
        failures: {
          ...emptyFigures('').failures,
          mdm: [{ code: 'challenge password does not match', count: 1 }],
          policy: 1,
        },
        noValidCertificateDetail: { blocked: 1, lapsed: 0, neverIssued: 2 },
      }),
    );
    expect(of('rpt-short')).toEqual(figures('rpt-short', { obtained: 1, renewSoon: 1 }));
    expect(of('rpt-timed')).toEqual(
      figures('rpt-timed', {
        obtained: 2,
        notRenewedInTimeDetail: { expired: 1, overdue: 1 },
        noValidCertificateDetail: { blocked: 0, lapsed: 1, neverIssued: 0 },
      }),
    );
    expect(of('rpt-atlas')).toEqual(
      figures('rpt-atlas', {
        failed: 2,
        failures: { ...emptyFigures('').failures, ca: 1, rejected: 1 },
        noValidCertificateDetail: { blocked: 0, lapsed: 0, neverIssued: 2 },
      }),
    );
    expect(of('rpt-unattended')).toEqual(
      figures('rpt-unattended', {
        failed: 1,
        failures: { ...emptyFigures('').failures, deadline: 1 },
        noValidCertificateDetail: { blocked: 0, lapsed: 0, neverIssued: 1 },
      }),
    );
    // Other test files share the database: the totals are checked as the sum of the profiles.
    for (const category of [
      'obtained',
      'renewSoon',
      'failed',
      'notRenewedInTime',
      'noValidCertificate',
    ] as const)
      expect(report.totals[category]).toBe(report.profiles.reduce((sum, p) => sum + p[category], 0));
    // The trend: yesterday's report, then this one.
    expect(report.trend.map((p) => p.reportDate)).toEqual([yesterday, report.reportDate]);
    expect(report.change).toEqual({
      obtained: report.totals.obtained - 40,
      renewSoon: report.totals.renewSoon,
      failed: report.totals.failed - 3,
      notRenewedInTime: report.totals.notRenewedInTime,
      noValidCertificate: report.totals.noValidCertificate,
    });

    // The JSON the API serves by date is the report the run returned.
    const byDate = await operator(`/operator/reports/${report.reportDate}`);
    expect(await byDate.json()).toEqual(report);
    const list = (await (await operator('/operator/reports')).json()) as {
      reports: Array<{ reportDate: string }>;
    };
    expect(list.reports.map((r) => r.reportDate)).toEqual([report.reportDate, yesterday]);

    // The CSV opens with the same counts.
    const csv = await operator(`/operator/reports/${report.reportDate}.csv`);
    expect(csv.headers.get('content-type')).toMatch(/^text\/csv/);
    const [header, ...rows] = (await csv.text()).trim().split('\r\n');
    const columns = header!.split(',');
    const rowOf = (profile: string) => {
      const cells = rows.find((r) => r.startsWith(`${profile},`))!.split(',');
      return Object.fromEntries(columns.map((c, i) => [c, cells[i]]));
    };
    for (const name of ['rpt-main', 'rpt-short', 'rpt-timed', 'rpt-atlas', 'rpt-unattended', '*']) {
      const f = name === '*' ? report.totals : of(name)!;
      expect(rowOf(name)).toMatchObject({
        obtained: String(f.obtained),
        renew_soon: String(f.renewSoon),
        failed: String(f.failed),
        failed_policy: String(f.failures.policy),
        failed_ca: String(f.failures.ca),
        failed_rejected: String(f.failures.rejected),
        failed_deadline: String(f.failures.deadline),
        not_renewed_in_time: String(f.notRenewedInTime),
        no_valid_certificate: String(f.noValidCertificate),
      });
    }
    const query = await operator(`/operator/reports/${report.reportDate}?format=csv`);
    expect(await query.text()).toBe(
      await (await operator(`/operator/reports/${report.reportDate}.csv`)).text(),
    );

    // The HTML e-mail, with its charts, reached the SMTP sink.
    await expect.poll(() => mail.messages.length, { timeout: 10_000 }).toBe(1);
    const [message] = mail.messages;
    expect(message!.to).toEqual(['reports@example.test']);
    expect(message!.raw).toMatch(new RegExp(`Subject: \\[device-pki\\] Daily report ${report.reportDate}`));
    const html = await htmlOf(message!);
    expect(html.match(/<svg /g)).toHaveLength(2);
    expect(html).toContain('aria-label="Trend (all profiles)"');
    expect(html).toContain('<polyline');
    // The stacked bar of rpt-timed: obtained 2 and not renewed in time 2, a segment each.
    expect(html).toContain('<title>rpt-timed: Obtained 2</title>');
    expect(html).toContain('<title>rpt-timed: Not renewed in time 2</title>');

    // The signed report.daily webhook carries the same report.
    await expect
      .poll(() => receiver.deliveries.filter((d) => d.headers['x-pki-event'] === 'report.daily').length, {
        timeout: 15_000,
      })
      .toBe(1);
    const hook = receiver.deliveries.find((d) => d.headers['x-pki-event'] === 'report.daily')!;
    expect(hook.verified).toBe(true);
    const event = JSON.parse(hook.body) as { type: string; data: DailyReport };
    expect(event.type).toBe('report.daily');
    expect(event.data).toEqual(report);
    expect(countsOf(event.data.totals)).toEqual(countsOf(report.totals));
  }, 300_000);

  it('runs now from the command line: npm run report -- --now --csv', async () => {
    const stack = inject('stack');
    const { stdout, stderr } = await promisify(execFile)(
      'npx',
      ['tsx', 'scripts/report.ts', '--now', '--csv'],
      {
        env: {
          ...process.env,
          TEMPORAL_ADDRESS: pipeline.temporalAddress,
          TEMPORAL_NAMESPACE: pipeline.client.options.namespace,
          DATABASE_URL: stack.databaseUrl,
        },
        timeout: 60_000,
      },
    );
    const rows = stdout.trim().split('\r\n');
    expect(rows[0]).toMatch(/^profile,obtained,renew_soon,failed,/);
    // Figures that time does not move: the same as the report the operator API ran.
    const reportDate = /report (\d{4}-\d{2}-\d{2})/.exec(stderr)?.[1];
    expect(reportDate).toBe(localDate(new Date(), TIME_ZONE));
    const stored = (await (await operator(`/operator/reports/${reportDate}.csv`)).text())
      .trim()
      .split('\r\n');
    for (const name of ['rpt-main', 'rpt-short', 'rpt-atlas', 'rpt-unattended'])
      expect(rows.find((r) => r.startsWith(`${name},`))).toBe(stored.find((r) => r.startsWith(`${name},`)));
    expect(rows.find((r) => r.startsWith('rpt-main,'))).toMatch(/^rpt-main,2,0,2,1,1,0,0,0,0,/);
    await expect.poll(() => mail.messages.length, { timeout: 10_000 }).toBe(2);
  }, 90_000);

  it('answers 400 for what is not a report date, 404 for a date without a report', async () => {
    const bad = await operator('/operator/reports/yesterday');
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/not a report date/);
    const none = await operator('/operator/reports/1999-01-01.csv');
    expect(none.status).toBe(404);
    const format = await operator(`/operator/reports/1999-01-01?format=xml`);
    expect(format.status).toBe(400);
  });
});
