/** The reports table: one row per report date (a run again the same day replaces it). */
import { desc, eq, lt } from 'drizzle-orm';
import type { Executor } from '../../db/client.js';
import { reports } from '../../db/schema.js';
import { countsOf, type DailyReport, type TrendPoint } from './report.js';

export async function saveReport(db: Executor, report: DailyReport): Promise<void> {
  const row = {
    generatedAt: new Date(report.generatedAt),
    periodStart: new Date(report.periodStart),
    periodEnd: new Date(report.periodEnd),
    body: report as unknown as Record<string, unknown>,
  };
  await db
    .insert(reports)
    .values({ reportDate: report.reportDate, ...row })
    .onConflictDoUpdate({ target: reports.reportDate, set: row });
}

/** The totals of the `limit` reports before this date, oldest first. */
export async function earlierTotals(db: Executor, before: string, limit: number): Promise<TrendPoint[]> {
  const rows = await db
    .select({ reportDate: reports.reportDate, body: reports.body })
    .from(reports)
    .where(lt(reports.reportDate, before))
    .orderBy(desc(reports.reportDate))
    .limit(limit);
  return rows
    .reverse()
    .map((r) => ({ reportDate: r.reportDate, ...countsOf((r.body as unknown as DailyReport).totals) }));
}

export async function findReport(db: Executor, reportDate: string): Promise<DailyReport | undefined> {
  const [row] = await db
    .select({ body: reports.body })
    .from(reports)
    .where(eq(reports.reportDate, reportDate));
  return row?.body as unknown as DailyReport | undefined;
}

export async function listReports(
  db: Executor,
  limit: number,
): Promise<Array<{ reportDate: string; generatedAt: Date }>> {
  return db
    .select({ reportDate: reports.reportDate, generatedAt: reports.generatedAt })
    .from(reports)
    .orderBy(desc(reports.reportDate))
    .limit(limit);
}
