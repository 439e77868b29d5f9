/**
 * The daily report as operators read it: an HTML e-mail with inline SVG charts (and a text part),
 * and CSV. Pure functions of a DailyReport.
 */
import { escapeXml, stackedBarChart, trendChart } from './charts.js';
import { CATEGORIES, CATEGORY_LABELS, type DailyReport, type ProfileFigures } from './report.js';

const COLORS: Record<(typeof CATEGORIES)[number], string> = {
  obtained: '#2e7d32',
  renewSoon: '#1565c0',
  failed: '#c62828',
  notRenewedInTime: '#ef6c00',
  noValidCertificate: '#6a1b9a',
};
const SERIES = CATEGORIES.map((c) => ({ label: CATEGORY_LABELS[c], color: COLORS[c] }));

export function reportSubject(report: DailyReport): string {
  const t = report.totals;
  return `[device-pki] Daily report ${report.reportDate}: ${t.obtained} obtained, ${t.failed} failed, ${t.notRenewedInTime} not renewed in time`;
}

/** The columns of the CSV, one row per profile and a last row `*` with the totals. */
const CSV_COLUMNS: Array<[string, (f: ProfileFigures) => string | number]> = [
  ['profile', (f) => f.profile],
  ['obtained', (f) => f.obtained],
  ['renew_soon', (f) => f.renewSoon],
  ['failed', (f) => f.failed],
  ['failed_mdm', (f) => f.failures.mdm.reduce((sum, g) => sum + g.count, 0)],
  ['failed_policy', (f) => f.failures.policy],
  ['failed_ca', (f) => f.failures.ca],
  ['failed_rejected', (f) => f.failures.rejected],
  ['failed_deadline', (f) => f.failures.deadline],
  ['failed_unclassified', (f) => f.failures.unclassified],
  ['failed_mdm_codes', (f) => f.failures.mdm.map((g) => `${g.code}=${g.count}`).join('; ')],
  ['not_renewed_in_time', (f) => f.notRenewedInTime],
  ['not_renewed_expired', (f) => f.notRenewedInTimeDetail.expired],
  ['not_renewed_overdue', (f) => f.notRenewedInTimeDetail.overdue],
  ['no_valid_certificate', (f) => f.noValidCertificate],
  ['no_valid_blocked', (f) => f.noValidCertificateDetail.blocked],
  ['no_valid_lapsed', (f) => f.noValidCertificateDetail.lapsed],
  ['no_valid_never_issued', (f) => f.noValidCertificateDetail.neverIssued],
];

/**
 * RFC 4180 field. A text starting with = + - @ (or a tab/CR) is prefixed with ' so a spreadsheet
 * shows it instead of evaluating it (MDM reasons are text from another system).
 */
function csvField(value: string | number): string {
  if (typeof value === 'number') return String(value);
  const safe = /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
  return /[",\r\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

export function renderCsv(report: DailyReport): string {
  const rows = [...report.profiles, report.totals].map((f) =>
    CSV_COLUMNS.map(([, get]) => csvField(get(f))).join(','),
  );
  return `${[CSV_COLUMNS.map(([name]) => name).join(','), ...rows].join('\r\n')}\r\n`;
}

export function renderText(report: DailyReport): string {
  const line = (f: ProfileFigures) =>
    `${f.profile.padEnd(24)} ${CATEGORIES.map((c) => String(f[c]).padStart(8)).join(' ')}`;
  return [
    `Daily report ${report.reportDate} (${report.timeZone}), period ${report.periodStart} to ${report.periodEnd}`,
    `Renew soon: within ${report.renewSoonDays} days.`,
    '',
    `${'profile'.padEnd(24)} ${CATEGORIES.map((c) => CATEGORY_LABELS[c].slice(0, 8).padStart(8)).join(' ')}`,
    ...report.profiles.map(line),
    line({ ...report.totals, profile: 'total' }),
    '',
    `Failed by reason: ${failureSummary(report.totals)}`,
    '',
  ].join('\n');
}

function failureSummary(f: ProfileFigures): string {
  const parts = [
    ...f.failures.mdm.map((g) => `MDM ${g.code}: ${g.count}`),
    `policy: ${f.failures.policy}`,
    `CA refused: ${f.failures.ca}`,
    `escalated and rejected: ${f.failures.rejected}`,
    `deadline: ${f.failures.deadline}`,
  ];
  if (f.failures.unclassified > 0) parts.push(`unclassified: ${f.failures.unclassified}`);
  return parts.join(', ');
}

const cell = (value: string | number, header = false) =>
  header
    ? `<th style="${TH}">${escapeXml(String(value))}</th>`
    : `<td style="${TD}">${escapeXml(String(value))}</td>`;
const TH = 'text-align:left;padding:4px 8px;border-bottom:2px solid #999';
const TD = 'padding:4px 8px;border-bottom:1px solid #ddd';

function change(report: DailyReport, category: (typeof CATEGORIES)[number]): string {
  if (!report.change) return '';
  const delta = report.change[category];
  return delta === 0 ? '±0' : delta > 0 ? `+${delta}` : String(delta);
}

/** The report's two charts as inline SVG: the trend lines and a stacked bar per profile (e-mail and console). */
export function reportCharts(report: DailyReport): { trend: string; bars: string } {
  const trend = trendChart(
    report.trend.map((p) => p.reportDate),
    CATEGORIES.map((c) => ({
      label: CATEGORY_LABELS[c],
      color: COLORS[c],
      values: report.trend.map((p) => p[c]),
    })),
    'Trend (all profiles)',
  );
  const bars = stackedBarChart(
    report.profiles.map((p) => p.profile),
    SERIES,
    (row, series) => report.profiles[row]![CATEGORIES[series]!],
    'Per profile',
  );
  return { trend, bars };
}

export function renderHtml(report: DailyReport): string {
  const { trend, bars } = reportCharts(report);
  const header = `<tr>${cell('Profile', true)}${CATEGORIES.map((c) => cell(CATEGORY_LABELS[c], true)).join('')}</tr>`;
  const row = (f: ProfileFigures, label = f.profile) =>
    `<tr>${cell(label)}${CATEGORIES.map((c) => cell(f[c])).join('')}</tr>`;
  const changeRow = report.change
    ? `<tr>${cell('change since the last report')}${CATEGORIES.map((c) => cell(change(report, c))).join('')}</tr>`
    : '';
  const failures = report.profiles
    .filter((p) => p.failed > 0)
    .map((p) => `<li><b>${escapeXml(p.profile)}</b>: ${escapeXml(failureSummary(p))}</li>`)
    .join('');
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>${escapeXml(reportSubject(report))}</title></head>
<body style="font-family:Helvetica,Arial,sans-serif;font-size:14px;color:#222">
<h2>Daily report ${escapeXml(report.reportDate)}</h2>
<p>Period ${escapeXml(report.periodStart)} to ${escapeXml(report.periodEnd)} (${escapeXml(report.timeZone)}). Renew soon: within ${report.renewSoonDays} days.</p>
<table style="border-collapse:collapse">${header}${report.profiles.map((p) => row(p)).join('')}${row(report.totals, 'total')}${changeRow}</table>
<h3>Failed, by reason</h3>
<p>${escapeXml(failureSummary(report.totals))}</p>
${failures ? `<ul>${failures}</ul>` : ''}
<h3>Charts</h3>
<div>${trend}</div>
<div>${bars}</div>
</body></html>
`;
}
