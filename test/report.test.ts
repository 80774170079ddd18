// `wndc report`: one self-contained HTML page from metrics.jsonl and run.json: a chart per series
// with one point per logged step, the last evaluation, the settings, everything escaped; clear
// failures (exit 3) for a missing folder or missing/empty metrics.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli } from '../cli/main.js';
import { niceTicks } from '../cli/report.js';

async function wndc(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), cwd, color: false });
  return { code, stdout, stderr };
}

const METRICS = [
  { time: '2025-01-01T00:00:10.000Z', step: 20, epoch: 1, split: 'train', loss: 0.61 },
  { time: '2025-01-01T00:00:12.000Z', step: 20, epoch: 1, split: 'valid', rows: 1000, 'map@12': 0.52, auc: 0.64, logloss: 0.58 },
  { time: '2025-01-01T00:00:20.000Z', step: 40, epoch: 2, split: 'train', loss: 0.55 },
  { time: '2025-01-01T00:00:22.000Z', step: 40, epoch: 2, split: 'valid', rows: 1000, 'map@12': 0.57, auc: 0.69, logloss: 0.54 },
  { time: '2025-01-01T00:00:30.000Z', step: 60, epoch: 3, split: 'train', loss: 0.52 },
  // MAP@12 left out of the last evaluation (e.g. no group column): its chart keeps 2 points.
  { time: '2025-01-01T00:00:32.000Z', step: 60, epoch: 3, split: 'valid', rows: 1000, auc: 0.71, logloss: 0.55 },
];

function modelDir(model: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'wndc-report-'));
  writeFileSync(join(dir, 'metrics.jsonl'), `${METRICS.map((m) => JSON.stringify(m)).join('\n')}\n`);
  const run = { model, specHash: 'abc123', train: { batchSize: 512, epochs: 3, metrics: [{ kind: 'map', k: 12 }] }, wide: { optimizer: { kind: 'ftrl', learningRate: 0.2 } }, engine: 'tfjs', device: 'CPU (tfjs wasm, 2 threads)', wndcVersion: '0.1.0', data: 'synthetic (/tmp/x)', startedAt: '2025-01-01T00:00:00.000Z' };
  writeFileSync(join(dir, 'run.json'), JSON.stringify(run));
  return dir;
}

/** Each chart's title and its polyline's point count. */
function charts(html: string): Array<[title: string, points: number]> {
  return [...html.matchAll(/<svg[^>]*aria-label="([^"]*)"[\s\S]*?<polyline class="line" points="([^"]*)"\/>/g)].map((m) => [m[1]!, m[2]!.split(' ').length]);
}

test('report: a chart per series with one point per logged step, the last evaluation and the settings', async () => {
  const dir = modelDir('quickstart');
  const r = await wndc(['report', dir], dir);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, 'wrote report.html\n');
  const html = readFileSync(join(dir, 'report.html'), 'utf8');
  assert.deepEqual(charts(html), [
    ['train loss (epoch mean)', 3],
    ['validation map@12', 2],
    ['validation auc', 3],
    ['validation logloss', 3],
  ]);
  // Points lie inside the plot area and go left to right.
  const loss = /<polyline class="line" points="([^"]*)"/.exec(html)![1]!.split(' ').map((p) => p.split(',').map(Number) as [number, number]);
  assert.ok(loss.every(([x, y], i) => x >= 64 && x <= 404 && y >= 30 && y <= 204 && (i === 0 || x > loss[i - 1]![0])), JSON.stringify(loss));
  assert.match(html, /<text class="label"[^>]*>step<\/text>/);
  // Last evaluation: step, epoch, rows, each metric's value and best (highest AUC, lowest logloss).
  assert.match(html, /<p>step 60, epoch 3, 1,000 rows<\/p>/);
  assert.match(html, /<td>auc<\/td><td class="num">0\.7100<\/td><td class="num">0\.7100 \(step 60\)<\/td>/);
  assert.match(html, /<td>logloss<\/td><td class="num">0\.5500<\/td><td class="num">0\.5400 \(step 40\)<\/td>/);
  assert.match(html, /<td>map@12<\/td><td class="num">n\/a<\/td><td class="num">0\.5700 \(step 40\)<\/td>/);
  // Settings, flattened.
  assert.match(html, /<td>train\.batchSize<\/td><td>512<\/td>/);
  assert.match(html, /<td>wide\.optimizer\.kind<\/td><td>ftrl<\/td>/);
  assert.match(html, /<td>train\.metrics<\/td><td>\[\{&quot;kind&quot;:&quot;map&quot;,&quot;k&quot;:12\}\]<\/td>/);
  assert.match(html, /<td>device<\/td><td>CPU \(tfjs wasm, 2 threads\)<\/td>/);
  assert.match(html, /<h1>quickstart<\/h1>/);
  // Self-contained: nothing loaded from elsewhere.
  assert.doesNotMatch(html, /<script|<link|@import|url\(|src=/i);
});

test('report: text from the run is escaped', async () => {
  const dir = modelDir('<script>alert(1)</script>');
  const out = join(dir, 'custom', 'page.html');
  const r = await wndc(['report', dir, '-o', out], dir);
  assert.equal(r.code, 0, r.stderr);
  const html = readFileSync(out, 'utf8');
  assert.doesNotMatch(html, /<script/i);
  assert.match(html, /<h1>&lt;script&gt;alert\(1\)&lt;\/script&gt;<\/h1>/);
  assert.match(html, /<td>model<\/td><td>&lt;script&gt;alert\(1\)&lt;\/script&gt;<\/td>/);
});

test('report: a missing folder, missing or empty metrics fail with exit 3 and one clear line', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'wndc-report-'));
  const missing = await wndc(['report', 'nope'], dir);
  assert.deepEqual([missing.code, missing.stderr], [3, 'wndc: no such folder: nope\n']);
  const noMetrics = await wndc(['report', '.'], dir);
  assert.deepEqual([noMetrics.code, noMetrics.stderr], [3, 'wndc: no metrics.jsonl in .: train first (wndc run SPEC --model_dir .)\n']);
  writeFileSync(join(dir, 'metrics.jsonl'), '\n');
  const empty = await wndc(['report', '.'], dir);
  assert.deepEqual([empty.code, empty.stderr], [3, 'wndc: metrics.jsonl holds no records yet: train at least one epoch first\n']);
  // A line cut short by a killed run is skipped with a warning; the rest still makes a report.
  writeFileSync(join(dir, 'metrics.jsonl'), `${JSON.stringify(METRICS[0])}\n{"step": 4`);
  const partial = await wndc(['report', '.'], dir);
  assert.deepEqual([partial.code, partial.stderr], [0, 'wndc: warning: skipping line 2 of metrics.jsonl: not JSON\nwrote report.html\n']);
  assert.deepEqual(charts(readFileSync(join(dir, 'report.html'), 'utf8')), [['train loss (epoch mean)', 1]]);
  assert.match(readFileSync(join(dir, 'report.html'), 'utf8'), /No evaluation yet/);
});

test('axis ticks are round numbers covering the data', () => {
  assert.deepEqual(niceTicks(0.52, 0.71), [0.5, 0.55, 0.6, 0.65, 0.7, 0.75]);
  assert.deepEqual(niceTicks(20, 60, 5, true), [20, 30, 40, 50, 60]);
  assert.deepEqual(niceTicks(7, 7, 5, true), [6, 7, 8]);
});
