import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { DailyReportSummary, ReportActivities } from './activities.js';

const acts = proxyActivities<ReportActivities>({
  // A few seconds at 100,000 devices (README "Daily report"); generous for a loaded database.
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '5 seconds', maximumInterval: '2 minutes', maximumAttempts: 10 },
});

export interface DailyReportResult extends DailyReportSummary {
  emailed: boolean;
}

/**
 * Schedule `reports/daily` (and on demand: `npm run report -- --now`, POST /operator/reports/run):
 * computes the report as of now (figures in SQL), stores it with its `report.daily` webhook event,
 * then e-mails it. The e-mail comes after the store, so a mail server that is down never loses the
 * report; it is retried on its own.
 */
export async function dailyReport(): Promise<DailyReportResult> {
  const summary = await acts.buildDailyReport({
    asOf: new Date().toISOString(),
    workflowId: workflowInfo().workflowId,
  });
  const { sent } = await acts.emailDailyReport({ reportDate: summary.reportDate });
  return { ...summary, emailed: sent };
}
