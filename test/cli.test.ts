// The `wndc` command line: exit codes, where output goes, files written, JSON shapes.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli } from '../cli/main.js';
import { REPO } from './support/paths.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function wndc(args: string[], cwd = REPO): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, { stdout: (s) => (stdout += s), stderr: (s) => (stderr += s), cwd, color: false });
  return { code, stdout, stderr };
}

const BROKEN = `model broken
input {
  clicked: int @label
  ad: int
}
features {
  ad_h = hashed(add, buckets: 0)
}
wide {
  features: [ad_h]
  optimizer: ftrl(learning_rate: 0.1)
}
`;

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'wndc-cli-'));
}

test('check: a clean example exits 0 with a summary on stderr and nothing on stdout', async () => {
  const r = await wndc(['check', 'examples/quickstart/quickstart.wnd']);
  assert.equal(r.code, 0);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, 'examples/quickstart/quickstart.wnd: 0 errors, 0 warnings\n');
});

test('check: every error of a file in one run, exit 1', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'broken.wnd'), BROKEN);
  const r = await wndc(['check', 'broken.wnd'], dir);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /error\[WND3001\]: unknown column `add`\n --> broken.wnd:7:17\n/);
  assert.match(r.stderr, /error\[WND4004\]: `buckets` must be a positive integer, found 0\n --> broken.wnd:7:31\n/);
  assert.match(r.stderr, /= help: did you mean `ad`\?/);
  assert.match(r.stderr, /broken.wnd: 2 errors, 0 warnings\n$/);
});

test('check --format json: one object with errors and warnings on stdout', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'broken.wnd'), BROKEN);
  const r = await wndc(['check', 'broken.wnd', '--format', 'json'], dir);
  assert.equal(r.code, 1);
  const out = JSON.parse(r.stdout) as { file: string; errors: Record<string, unknown>[]; warnings: unknown[] };
  assert.equal(out.file, 'broken.wnd');
  assert.deepEqual(out.warnings, []);
  assert.deepEqual(
    out.errors.map((e) => [e.code, e.line, e.column, e.start, e.length]),
    [
      ['WND3001', 7, 17, BROKEN.indexOf('add'), 3],
      ['WND4004', 7, 31, BROKEN.indexOf('0)'), 1],
    ],
  );
  assert.equal(out.errors[0]!.help, 'did you mean `ad`?');
});

test('usage errors exit 2 with one line and no stack trace', async () => {
  for (const [args, message] of [
    [['check', 'missing.wnd'], 'wndc: no such file: missing.wnd\n'],
    [['check', 'README.md'], 'wndc: cannot tell the format of "README.md": name it *.wnd, *.yaml or *.yml\n'],
    [['check', 'examples/quickstart/quickstart.wnd', '--format', 'xml'], 'wndc: --format takes `text` or `json`, not "xml"\n'],
    [['convert', 'examples/quickstart/quickstart.wnd', '--to', 'toml'], 'wndc: --to takes `yaml` or `wnd`, not "toml"\n'],
  ] as const) {
    const r = await wndc([...args]);
    assert.equal(r.code, 2, args.join(' '));
    assert.equal(r.stderr, message);
  }
  const unknown = await wndc(['frobnicate']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command 'frobnicate'/);
  assert.doesNotMatch(unknown.stderr, /\n\s+at /);
});

