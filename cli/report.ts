// `wndc report MODEL_DIR [-o FILE]`: one self-contained HTML page for a training run: learning
// curves (train loss and every validation metric against steps) as inline SVG, a table of the last
// evaluation, and the run's settings from run.json. Nothing external is loaded (no scripts, fonts or
// style sheets), so the file can be mailed or attached to a ticket as it is.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { writeFileAtomic } from '../compiler/fs.js';
import { EXIT, UsageError, type CliIO } from './io.js';

export interface ReportOptions {
  output?: string;
}

/** One line of metrics.jsonl (see runtime/train/trainer.ts `log`). */
export interface MetricsRecord {
  time?: string;
  step: number;
  epoch?: number;
  split: 'train' | 'valid';
  [key: string]: unknown;
}

export interface ReportInput {
  title: string;
  records: readonly MetricsRecord[];
  /** run.json, when the run wrote one. */
  run?: Record<string, unknown>;
}

export async function reportCommand(dir: string, opts: ReportOptions, io: CliIO): Promise<number> {
  const modelDir = resolve(io.cwd, dir);
  if (!existsSync(modelDir)) throw new UsageError(`no such folder: ${dir}`, EXIT.failure);
  if (!statSync(modelDir).isDirectory()) throw new UsageError(`${dir} is a file; give the model folder of a run (its --model_dir)`, EXIT.failure);
  const metricsPath = join(modelDir, 'metrics.jsonl');
  if (!existsSync(metricsPath)) throw new UsageError(`no metrics.jsonl in ${dir}: train first (wndc run SPEC --model_dir ${dir})`, EXIT.failure);
  const records = parseMetrics(readFileSync(metricsPath, 'utf8'), (line, why) => io.stderr(`wndc: warning: skipping line ${line} of ${join(dir, 'metrics.jsonl')}: ${why}\n`));
  if (records.length === 0) throw new UsageError(`${join(dir, 'metrics.jsonl')} holds no records yet: train at least one epoch first`, EXIT.failure);
  const run = readRunInfo(join(modelDir, 'run.json'), io);
  const title = typeof run?.model === 'string' ? run.model : basename(modelDir);
  const out = resolve(io.cwd, opts.output ?? join(dir, 'report.html'));
  writeFileAtomic(out, renderReport({ title, records, ...(run ? { run } : {}) }));
  const shown = relative(io.cwd, out);
  io.stderr(`wrote ${shown === '' || shown.startsWith('..') ? out : shown}\n`);
  return EXIT.ok;
}

/** Parses metrics.jsonl; a line that is not a record (a run killed mid-write) is reported and skipped. */
export function parseMetrics(text: string, skipped: (line: number, why: string) => void): MetricsRecord[] {
  const records: MetricsRecord[] = [];
  text.split('\n').forEach((raw, i) => {
    if (raw.trim() === '') return;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      skipped(i + 1, 'not JSON');
      return;
    }
    const r = value as Partial<MetricsRecord> | null;
    if (r === null || typeof r !== 'object' || typeof r.step !== 'number' || (r.split !== 'train' && r.split !== 'valid')) {
      skipped(i + 1, 'not a metrics record (needs `step` and `split`)');
      return;
    }
    records.push(r as MetricsRecord);
  });
  return records;
}

