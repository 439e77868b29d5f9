import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { computeDailyReport } from '../../activities/reports/daily-report.js';
import { renderCsv } from '../../activities/reports/render.js';
import { emptyFigures, type ProfileFigures } from '../../activities/reports/report.js';
import { loadPkiConfig } from '../../config/load.js';
import type { PkiConfig } from '../../config/profile-types.js';
import type { DatabaseHandle } from '../../db/client.js';
import { openOwnDatabase } from '../support/own-database.js';

/**
 * The report at 100,000 devices: a database of its own (migrated like production, so the report's
 * indexes are the real ones), seeded with one INSERT ... SELECT generate_series per table, and the
 * figures compared with what the seeding rule says for each device. The time is printed (README
 * "Daily report" keeps the figure); no timing is asserted.
 */
const DEVICES = 100_000;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const asOf = new Date('2026-12-02T06:00:00Z');

let own: Awaited<ReturnType<typeof openOwnDatabase>>;
let handle: DatabaseHandle;
let config: PkiConfig;

/** Device i (1..N) of profile scale-a (even) or scale-b (odd); its class is i % 10. */
const profileOf = (i: number) => (i % 2 === 0 ? 'scale-a' : 'scale-b');

/** What each device's seeding means, one device at a time (the rule the SQL below seeds by). */
function expectedFigures(): Map<string, ProfileFigures> {
  const byProfile = new Map(['scale-a', 'scale-b'].map((p) => [p, emptyFigures(p)]));
  const mdm = new Map<string, number>();
  for (let i = 1; i <= DEVICES; i++) {
    const f = byProfile.get(profileOf(i))!;
    const k = i % 10;
    if (k >= 1 && k <= 7) f.obtained++; // issued within the period
    if (k === 7 && i % 20 !== 7) f.renewSoon++; // valid 3 more days, not yet overdue
    if (k === 7 && i % 20 === 7) f.notRenewedInTimeDetail.overdue++;
    if (k === 8) {
      f.notRenewedInTimeDetail.expired++; // ran out 2 hours ago
      f.noValidCertificateDetail.lapsed++;
    }
    if (k === 9) f.noValidCertificateDetail.blocked++; // revoked and blocked
    if (k === 0) {
      f.noValidCertificateDetail.neverIssued++;
      f.failed++;
      const cause = (['mdm', 'policy', 'ca', 'rejected', 'deadline'] as const)[Math.floor(i / 10) % 5]!;
      if (cause === 'mdm') mdm.set(f.profile, (mdm.get(f.profile) ?? 0) + 1);
      else f.failures[cause]++;
    }
  }
  for (const f of byProfile.values()) {
    f.notRenewedInTime = f.notRenewedInTimeDetail.expired + f.notRenewedInTimeDetail.overdue;
    const n = f.noValidCertificateDetail;
    f.noValidCertificate = n.blocked + n.lapsed + n.neverIssued;
    f.failures.mdm = mdm.get(f.profile) ? [{ code: 'ChallengeExpired', count: mdm.get(f.profile)! }] : [];
  }
  return byProfile;
}

