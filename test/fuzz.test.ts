// The whole compiler (parse, check, lower) on broken input: random bytes, truncations and token-level
// mutations of the real examples, in both forms. It must never throw, and every diagnostic must point
// inside the file. Seeded, so a failure reproduces.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { compileSource, type SourceFormat } from '../compiler/compile.js';
import { printYaml } from '../dsl/yaml/print.js';
import { parseWnd } from '../dsl/wnd/parse.js';
import { REPO } from './support/paths.js';
import { seededRandom as rng } from './support/random.js';


const wndSources = readdirSync(join(REPO, 'examples')).map((d) => readFileSync(join(REPO, 'examples', d, `${d}.wnd`), 'utf8'));
const yamlSources = wndSources.map((s) => printYaml(parseWnd(s, 'x.wnd').ast));

function compileSafely(source: string, format: SourceFormat, label: string): void {
  let result;
  try {
    result = compileSource(source, `fuzz.${format}`, format, { readText: () => undefined });
  } catch (e) {
    assert.fail(`${label}: the compiler threw ${(e as Error).stack}\n--- input ---\n${source.slice(0, 2000)}`);
  }
  for (const d of result.diagnostics) {
    assert.ok(d.span.start >= 0 && d.span.start <= d.span.end && d.span.end <= source.length, `${label}: ${d.code} span ${d.span.start}..${d.span.end} outside 0..${source.length}`);
  }
}

function mutate(source: string, next: () => number): string {
  const pieces = source.split(/(\s+|[{}()[\]:,=@<>])/).filter((p) => p.length > 0);
  const edits = 1 + Math.floor(next() * 4);
  for (let e = 0; e < edits; e++) {
    const i = Math.floor(next() * pieces.length);
    const j = Math.floor(next() * pieces.length);
    switch (Math.floor(next() * 5)) {
      case 0:
        pieces.splice(i, 1);
        break;
      case 1:
        pieces.splice(i, 0, pieces[j]!);
        break;
      case 2:
        [pieces[i], pieces[j]] = [pieces[j]!, pieces[i]!];
        break;
      case 3:
        pieces[i] = ['-1', '0', '1e999', '"', '#', '{', '}', '[', ']', 'true', 'x"; process.exit(1); "', '\u2028', '\t', 'list<', ':', '@label', '16GiB', 'map@0', 'NaN'][Math.floor(next() * 19)]!;
        break;
      default:
        pieces[i] = (pieces[i] ?? '').slice(0, Math.floor(next() * 4));
    }
  }
  return pieces.join('');
}

for (const format of ['wnd', 'yaml'] as const) {
  const sources = format === 'wnd' ? wndSources : yamlSources;

  test(`${format}: truncations of every example never crash the compiler`, () => {
    for (const source of sources) {
      for (let cut = 0; cut < source.length; cut += format === 'wnd' ? 37 : 61) compileSafely(source.slice(0, cut), format, `truncated at ${cut}`);
    }
  });

  test(`${format}: token mutations of every example never crash the compiler`, () => {
    const next = rng(format === 'wnd' ? 1 : 2);
    for (let round = 0; round < (format === 'wnd' ? 600 : 300); round++) {
      const source = sources[round % sources.length]!;
      compileSafely(mutate(source, next), format, `mutation round ${round}`);
    }
  });

  test(`${format}: random bytes never crash the compiler`, () => {
    const next = rng(format === 'wnd' ? 3 : 4);
    const alphabet = 'model input features wide deep train head {}[]():,=@<>#"\\\n\t -0123456789.eE abcxyz_ list int float string hashed crossed embedding ftrl map@12 16GiB ';
    for (let round = 0; round < 400; round++) {
      const length = Math.floor(next() * 300);
      let s = '';
      for (let i = 0; i < length; i++) {
        s += next() < 0.05 ? String.fromCharCode(Math.floor(next() * 0x3000)) : alphabet[Math.floor(next() * alphabet.length)]!;
      }
      compileSafely(s, format, `random round ${round}`);
    }
  });
}
