/**
 * Inline SVG charts for the report e-mail: pure functions from figures to markup. Every text that
 * reaches the markup goes through escapeXml (profile names and dates are data, not markup).
 */

export function escapeXml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

export interface Series {
  label: string;
  color: string;
  values: number[];
}

const FONT = 'font-family="Helvetica,Arial,sans-serif" font-size="11"';
const round = (n: number) => Math.round(n * 10) / 10;

/** A legend row under a chart. */
function legend(series: Array<Pick<Series, 'label' | 'color'>>, y: number): string {
  return series
    .map((s, i) => {
      const x = 10 + i * 130;
      return `<rect x="${x}" y="${y}" width="10" height="10" fill="${s.color}"/><text x="${x + 14}" y="${y + 9}" ${FONT}>${escapeXml(s.label)}</text>`;
    })
    .join('');
}

/**
 * One line per series over the x labels (report dates), oldest left. A single point is drawn as a dot.
 */
export function trendChart(xLabels: string[], series: Series[], title: string): string {
  const width = 660;
  const height = 240;
  const left = 45;
  const right = 15;
  const top = 30;
  const plotHeight = 150;
  const max = Math.max(1, ...series.flatMap((s) => s.values));
  const step = xLabels.length > 1 ? (width - left - right) / (xLabels.length - 1) : 0;
  const x = (i: number) => round(left + (xLabels.length > 1 ? i * step : (width - left - right) / 2));
  const y = (v: number) => round(top + plotHeight - (v / max) * plotHeight);
  const grid = [0, 0.5, 1]
    .map((f) => {
      const value = Math.round(max * f);
      return `<line x1="${left}" y1="${y(value)}" x2="${width - right}" y2="${y(value)}" stroke="#ddd"/><text x="${left - 5}" y="${y(value) + 4}" text-anchor="end" ${FONT}>${value}</text>`;
    })
    .join('');
  const labelEvery = Math.max(1, Math.ceil(xLabels.length / 7));
  const xAxis = xLabels
    .map((label, i) =>
      i % labelEvery === 0 || i === xLabels.length - 1
        ? `<text x="${x(i)}" y="${top + plotHeight + 15}" text-anchor="middle" ${FONT}>${escapeXml(label)}</text>`
        : '',
    )
    .join('');
  const lines = series
    .map((s) => {
      const points = s.values.map((v, i) => `${x(i)},${y(v)}`).join(' ');
      const dots = s.values
        .map((v, i) => `<circle cx="${x(i)}" cy="${y(v)}" r="2.5" fill="${s.color}"/>`)
        .join('');
      return `<polyline fill="none" stroke="${s.color}" stroke-width="2" points="${points}"/>${dots}`;
    })
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeXml(title)}"><text x="10" y="18" ${FONT} font-weight="bold">${escapeXml(title)}</text>${grid}${xAxis}${lines}${legend(series, top + plotHeight + 28)}</svg>`;
}

/** One horizontal bar per row (profile), stacked by series, each segment as wide as its value. */
export function stackedBarChart(
  rows: string[],
  series: Array<Pick<Series, 'label' | 'color'>>,
  amount: (row: number, series: number) => number,
  title: string,
): string {
  const width = 660;
  const labelWidth = 120;
  const barHeight = 18;
  const top = 30;
  const plotWidth = width - labelWidth - 60;
  const totals = rows.map((_, r) => series.reduce((sum, _s, i) => sum + amount(r, i), 0));
  const max = Math.max(1, ...totals);
  const bars = rows
    .map((row, r) => {
      const y = top + r * (barHeight + 8);
      let x = labelWidth;
      const segments = series
        .map((s, i) => {
          const value = amount(r, i);
          const w = round((value / max) * plotWidth);
          const segment =
            value > 0
              ? `<rect x="${round(x)}" y="${y}" width="${w}" height="${barHeight}" fill="${s.color}"><title>${escapeXml(`${row}: ${s.label} ${value}`)}</title></rect>`
              : '';
          x += w;
          return segment;
        })
        .join('');
      return `<text x="${labelWidth - 6}" y="${y + 13}" text-anchor="end" ${FONT}>${escapeXml(row)}</text>${segments}<text x="${round(x) + 5}" y="${y + 13}" ${FONT}>${totals[r]}</text>`;
    })
    .join('');
  const height = top + rows.length * (barHeight + 8) + 30;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${escapeXml(title)}"><text x="10" y="18" ${FONT} font-weight="bold">${escapeXml(title)}</text>${bars}${legend(series, height - 20)}</svg>`;
}
