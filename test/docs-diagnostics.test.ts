// docs/diagnostics.md is the diagnostics reference and, at the same time, the test of every code:
// each `## WNDxxxx: title` section holds an example spec (```wnd or ```yaml), the exact diagnostics of
// that code it produces (```text: code, message, file:line:col, the span underlined, help), and a
// fixed spec that no longer produces that code. UPDATE_DOCS=1 rewrites the ```text blocks.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { compileSource, type SourceFormat } from '../compiler/compile.js';
import { CATALOG, type DiagnosticCode } from '../compiler/diagnostics.js';
import { renderDiagnostic } from '../compiler/render.js';
import { REPO } from './support/paths.js';

const DOC = join(REPO, 'docs', 'diagnostics.md');
const UPDATE = process.env.UPDATE_DOCS === '1';

interface Block {
  lang: string;
  body: string;
  /** Offsets of the body in the document, for rewriting. */
  start: number;
  end: number;
}

interface Section {
  code: string;
  title: string;
  blocks: Block[];
}

function sections(doc: string): Section[] {
  const out: Section[] = [];
  const heading = /^## (WND\d{4}): (.+)$/gm;
  const matches = [...doc.matchAll(heading)];
  matches.forEach((m, i) => {
    const from = m.index! + m[0].length;
    const to = i + 1 < matches.length ? matches[i + 1]!.index! : doc.length;
    const blocks: Block[] = [];
    const fence = /^```(\w*)[^\n]*\n([\s\S]*?)^```$/gm;
    fence.lastIndex = from;
    for (let b = fence.exec(doc); b !== null && b.index < to; b = fence.exec(doc)) {
      const bodyStart = b.index + b[0].indexOf('\n') + 1;
      blocks.push({ lang: b[1]!, body: b[2]!, start: bodyStart, end: bodyStart + b[2]!.length });
    }
    out.push({ code: m[1]!, title: m[2]!, blocks });
  });
  return out;
}

const EXAMPLE_FILE: Record<string, { file: string; format: SourceFormat }> = {
  wnd: { file: 'example.wnd', format: 'wnd' },
  yaml: { file: 'example.yaml', format: 'yaml' },
};

function compileBlock(block: Block) {
  const kind = EXAMPLE_FILE[block.lang];
  assert.ok(kind, `a spec block must be \`\`\`wnd or \`\`\`yaml, found \`\`\`${block.lang}`);
  return { ...compileSource(block.body, kind.file, kind.format, { readText: () => undefined }), source: block.body };
}

function expectedOutput(section: Section, block: Block): string {
  const result = compileBlock(block);
  const mine = result.diagnostics.filter((d) => d.code === section.code);
  return `${mine.map((d) => renderDiagnostic(d, result.source)).join('\n\n')}\n`;
}

const doc = readFileSync(DOC, 'utf8');
const all = sections(doc);

test('every catalog code is documented once, with its catalog title, and nothing else is', () => {
  const documented = all.map((s) => s.code);
  assert.deepEqual([...documented].sort(), Object.keys(CATALOG).sort());
  for (const s of all) assert.equal(s.title, CATALOG[s.code as DiagnosticCode].title, `${s.code}'s heading`);
});

if (UPDATE) {
  test('rewrite the expected output blocks', () => {
    let text = doc;
    // From the end, so earlier offsets stay valid.
    for (const s of [...all].reverse()) {
      const [example, output] = s.blocks;
      if (example === undefined || output === undefined || output.lang !== 'text') continue;
      text = text.slice(0, output.start) + expectedOutput(s, example) + text.slice(output.end);
    }
    writeFileSync(DOC, text);
  });
} else {
  for (const s of all) {
    test(`${s.code}: the example gives exactly the documented diagnostics, and the fix removes them`, () => {
      const [example, output, fixed] = s.blocks;
      assert.ok(example && output && fixed, `${s.code} needs three blocks: the example, its output (\`\`\`text), the fix`);
      assert.equal(output.lang, 'text');
      const result = compileBlock(example);
      assert.ok(result.diagnostics.some((d) => d.code === s.code), `the example does not produce ${s.code}`);
      assert.equal(expectedOutput(s, example), output.body);
      const after = compileBlock(fixed);
      assert.deepEqual(
        after.diagnostics.filter((d) => d.code === s.code || d.severity === 'error').map((d) => `${d.code} ${d.message}`),
        [],
        `the fix of ${s.code} still has errors`,
      );
    });
  }
}
