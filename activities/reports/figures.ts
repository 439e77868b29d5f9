/**
 * The daily report's figures, computed in SQL: three grouped scans (one day of enrollments, and the
 * devices against their certificates), whatever the number of devices. Indexes:
 * enrollments_completed_idx for the day, certificates_device_idx for the join.
 */
import { and, eq, gte, lt, sql } from 'drizzle-orm';
import type { Executor } from '../../db/client.js';
import { certificates, devices, enrollments } from '../../db/schema.js';
import { FAILURE_CAUSES, type FailureCause } from '../../workflows/definitions.js';
import { emptyFigures, type ProfileFigures } from './report.js';

export interface FiguresQuery {
  periodStart: Date;
  periodEnd: Date;
  renewSoonDays: number;
  /** Profiles listed even with nothing to report (the configured ones). */
  profiles: string[];
}

/** An MDM reason used as a code (MDMs without codes) is cut to this, so a group key stays readable. */
const MAX_CODE_CHARS = 120;

const count = (filter: ReturnType<typeof sql>) =>
  sql<number>`count(*) filter (where ${filter})`.mapWith(Number);
const at = (date: Date) => sql`${date.toISOString()}::timestamptz`;

export async function computeFigures(db: Executor, query: FiguresQuery): Promise<ProfileFigures[]> {
  const byProfile = new Map<string, ProfileFigures>();
  const figuresOf = (profile: string) => {
    let figures = byProfile.get(profile);
    if (!figures) {
      figures = emptyFigures(profile);
      byProfile.set(profile, figures);
    }
    return figures;
  };
  for (const profile of query.profiles) figuresOf(profile);

  const inPeriod = and(
    gte(enrollments.completedAt, query.periodStart),
    lt(enrollments.completedAt, query.periodEnd),
  );
  const obtained = await db
    .select({
      profile: enrollments.profile,
      devices: sql<number>`count(distinct ${enrollments.deviceId})`.mapWith(Number),
    })
    .from(enrollments)
    .where(and(inPeriod, eq(enrollments.status, 'issued')))
    .groupBy(enrollments.profile);
  for (const row of obtained) figuresOf(row.profile).obtained = row.devices;

  const failed = await db
    .select({
      profile: enrollments.profile,
      cause: enrollments.failureCause,
      code: sql<
        string | null
      >`coalesce(${enrollments.failureCode}, left(${enrollments.failureReason}, ${MAX_CODE_CHARS}))`,
      count: sql<number>`count(*)`.mapWith(Number),
    })
    .from(enrollments)
    .where(and(inPeriod, eq(enrollments.status, 'failed')))
    .groupBy(enrollments.profile, enrollments.failureCause, sql`3`);
  for (const row of failed) {
    const figures = figuresOf(row.profile);
    figures.failed += row.count;
    const cause = FAILURE_CAUSES.includes(row.cause as FailureCause)
      ? (row.cause as FailureCause)
      : undefined;
    if (cause === 'mdm') figures.failures.mdm.push({ code: row.code ?? 'unspecified', count: row.count });
    else if (cause) figures.failures[cause] += row.count;
    else figures.failures.unclassified += row.count;
  }
  for (const figures of byProfile.values()) figures.failures.mdm.sort(byCountThenCode);

  // Per device: until when it holds a valid (not revoked) certificate, and whether it ever had one.
  const held = db
    .select({
      profile: certificates.profile,
      deviceId: certificates.deviceId,
      validUntil:
        sql<Date | null>`max(${certificates.notAfter}) filter (where ${certificates.status} = 'valid')`.as(
          'valid_until',
        ),
    })
    .from(certificates)
    .groupBy(certificates.profile, certificates.deviceId)
    .as('held');
  const now = at(query.periodEnd);
  const start = at(query.periodStart);
  const soon = sql`${now} + make_interval(days => ${query.renewSoonDays})`;
  const notBlocked = sql`${devices.blockedAt} is null`;
  const hasValid = sql`${held.validUntil} > ${now}`;
  const noValid = sql`(${held.validUntil} is null or ${held.validUntil} <= ${now})`;
  const overdue = sql`${devices.status} = 'renewal_overdue'`;
  const states = await db
    .select({
      profile: devices.profile,
      // An overdue device is counted as "not renewed in time", not again as "renew soon".
      renewSoon: count(
        sql`${notBlocked} and ${hasValid} and ${held.validUntil} <= ${soon} and not ${overdue}`,
      ),
      expired: count(
        sql`${notBlocked} and ${noValid} and ${held.validUntil} > ${start} and ${held.validUntil} <= ${now}`,
      ),
      overdue: count(sql`${notBlocked} and ${hasValid} and ${overdue}`),
      blocked: count(sql`${noValid} and not ${notBlocked}`),
      lapsed: count(sql`${noValid} and ${notBlocked} and ${held.deviceId} is not null`),
      neverIssued: count(sql`${notBlocked} and ${held.deviceId} is null`),
    })
    .from(devices)
    .leftJoin(held, and(eq(held.profile, devices.profile), eq(held.deviceId, devices.deviceId)))
    .groupBy(devices.profile);
  for (const row of states) {
    const figures = figuresOf(row.profile);
    figures.renewSoon = row.renewSoon;
    figures.notRenewedInTimeDetail = { expired: row.expired, overdue: row.overdue };
    figures.notRenewedInTime = row.expired + row.overdue;
    figures.noValidCertificateDetail = {
      blocked: row.blocked,
      lapsed: row.lapsed,
      neverIssued: row.neverIssued,
    };
    figures.noValidCertificate = row.blocked + row.lapsed + row.neverIssued;
  }
  return [...byProfile.values()].sort((a, b) => a.profile.localeCompare(b.profile));
}

/** The figures of every profile added up. */
export function totalOf(profiles: ProfileFigures[]): ProfileFigures {
  const total = emptyFigures('*');
  const mdm = new Map<string, number>();
  for (const p of profiles) {
    total.obtained += p.obtained;
    total.renewSoon += p.renewSoon;
    total.failed += p.failed;
    total.notRenewedInTime += p.notRenewedInTime;
    total.noValidCertificate += p.noValidCertificate;
    for (const cause of ['policy', 'ca', 'rejected', 'deadline', 'unclassified'] as const)
      total.failures[cause] += p.failures[cause];
    for (const { code, count } of p.failures.mdm) mdm.set(code, (mdm.get(code) ?? 0) + count);
    total.notRenewedInTimeDetail.expired += p.notRenewedInTimeDetail.expired;
    total.notRenewedInTimeDetail.overdue += p.notRenewedInTimeDetail.overdue;
    total.noValidCertificateDetail.blocked += p.noValidCertificateDetail.blocked;
    total.noValidCertificateDetail.lapsed += p.noValidCertificateDetail.lapsed;
    total.noValidCertificateDetail.neverIssued += p.noValidCertificateDetail.neverIssued;
  }
  total.failures.mdm = [...mdm].map(([code, count]) => ({ code, count })).sort(byCountThenCode);
  return total;
}

function byCountThenCode(a: { code: string; count: number }, b: { code: string; count: number }): number {
  return b.count - a.count || a.code.localeCompare(b.code);
}