function readRunInfo(path: string, io: CliIO): Record<string, unknown> | undefined {
  if (!existsSync(path)) return undefined;
  try {
    const value: unknown = JSON.parse(readFileSync(path, 'utf8'));
    if (value !== null && typeof value === 'object' && !Array.isArray(value)) return value as Record<string, unknown>;
    io.stderr(`wndc: warning: ${path} is not a JSON object; settings left out\n`);
  } catch (e) {
    io.stderr(`wndc: warning: cannot read ${path} (${(e as Error).message}); settings left out\n`);
  }
  return undefined;
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

// ---- series ----

/** Keys of a validation record that are not metrics. */
const RECORD_KEYS = new Set(['time', 'step', 'epoch', 'split', 'rows']);

export interface Series {
  name: string;
  /** Sorted by step; one point per step (a step logged twice keeps its last value). */
  points: Array<[step: number, value: number]>;
}

function seriesOf(records: readonly MetricsRecord[], split: 'train' | 'valid', key: string): Series {
  const byStep = new Map<number, number>();
  for (const r of records) {
    const v = r[key];
    if (r.split === split && typeof v === 'number' && Number.isFinite(v)) byStep.set(r.step, v);
  }
  return { name: key, points: [...byStep].sort((a, b) => a[0] - b[0]) };
}

/** Validation metric names in the order they first appear (`map@12`, `auc`, `logloss`...). */
function validMetricNames(records: readonly MetricsRecord[]): string[] {
  const names: string[] = [];
  for (const r of records) {
    if (r.split !== 'valid') continue;
    for (const [k, v] of Object.entries(r)) if (!RECORD_KEYS.has(k) && (typeof v === 'number' || v === null) && !names.includes(k)) names.push(k);
  }
  return names;
}

/** Losses go down; every other metric wndc computes (AUC, MAP@k, ...) goes up. */
function lowerIsBetter(metric: string): boolean {
  return /loss/i.test(metric);
}

// ---- charts ----

/** About `count` round tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5, integer = false): number[] {
  if (lo === hi) {
    const pad = Math.abs(lo) * 0.05 || 1;
    lo -= pad;
    hi += pad;
  }
  const raw = (hi - lo) / Math.max(1, count - 1);
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const nice = ([1, 2, 2.5, 5, 10].find((m) => m * magnitude >= raw) ?? 10) * magnitude;
  const step = integer ? Math.max(1, Math.round(nice)) : nice;
  const first = Math.floor(lo / step + 1e-9) * step;
  const ticks: number[] = [];
  for (let v = first; v < hi + step * 0.999; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks.length >= 2 ? ticks : [first, first + step];
}

function tickLabel(value: number, ticks: readonly number[]): string {
  const step = ticks.length > 1 ? Math.abs(ticks[1]! - ticks[0]!) : 1;
  const decimals = Math.min(6, Math.max(0, -Math.floor(Math.log10(step) + 1e-9) + (Math.abs(step / 10 ** Math.floor(Math.log10(step)) - 2.5) < 1e-9 ? 1 : 0)));
  return value.toFixed(decimals);
}

const CHART = { width: 420, height: 250, left: 64, right: 16, top: 30, bottom: 46 };

/** A line chart of one series against steps, with axes, ticks, axis labels and a title. */
export function lineChart(title: string, yLabel: string, series: Series): string {
  const { width, height, left, right, top, bottom } = CHART;
  const xs = series.points.map((p) => p[0]);
  const ys = series.points.map((p) => p[1]);
  // Steps from 0: a curve starts where training did.
  const xTicks = niceTicks(0, Math.max(...xs), 5, true);
  const yTicks = niceTicks(Math.min(...ys), Math.max(...ys));
  const [x0, x1] = [xTicks[0]!, xTicks[xTicks.length - 1]!];
  const [y0, y1] = [yTicks[0]!, yTicks[yTicks.length - 1]!];
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const px = (x: number) => (left + ((x - x0) / (x1 - x0)) * plotW).toFixed(1);
  const py = (y: number) => (top + plotH - ((y - y0) / (y1 - y0)) * plotH).toFixed(1);
  const e = escapeHtml;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" aria-label="${e(title)}">`,
    `<text class="title" x="${width / 2}" y="18" text-anchor="middle">${e(title)}</text>`,
  ];
  for (const t of yTicks) {
    parts.push(`<line class="grid" x1="${left}" x2="${width - right}" y1="${py(t)}" y2="${py(t)}"/>`);
    parts.push(`<text class="tick" x="${left - 6}" y="${py(t)}" text-anchor="end" dominant-baseline="middle">${e(tickLabel(t, yTicks))}</text>`);
  }
  for (const t of xTicks) {
    parts.push(`<line class="tickmark" x1="${px(t)}" x2="${px(t)}" y1="${top + plotH}" y2="${top + plotH + 4}"/>`);
    parts.push(`<text class="tick" x="${px(t)}" y="${top + plotH + 16}" text-anchor="middle">${e(tickLabel(t, xTicks))}</text>`);
  }
  parts.push(`<line class="axis" x1="${left}" x2="${left}" y1="${top}" y2="${top + plotH}"/>`);
  parts.push(`<line class="axis" x1="${left}" x2="${width - right}" y1="${top + plotH}" y2="${top + plotH}"/>`);
  parts.push(`<text class="label" x="${left + plotW / 2}" y="${height - 8}" text-anchor="middle">step</text>`);
  parts.push(`<text class="label" transform="translate(14 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">${e(yLabel)}</text>`);
  parts.push(`<polyline class="line" points="${series.points.map(([x, y]) => `${px(x)},${py(y)}`).join(' ')}"/>`);
  // Dots mark the logged points (one per epoch), and make a one-point series visible.
  for (const [x, y] of series.points) parts.push(`<circle class="dot" cx="${px(x)}" cy="${py(y)}" r="2.5"><title>step ${x}: ${e(String(y))}</title></circle>`);
  parts.push('</svg>');
  return parts.join('\n');
}

// ---- page ----

function formatValue(v: number): string {
  return Number.isInteger(v) ? v.toLocaleString('en-US') : v.toFixed(4);
}

