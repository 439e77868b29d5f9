/** The fleet at a glance: what waits for a person now, and the latest daily report's categories. */

import { raw } from 'hono/html';
import type { FC } from 'hono/jsx';
import { reportCharts } from '../../../activities/reports/render.js';
import { CATEGORIES, CATEGORY_LABELS, type DailyReport } from '../../../activities/reports/report.js';

export const OverviewPage: FC<{ escalated: number; awaiting: number; report: DailyReport | undefined }> = ({
  escalated,
  awaiting,
  report,
}) => (
  <>
    <div class="cards" data-testid="waiting">
      <a class="card" href="/console/queue" data-testid="escalated-count">
        <div class="n">{escalated}</div>
        <div class="l">escalated enrollments</div>
      </a>
      <a class="card" href="/console/queue" data-testid="awaiting-count">
        <div class="n">{awaiting}</div>
        <div class="l">awaiting approval</div>
      </a>
    </div>
    <h2>
      Daily report{' '}
      {report && (
        <span class="muted">
          {report.reportDate} (generated {report.generatedAt}, renew soon = within {report.renewSoonDays}{' '}
          days)
        </span>
      )}
    </h2>
    {report ? <ReportFigures report={report} /> : <p class="muted">No daily report yet.</p>}
    <p data-testid="saved-views">
      In the Temporal Web UI: <a href="/console/views/escalated">escalated</a> ·{' '}
      <a href="/console/views/awaiting-approval">awaiting approval</a> ·{' '}
      <a href="/console/views/refused-today">refused today</a> ·{' '}
      <a href="/console/views/renewal-overdue">renewal overdue</a>
    </p>
    <form method="post" action="/console/reports/run" class="inline">
      <button type="submit">Run the daily report now</button>
    </form>
  </>
);

const ReportFigures: FC<{ report: DailyReport }> = ({ report }) => {
  const charts = reportCharts(report);
  return (
    <>
      <div class="cards" data-testid="report-totals">
        {CATEGORIES.map((c) => (
          <div class="card" data-category={c}>
            <div class="n">{report.totals[c]}</div>
            <div class="l">
              {CATEGORY_LABELS[c]}
              {report.change && <span class="muted"> ({signed(report.change[c])})</span>}
            </div>
          </div>
        ))}
      </div>
      <table data-testid="report-profiles">
        <tr>
          <th>Profile</th>
          {CATEGORIES.map((c) => (
            <th class="num">{CATEGORY_LABELS[c]}</th>
          ))}
        </tr>
        {report.profiles.map((p) => (
          <tr data-profile={p.profile}>
            <td>{p.profile}</td>
            {CATEGORIES.map((c) => (
              <td class="num" data-category={c}>
                {p[c]}
              </td>
            ))}
          </tr>
        ))}
      </table>
      <p>
        <a href={`/console/reports/${report.reportDate}.csv`}>CSV</a>
      </p>
      {/* Built by the report's own renderer, every label escaped there (activities/reports/charts.ts). */}
      <div class="charts">
        {raw(charts.trend)}
        {raw(charts.bars)}
      </div>
    </>
  );
};

const signed = (n: number) => (n > 0 ? `+${n}` : n === 0 ? '±0' : String(n));
