/**
 * The daily report activities: build (figures in SQL, trend from the stored reports, stored with its
 * `report.daily` event in one transaction) and e-mail (HTML with charts, to the reports' recipients).
 */
import type { PkiConfig } from '../../config/profile-types.js';
import type { Database } from '../../db/client.js';
import type { PkiEvent, ReportActivities } from '../../workflows/activities.js';
import { sendOperatorEmail } from '../notify/email.js';
import { enqueueEvent } from '../notify/outbox.js';
import { computeFigures, totalOf } from './figures.js';
import { renderHtml, renderText, reportSubject } from './render.js';
import { CATEGORIES, type CategoryCounts, countsOf, type DailyReport } from './report.js';
import { earlierTotals, findReport, saveReport } from './store.js';

const DAY_MS = 86_400_000;

/** YYYY-MM-DD of an instant in a time zone. */
export function localDate(instant: Date, timeZone: string): string {
  // en-CA formats dates as YYYY-MM-DD.
  return new Intl.DateTimeFormat('en-CA', {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
  }).format(instant);
}

/** Computes the report as of an instant (the 24 hours before it), without storing it. */
export async function computeDailyReport(db: Database, config: PkiConfig, asOf: Date): Promise<DailyReport> {
  const settings = config.reports;
  const periodStart = new Date(asOf.getTime() - DAY_MS);
  const profiles = await computeFigures(db, {
    periodStart,
    periodEnd: asOf,
    renewSoonDays: settings.renewSoonDays,
    profiles: config.profiles.map((p) => p.name),
  });
  const totals = totalOf(profiles);
  const reportDate = localDate(asOf, settings.timeZone);
  const earlier = await earlierTotals(db, reportDate, settings.trendReports);
  const previous = earlier.at(-1);
  return {
    reportDate,
    timeZone: settings.timeZone,
    generatedAt: asOf.toISOString(),
    periodStart: periodStart.toISOString(),
    periodEnd: asOf.toISOString(),
    renewSoonDays: settings.renewSoonDays,
    totals,
    profiles,
    trend: [...earlier, { reportDate, ...countsOf(totals) }],
    change: previous ? difference(countsOf(totals), previous) : null,
  };
}

function difference(now: CategoryCounts, before: CategoryCounts): CategoryCounts {
  return Object.fromEntries(CATEGORIES.map((c) => [c, now[c] - before[c]])) as unknown as CategoryCounts;
}

export function createReportActivities(deps: {
  config: PkiConfig;
  db: Database;
  env?: NodeJS.ProcessEnv;
}): ReportActivities {
  const { config, db } = deps;
  return {
    async buildDailyReport({ asOf, workflowId }) {
      const report = await computeDailyReport(db, config, new Date(asOf));
      const event: PkiEvent = {
        type: 'report.daily',
        // Stable across retries of this activity (asOf comes from the workflow), new for another run.
        id: `reports/daily/${report.reportDate}/${report.generatedAt}`,
        at: report.generatedAt,
        profile: '*',
        deviceId: '',
        workflowId,
        data: report as unknown as Record<string, unknown>,
      };
      await db.transaction(async (tx) => {
        await saveReport(tx, report);
        await enqueueEvent(tx, config.reports.notifications, event);
      });
      return { reportDate: report.reportDate, totals: countsOf(report.totals) };
    },

    async emailDailyReport({ reportDate }) {
      const email = config.reports.notifications.email;
      if (!email) return { sent: false };
      const report = await findReport(db, reportDate);
      if (!report) throw new Error(`no report for ${reportDate}`);
      await sendOperatorEmail(
        email,
        { subject: reportSubject(report), text: renderText(report), html: renderHtml(report) },
        deps.env,
      );
      return { sent: true };
    },
  };
}