/** run.json as rows of (dotted key, value); arrays and leaf values as compact text. */
function flatten(value: unknown, prefix: string, rows: Array<[string, string]>): void {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length === 0) rows.push([prefix, '{}']);
    for (const [k, v] of entries) flatten(v, prefix === '' ? k : `${prefix}.${k}`, rows);
    return;
  }
  rows.push([prefix, typeof value === 'string' ? value : JSON.stringify(value) ?? String(value)]);
}

function table(head: readonly string[], rows: ReadonlyArray<readonly string[]>, numericFrom = 1): string {
  const e = escapeHtml;
  const cell = (tag: string, text: string, i: number) => `<${tag}${i >= numericFrom ? ' class="num"' : ''}>${e(text)}</${tag}>`;
  return [
    '<table>',
    `<thead><tr>${head.map((h, i) => cell('th', h, i)).join('')}</tr></thead>`,
    `<tbody>${rows.map((r) => `<tr>${r.map((c, i) => cell('td', c, i)).join('')}</tr>`).join('\n')}</tbody>`,
    '</table>',
  ].join('\n');
}

function lastEvaluation(records: readonly MetricsRecord[], metrics: readonly string[]): string {
  const last = [...records].reverse().find((r) => r.split === 'valid');
  if (last === undefined) return '<p>No evaluation yet: the run has no validation data, or has not finished an evaluated epoch.</p>';
  const rows = metrics.map((m) => {
    const v = last[m];
    const points = seriesOf(records, 'valid', m).points;
    const best = points.reduce<[number, number] | undefined>((b, p) => (b === undefined || (lowerIsBetter(m) ? p[1] < b[1] : p[1] > b[1]) ? p : b), undefined);
    return [m, typeof v === 'number' ? v.toFixed(4) : 'n/a', best === undefined ? 'n/a' : `${best[1].toFixed(4)} (step ${best[0]})`];
  });
  const where = [`step ${last.step}`, ...(typeof last.epoch === 'number' ? [`epoch ${last.epoch}`] : []), ...(typeof last.rows === 'number' ? [`${formatValue(last.rows)} rows`] : [])].join(', ');
  return `<p>${escapeHtml(where)}</p>\n${table(['metric', 'value', 'best'], rows)}`;
}

const STYLE = `
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto; max-width: 1320px; padding: 0 16px; color: #1f2328; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
.sub { color: #59636e; margin-top: 0; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
.chart { border: 1px solid #d1d9e0; border-radius: 6px; background: #fff; }
.chart .title { font-size: 13px; font-weight: 600; } .chart .tick { font-size: 10px; fill: #59636e; } .chart .label { font-size: 11px; fill: #1f2328; }
.chart .axis { stroke: #59636e; } .chart .grid { stroke: #eef1f4; } .chart .tickmark { stroke: #59636e; }
.chart .line { fill: none; stroke: #0969da; stroke-width: 1.75; } .chart .dot { fill: #0969da; }
table { border-collapse: collapse; } th, td { border-bottom: 1px solid #d1d9e0; padding: 4px 12px 4px 0; text-align: left; vertical-align: top; }
td.num, th.num { font-variant-numeric: tabular-nums; } td { word-break: break-word; }
`;

/** The whole page; every text that comes from the run is escaped. */
export function renderReport(input: ReportInput): string {
  const { records } = input;
  const e = escapeHtml;
  const metrics = validMetricNames(records);
  const charts: string[] = [];
  const loss = seriesOf(records, 'train', 'loss');
  if (loss.points.length > 0) charts.push(lineChart('train loss (epoch mean)', 'loss', loss));
  for (const m of metrics) {
    const s = seriesOf(records, 'valid', m);
    if (s.points.length > 0) charts.push(lineChart(`validation ${m}`, m, s));
  }
  const times = records.map((r) => r.time).filter((t): t is string => typeof t === 'string');
  const span = times.length > 0 ? `${times[0]} to ${times[times.length - 1]}, ` : '';
  const settings: Array<[string, string]> = [];
  if (input.run !== undefined) flatten(input.run, '', settings);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${e(`wndc report: ${input.title}`)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${e(input.title)}</h1>
<p class="sub">${e(`${span}${records.length} records in metrics.jsonl`)}</p>
<h2>Learning curves</h2>
<div class="charts">
${charts.length > 0 ? charts.join('\n') : '<p>No finite values to plot.</p>'}
</div>
<h2>Last evaluation</h2>
${lastEvaluation(records, metrics)}
<h2>Settings</h2>
${settings.length > 0 ? table(['setting', 'value'], settings, 2) : '<p>No run.json in the model folder (written by <code>wndc run</code> when training starts).</p>'}
</body>
</html>
`;
}
