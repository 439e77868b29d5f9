import { describe, expect, it } from 'vitest';
import { escapeXml, stackedBarChart, trendChart } from '../../activities/reports/charts.js';
import { renderCsv, renderHtml } from '../../activities/reports/render.js';
import { type DailyReport, emptyFigures } from '../../activities/reports/report.js';

const hostile = '<script>alert("x")</script>';

function report(): DailyReport {
  const a = { ...emptyFigures('corp-laptops'), obtained: 3, failed: 2 };
  a.failures.mdm = [{ code: '=HYPERLINK("http://evil")', count: 1 }];
  a.failures.policy = 1;
  const b = { ...emptyFigures('phones'), renewSoon: 4 };
  const totals = { ...emptyFigures('*'), obtained: 3, renewSoon: 4, failed: 2 };
  totals.failures.mdm = a.failures.mdm;
  totals.failures.policy = 1;
  return {
    reportDate: '2026-12-02',
    timeZone: 'Europe/Berlin',
    generatedAt: '2026-12-02T05:30:00.000Z',
    periodStart: '2026-12-01T05:30:00.000Z',
    periodEnd: '2026-12-02T05:30:00.000Z',
    renewSoonDays: 7,
    totals,
    profiles: [a, b],
    trend: [
      {
        reportDate: '2026-12-01',
        obtained: 1,
        renewSoon: 0,
        failed: 5,
        notRenewedInTime: 0,
        noValidCertificate: 0,
      },
      {
        reportDate: '2026-12-02',
        obtained: 3,
        renewSoon: 4,
        failed: 2,
        notRenewedInTime: 0,
        noValidCertificate: 0,
      },
    ],
    change: { obtained: 2, renewSoon: 4, failed: -3, notRenewedInTime: 0, noValidCertificate: 0 },
  };
}

describe('report rendering', () => {
  it('writes one CSV row per profile and the totals, a formula-looking text defused and quoted', () => {
    const lines = renderCsv(report()).split('\r\n');
    expect(lines[0]).toMatch(/^profile,obtained,renew_soon,failed,failed_mdm,failed_policy,/);
    expect(lines[1]).toMatch(/^corp-laptops,3,0,2,1,1,0,0,0,0,"'=HYPERLINK\(""http:\/\/evil""\)=1",/);
    expect(lines[2]).toMatch(/^phones,0,4,0,0,0,/);
    expect(lines[3]).toMatch(/^\*,3,4,2,1,1,/);
    expect(lines[4]).toBe('');
  });

  it('escapes text in charts and HTML', () => {
    expect(escapeXml(`a&b<c>"d'`)).toBe('a&amp;b&lt;c&gt;&quot;d&#39;');
    const bars = stackedBarChart([hostile], [{ label: hostile, color: '#000' }], () => 1, hostile);
    const lines = trendChart([hostile], [{ label: hostile, color: '#000', values: [1] }], hostile);
    for (const svg of [bars, lines]) {
      expect(svg).not.toContain('<script>');
      expect(svg).toContain('&lt;script&gt;');
    }
    const r = report();
    r.profiles[1]!.profile = hostile;
    expect(renderHtml(r)).not.toContain('<script>');
  });

  it('draws the trend as one line per category and one stacked bar per profile', () => {
    const html = renderHtml(report());
    expect(html.match(/<polyline/g)).toHaveLength(5);
    expect(html).toContain('<title>corp-laptops: Obtained 3</title>');
    expect(html).toContain('<title>phones: Renew soon 4</title>');
    // The change since the previous report, signed.
    expect(html).toContain('<td style="padding:4px 8px;border-bottom:1px solid #ddd">-3</td>');
  });
});
