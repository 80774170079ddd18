// Golden files for every example: the IR and the emitted module, byte for byte. The YAML twin of
// each example gives the identical IR, fmt leaves both forms unchanged, convert maps one onto the
// other exactly, and the emitted modules type-check under strict settings.
// UPDATE_GOLDEN=1 (npm run golden) rewrites the golden files; review the diff.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { test } from 'node:test';
import ts from 'typescript';
import { compileSource } from '../compiler/compile.js';
import { emitModule } from '../compiler/emit.js';
import { parseWnd } from '../dsl/wnd/parse.js';
import { printWnd } from '../dsl/wnd/print.js';
import { parseYaml } from '../dsl/yaml/parse.js';
import { printYaml } from '../dsl/yaml/print.js';
import { REPO } from './support/paths.js';

const UPDATE = process.env.UPDATE_GOLDEN === '1';
const GOLDEN = join(REPO, 'test', 'golden');

const examples = readdirSync(join(REPO, 'examples'))
  .map((dir) => join(REPO, 'examples', dir, `${dir}.wnd`))
  .filter((p) => existsSync(p))
  .sort();

function golden(name: string, actual: string): void {
  const path = join(GOLDEN, name);
  if (UPDATE) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, actual);
    return;
  }
  assert.ok(existsSync(path), `missing golden file ${name}: run \`npm run golden\``);
  assert.equal(actual, readFileSync(path, 'utf8'), `${name} differs from its golden file (run \`npm run golden\` and review the diff)`);
}

test('there are examples to check', () => {
  assert.ok(examples.length >= 5, `found ${examples.length} examples`);
});

for (const wndPath of examples) {
  const model = basename(wndPath, '.wnd');
  const yamlPath = wndPath.replace(/\.wnd$/, '.yaml');
  const wndSource = readFileSync(wndPath, 'utf8');
  const rel = `examples/${model}/${model}.wnd`;

  test(`${model}: compiles without diagnostics and matches its golden IR and module`, () => {
    const result = compileSource(wndSource, rel, 'wnd', { baseDir: dirname(wndPath) });
    assert.deepEqual(result.diagnostics.map((d) => `${d.code} ${d.message}`), []);
    assert.ok(result.ir);
    golden(`${model}.ir.json`, `${JSON.stringify(result.ir, null, 2)}\n`);
    const module = emitModule(result.ir);
    assert.equal(emitModule(result.ir), module, 'emission is deterministic');
    golden(`${model}.model.ts`, module);
  });

  test(`${model}: the YAML twin gives the identical IR`, () => {
    assert.ok(existsSync(yamlPath), `missing ${yamlPath}: run \`wndc convert ${rel} --to yaml -o ${rel.replace(/\.wnd$/, '.yaml')}\``);
    const yamlSource = readFileSync(yamlPath, 'utf8');
    const fromWnd = compileSource(wndSource, rel, 'wnd', { baseDir: dirname(wndPath) });
    const fromYaml = compileSource(yamlSource, rel.replace(/\.wnd$/, '.yaml'), 'yaml', { baseDir: dirname(yamlPath) });
    assert.deepEqual(fromYaml.diagnostics.map((d) => `${d.code} ${d.message}`), []);
    assert.equal(JSON.stringify(fromYaml.ir), JSON.stringify(fromWnd.ir));
  });

  test(`${model}: fmt leaves both forms unchanged and convert round-trips exactly`, () => {
    const yamlSource = readFileSync(yamlPath, 'utf8');
    const wndAst = parseWnd(wndSource, rel).ast;
    const yamlAst = parseYaml(yamlSource, rel).ast;
    assert.equal(printWnd(wndAst), wndSource, 'the .wnd example is in canonical layout');
    assert.equal(printYaml(yamlAst), yamlSource, 'the YAML example is in canonical layout');
    assert.equal(printYaml(wndAst), yamlSource, '.wnd -> YAML gives the YAML twin');
    assert.equal(printWnd(yamlAst), wndSource, 'YAML -> .wnd gives the .wnd original');
  });
}

test('emitted modules type-check under strict settings', { skip: UPDATE ? 'golden files are being rewritten' : false }, () => {
  const files = readdirSync(GOLDEN)
    .filter((f) => f.endsWith('.model.ts'))
    .map((f) => join(GOLDEN, f));
  assert.ok(files.length >= examples.length);
  const program = ts.createProgram(files, {
    strict: true,
    noUncheckedIndexedAccess: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    skipLibCheck: true,
    types: ['node'],
    paths: { 'wndc/runtime': [join(REPO, 'runtime', 'index.ts')] },
    allowImportingTsExtensions: true,
  });
  const diagnostics = ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file ? `${basename(d.file.fileName)}:${d.file.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}` : '';
    return `${where} ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
  });
  assert.deepEqual(diagnostics, []);
});
