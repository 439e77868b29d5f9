/**
 * `npm run report -- --now [--csv]`        runs the daily report workflow now (as the schedule
 *                                           `reports/daily` would), waits, prints the report
 * `npm run report -- --date 2026-12-02 [--csv]`   prints a stored report
 *
 * Temporal from TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE, the reports from DATABASE_URL (PGlite under
 * .data when unset, as `npm run dev`). A `pki` worker must be running to run one now.
 * Exit codes: 0 done, 2 usage, 3 no report for that date.
 */
import { renderCsv } from '../activities/reports/render.js';
import { findReport } from '../activities/reports/store.js';
import { runtimeSettings } from '../config/runtime.js';
import { openDatabase } from '../db/client.js';
import { runDailyReportNow } from '../runtime/schedules.js';
import { connectTemporal, openTokens, payloadCodecOf } from '../runtime/services.js';
import { fail, parseCommandLine } from './cli.js';

const usage = `usage: npm run report -- --now [--csv]
       npm run report -- --date YYYY-MM-DD [--csv]
  env: TEMPORAL_ADDRESS (default 127.0.0.1:7233), TEMPORAL_NAMESPACE (default default), DATABASE_URL`;

const values = parseCommandLine(
  {
    now: { type: 'boolean', default: false },
    date: { type: 'string' },
    csv: { type: 'boolean', default: false },
  },
  usage,
);
if (values.now === (values.date !== undefined)) fail(`one of --now or --date is required\n${usage}`, 2);
if (values.date !== undefined && !/^\d{4}-\d{2}-\d{2}$/.test(values.date))
  fail(`--date must be YYYY-MM-DD\n${usage}`, 2);

const settings = runtimeSettings();
let reportDate = values.date;
if (values.now) {
  // Payloads are encrypted (the workflow's result too): the data token's key opens them.
  const tokens = await openTokens(settings, ['data']);
  const client = await connectTemporal(settings, payloadCodecOf(tokens.get('data')));
  try {
    const run = await runDailyReportNow(client);
    console.error(`report ${run.reportDate} (workflow ${run.workflowId}, e-mailed: ${run.emailed})`);
    reportDate = run.reportDate;
  } finally {
    await client.connection.close();
    await tokens.close();
  }
}
const database = await openDatabase({ url: settings.databaseUrl, pgliteDir: settings.pgliteDir });
try {
  const report = await findReport(database.db, reportDate!);
  if (!report) fail(`no report for ${reportDate}`, 3);
  process.stdout.write(values.csv ? renderCsv(report) : `${JSON.stringify(report, null, 2)}\n`);
} finally {
  await database.close();
}