test('compile writes <model>.model.ts and <model>.ir.json into -o, and nothing on errors', async () => {
  const dir = tempDir();
  const r = await wndc(['compile', join(REPO, 'examples/quickstart/quickstart.wnd'), '-o', join(dir, 'out')], dir);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(readdirSync(join(dir, 'out')).sort(), ['quickstart.ir.json', 'quickstart.model.ts']);
  const ir = JSON.parse(readFileSync(join(dir, 'out', 'quickstart.ir.json'), 'utf8')) as { irVersion: number; model: string };
  assert.equal(ir.irVersion, 1);
  assert.equal(ir.model, 'quickstart');
  assert.match(readFileSync(join(dir, 'out', 'quickstart.model.ts'), 'utf8'), /export function encodeRow\(/);

  writeFileSync(join(dir, 'broken.wnd'), BROKEN);
  const bad = await wndc(['compile', 'broken.wnd', '-o', 'bad-out'], dir);
  assert.equal(bad.code, 1);
  assert.equal(existsSync(join(dir, 'bad-out')), false);
});

test('compile defaults to writing next to the spec', async () => {
  const dir = tempDir();
  copyFileSync(join(REPO, 'examples/quickstart/quickstart.wnd'), join(dir, 'q.wnd'));
  const r = await wndc(['compile', 'q.wnd'], dir);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(existsSync(join(dir, 'quickstart.model.ts')));
});

test('inspect --json reports the Outbrain recipe: 54 features, deep input width 1328', async () => {
  const r = await wndc(['inspect', 'examples/outbrain/outbrain.wnd', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { features: number; deepInputWidth: number; parameters: number; tables: { name: string; rows: number; dim: number }[]; flopsPerExample: { train: number } };
  assert.equal(out.features, 54);
  assert.equal(out.deepInputWidth, 1328);
  // Tower: 1328x1024 + 4 x 1024x1024 + 1024x1 weights, 5 x 1024 + 1 biases.
  const dense = 1328 * 1024 + 4 * 1024 * 1024 + 1024 + 5 * 1024 + 1;
  const deepTables = out.tables.filter((t) => t.name.startsWith('deep/'));
  const embeddings = deepTables.reduce((s, t) => s + t.rows * t.dim, 0);
  const wide = out.tables.filter((t) => t.name.startsWith('wide/')).reduce((s, t) => s + t.rows * t.dim, 0) + 1;
  assert.equal(out.parameters, dense + embeddings + wide);
  assert.deepEqual(out.tables.find((t) => t.name === 'deep/embeddings/ad_id_embedding'), { name: 'deep/embeddings/ad_id_embedding', part: 'deep', rows: 250000, dim: 128, parameters: 32000000, bytes: 32000000 * 4 * 2 });
  assert.equal(Math.round(out.flopsPerExample.train / 1e5) / 10, 33.3);
});

test('inspect prints the tables for people', async () => {
  const r = await wndc(['inspect', 'examples/outbrain/outbrain.wnd']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^model outbrain \(IR v1\)\n  features            54\n  deep input width    1328\n/);
  assert.match(r.stdout, /deep\/layers\/dense_0\s+1,328\s+1,024\s+1,360,896/);
});

test('fmt --check passes on the examples and fails on a messy file, which fmt then rewrites', async () => {
  const ok = await wndc(['fmt', '--check', ...readdirSync(join(REPO, 'examples')).map((d) => `examples/${d}/${d}.wnd`)]);
  assert.equal(ok.code, 0, ok.stderr);
  const dir = tempDir();
  writeFileSync(join(dir, 'messy.wnd'), 'model   m   # the model\ninput{clicked:int@label}\n');
  const check = await wndc(['fmt', '--check', 'messy.wnd'], dir);
  assert.equal(check.code, 1);
  assert.equal(check.stderr, 'messy.wnd: not formatted (run `wndc fmt messy.wnd`)\n');
  const fmt = await wndc(['fmt', 'messy.wnd'], dir);
  assert.equal(fmt.code, 0);
  assert.equal(readFileSync(join(dir, 'messy.wnd'), 'utf8'), `model m${' '.repeat(27)}# the model\n\ninput {\n  clicked: int @label\n}\n`);
});

test('fmt refuses a file with syntax errors and leaves it untouched', async () => {
  const dir = tempDir();
  writeFileSync(join(dir, 'bad.wnd'), 'model m\ninput { clicked int }\n');
  const r = await wndc(['fmt', 'bad.wnd'], dir);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /error\[WND1003\]/);
  assert.equal(readFileSync(join(dir, 'bad.wnd'), 'utf8'), 'model m\ninput { clicked int }\n');
});

test('convert round-trips: .wnd -> YAML -> .wnd gives the original', async () => {
  const dir = tempDir();
  const toYaml = await wndc(['convert', join(REPO, 'examples/movielens/movielens.wnd'), '--to', 'yaml', '-o', join(dir, 'm.yaml')], dir);
  assert.equal(toYaml.code, 0, toYaml.stderr);
  const back = await wndc(['convert', 'm.yaml', '--to', 'wnd'], dir);
  assert.equal(back.code, 0, back.stderr);
  assert.equal(back.stdout, readFileSync(join(REPO, 'examples/movielens/movielens.wnd'), 'utf8'));
});

test('the wndc process itself: exit codes reach the shell', () => {
  const run = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', join(REPO, 'cli', 'wndc.ts'), ...args], { cwd: REPO, encoding: 'utf8' });
  assert.equal(run(['check', 'examples/quickstart/quickstart.wnd']).status, 0);
  assert.equal(run(['check', 'nope.wnd']).status, 2);
  const version = run(['--version']);
  assert.equal(version.status, 0);
  assert.match(version.stdout, /^\d+\.\d+\.\d+\n$/);
});