beforeAll(async () => {
  own = await openOwnDatabase('report_scale');
  handle = own.handle;
  config = loadPkiConfig();
  config.profiles = config.profiles.filter((p) => p.name === 'devices');
  config.reports = { ...config.reports, timeZone: 'Europe/Berlin', renewSoonDays: 7 };

  const t = asOf.toISOString();
  const { db } = handle;
  await db.execute(sql`
    INSERT INTO devices (profile, device_id, status, blocked_at, blocked_reason)
    SELECT CASE WHEN i % 2 = 0 THEN 'scale-a' ELSE 'scale-b' END, 'dev-' || i,
           CASE WHEN i % 10 = 7 AND i % 20 = 7 THEN 'renewal_overdue'
                WHEN i % 10 = 9 THEN 'revoked' WHEN i % 10 = 0 THEN 'enrollment_failed' ELSE 'active' END,
           CASE WHEN i % 10 = 9 THEN ${t}::timestamptz - interval '5 days' END,
           CASE WHEN i % 10 = 9 THEN 'keyCompromise' END
    FROM generate_series(1, ${DEVICES}) AS i`);
  await db.execute(sql`
    INSERT INTO certificates (issuing_ca, serial_hex, profile, device_id, enrollment_id, subject,
                              not_before, not_after, sha256_hex, der, status, revoked_at)
    SELECT 'issuing-ca/scale', to_hex(i), CASE WHEN i % 2 = 0 THEN 'scale-a' ELSE 'scale-b' END, 'dev-' || i,
           'enroll/scale/' || i, 'CN=dev-' || i, ${t}::timestamptz - interval '10 days',
           ${t}::timestamptz + CASE WHEN i % 10 = 7 THEN interval '3 days' WHEN i % 10 = 8 THEN interval '-2 hours'
                                    ELSE interval '20 days' END,
           md5(i::text), '\\x00'::bytea,
           CASE WHEN i % 10 = 9 THEN 'revoked' ELSE 'valid' END,
           CASE WHEN i % 10 = 9 THEN ${t}::timestamptz - interval '5 days' END
    FROM generate_series(1, ${DEVICES}) AS i WHERE i % 10 <> 0`);
  await db.execute(sql`
    INSERT INTO enrollments (id, profile, transaction_id, device_id, message_type, status, fail_info,
                             failure_reason, failure_cause, failure_code, csr_sha256, csr_sealed,
                             certificate_serial, created_at, completed_at)
    SELECT 'enroll/scale/' || i, CASE WHEN i % 2 = 0 THEN 'scale-a' ELSE 'scale-b' END, 'tx-' || i, 'dev-' || i,
           'PKCSReq', CASE WHEN i % 10 = 0 THEN 'failed' ELSE 'issued' END,
           CASE WHEN i % 10 = 0 THEN 'badRequest' END,
           CASE WHEN i % 10 = 0 THEN 'ChallengeExpired: the challenge is too old' END,
           CASE WHEN i % 10 = 0 THEN (ARRAY['mdm','policy','ca','rejected','deadline'])[(i / 10) % 5 + 1] END,
           CASE WHEN i % 10 = 0 AND (i / 10) % 5 = 0 THEN 'ChallengeExpired' END,
           md5(i::text), '\\x00'::bytea, CASE WHEN i % 10 <> 0 THEN to_hex(i) END,
           ${t}::timestamptz - interval '4 days',
           ${t}::timestamptz - CASE WHEN i % 10 IN (8, 9) THEN interval '3 days' ELSE interval '1 hour' END
    FROM generate_series(1, ${DEVICES}) AS i`);
  await db.execute(sql`ANALYZE`);
}, 300_000);

afterAll(async () => {
  await own?.drop();
});

describe('the daily report at 100,000 devices', () => {
  it('computes every category exactly, per profile and in total', async () => {
    const started = performance.now();
    const report = await computeDailyReport(handle.db, config, asOf);
    const ms = performance.now() - started;
    console.log(
      `[daily report] ${DEVICES} devices, ${DEVICES} enrollments: computed in ${Math.round(ms)} ms`,
    );

    expect(report.reportDate).toBe('2026-12-02');
    expect(report.periodStart).toBe(new Date(asOf.getTime() - DAY).toISOString());
    const expected = expectedFigures();
    for (const name of ['scale-a', 'scale-b'])
      expect(report.profiles.find((p) => p.profile === name)).toEqual(expected.get(name));
    // The configured profile is listed with nothing to report.
    expect(report.profiles.find((p) => p.profile === 'devices')).toEqual(emptyFigures('devices'));
    expect(report.totals).toMatchObject({
      obtained: 70_000,
      renewSoon: 5000,
      failed: 10_000,
      notRenewedInTime: 15_000,
      noValidCertificate: 30_000,
      failures: {
        mdm: [{ code: 'ChallengeExpired', count: 2000 }],
        policy: 2000,
        ca: 2000,
        rejected: 2000,
        deadline: 2000,
      },
    });
    // The CSV's total row carries the same figures.
    const lines = renderCsv(report).trim().split('\r\n');
    expect(lines.at(-1)).toBe(
      '*,70000,5000,10000,2000,2000,2000,2000,2000,0,ChallengeExpired=2000,15000,10000,5000,30000,10000,10000,10000',
    );
  }, 120_000);
});
