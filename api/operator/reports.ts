/**
 * The daily reports (activities/reports/):
 *   GET  /operator/reports[?limit=]            the stored report dates, newest first
 *   GET  /operator/reports/:date               one report as JSON (date YYYY-MM-DD, in reports.timeZone)
 *   GET  /operator/reports/:date.csv           the same as CSV (or ?format=csv): one row per profile, then `*`
 *   POST /operator/reports/run   {by?, note?}  runs the report workflow now and answers its report
 */
import { Hono } from 'hono';
import { z } from 'zod';
import { renderCsv } from '../../activities/reports/render.js';
import { findReport, listReports } from '../../activities/reports/store.js';
import { recordAudit } from '../../activities/store/audit.js';
import { runDailyReportNow } from '../../runtime/schedules.js';
import { dailyReportNowWorkflowId } from '../../workflows/definitions.js';
import { actingOperator, type OperatorEnv } from '../http/auth.js';
import { issues, jsonError, parseJsonBody, short } from '../http/errors.js';
import type { OperatorDeps } from './devices.js';
import { decisionBody } from './schemas.js';

export const listQuery = z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) }).strict();
export const reportQuery = z
  .object({ format: z.enum(['json', 'csv'], { error: 'format must be json or csv' }).optional() })
  .strict();
const REPORT_FILE = /^(\d{4}-\d{2}-\d{2})(\.csv|\.json)?$/;

export function reportRoutes(deps: Pick<OperatorDeps, 'db' | 'temporal'>): Hono<OperatorEnv> {
  const app = new Hono<OperatorEnv>();

  app.get('/operator/reports', async (c) => {
    const parsed = listQuery.safeParse(c.req.query());
    if (!parsed.success) throw jsonError(400, `bad query: ${issues(parsed.error)}`);
    return c.json({ reports: await listReports(deps.db, parsed.data.limit) });
  });

  app.post('/operator/reports/run', async (c) => {
    const body = parseJsonBody(await c.req.text(), decisionBody);
    const by = actingOperator(c, body.by);
    // Recorded before the run: a run that fails, or a caller that goes away, is still on record.
    const workflowId = dailyReportNowWorkflowId(new Date());
    await recordAudit(deps.db, {
      profile: '*',
      deviceId: '',
      subject: workflowId,
      actor: by,
      entries: [
        {
          at: new Date().toISOString(),
          action: 'report.run_requested',
          details: body.note ? { note: body.note } : {},
        },
      ],
    });
    const run = await runDailyReportNow(deps.temporal, workflowId);
    const report = await findReport(deps.db, run.reportDate);
    return c.json({ workflowId: run.workflowId, emailed: run.emailed, report }, 201);
  });

  app.get('/operator/reports/:file', async (c) => {
    const file = REPORT_FILE.exec(c.req.param('file'));
    if (!file) throw jsonError(400, `not a report date (YYYY-MM-DD): ${short(c.req.param('file'))}`);
    const query = reportQuery.safeParse(c.req.query());
    if (!query.success) throw jsonError(400, `bad query: ${issues(query.error)}`);
    const [, date, suffix] = file;
    const report = await findReport(deps.db, date!);
    if (!report) throw jsonError(404, `no report for ${date}`);
    if (suffix === '.csv' || query.data.format === 'csv')
      return c.body(renderCsv(report), 200, {
        'content-type': 'text/csv; charset=utf-8',
        'content-disposition': `attachment; filename="device-pki-report-${date}.csv"`,
      });
    return c.json(report);
  });

  return app;
}
