/**
 * A grouped bar chart as a standalone SVG string: enough for the benchmark report (no chart library, so
 * nothing to install and the output reads the same in any browser or on GitHub).
 */

export interface ChartSeries {
  name: string;
  /** One value per group; undefined draws no bar (a load the target cannot run). */
  values: ReadonlyArray<number | undefined>;
}

export interface GroupedBarChart {
  title: string;
  yLabel: string;
  groups: readonly string[];
  series: readonly ChartSeries[];
}

const COLORS = ['#4e79a7', '#f28e2b', '#e15759', '#76b7b2', '#59a14f', '#edc948', '#b07aa1'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** A "nice" axis maximum at or above `v` (1, 2 or 5 times a power of ten). */
function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function fmt(v: number): string {
  if (v >= 10000) return `${(v / 1000).toFixed(0)}k`;
  if (v >= 1000) return `${(v / 1000).toFixed(1)}k`;
  return v >= 10 ? v.toFixed(0) : v.toFixed(2);
}

/** Renders the chart: one cluster of bars per group, one colour per series, values above the bars. */
export function groupedBarChart(c: GroupedBarChart): string {
  const width = 760;
  const height = 360;
  const left = 70;
  const right = 20;
  const top = 40;
  const bottom = 80;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const max = niceMax(Math.max(0, ...c.series.flatMap((s) => s.values.filter((v): v is number => v !== undefined))));
  const groupW = plotW / Math.max(1, c.groups.length);
  const barW = (groupW * 0.8) / Math.max(1, c.series.length);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="14" font-weight="bold">${esc(c.title)}</text>`,
    `<text transform="translate(16 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">${esc(c.yLabel)}</text>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const v = (max * i) / 5;
    const y = top + plotH - (plotH * i) / 5;
    parts.push(`<line x1="${left}" x2="${width - right}" y1="${y}" y2="${y}" stroke="#ddd"/>`,
      `<text x="${left - 6}" y="${y + 4}" text-anchor="end">${fmt(v)}</text>`);
  }
  c.groups.forEach((g, gi) => {
    const gx = left + gi * groupW + groupW * 0.1;
    parts.push(`<text x="${left + gi * groupW + groupW / 2}" y="${top + plotH + 16}" text-anchor="middle">${esc(g)}</text>`);
    c.series.forEach((s, si) => {
      const v = s.values[gi];
      if (v === undefined || !Number.isFinite(v)) return;
      const h = (plotH * v) / max;
      const x = gx + si * barW;
      parts.push(`<rect x="${x.toFixed(1)}" y="${(top + plotH - h).toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${h.toFixed(1)}" fill="${COLORS[si % COLORS.length]}"/>`,
        `<text x="${(x + barW / 2 - 1).toFixed(1)}" y="${(top + plotH - h - 3).toFixed(1)}" text-anchor="middle" font-size="9">${fmt(v)}</text>`);
    });
  });
  c.series.forEach((s, si) => {
    const x = left + si * 140;
    const y = height - 24;
    parts.push(`<rect x="${x}" y="${y - 9}" width="10" height="10" fill="${COLORS[si % COLORS.length]}"/>`,
      `<text x="${x + 14}" y="${y}">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}
