// docs/language.md is the language reference; this test keeps it from drifting away from the
// language. Every complete spec in it compiles without errors, every fragment compiles inside the
// running example, every name of the language table appears in it, and every parameter table agrees
// with dsl/language.ts on parameters, types and defaults.
//
// Code blocks: ```wnd / ```yaml whose first line of code starts with `model` are complete specs;
// ```wnd SECTION / ```yaml SECTION are fragments of that section, merged into the running example
// (the complete specs under `## The running example`): their declarations or properties replace
// those of the same name there, the rest are added. ```text file=NAME is a file the specs can read.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { test } from 'node:test';
import { SECTION_NAMES, type ModelAst, type SectionName, type Span } from '../dsl/ast.js';
import {
  ACTIVATIONS,
  BLOCK_PROPS,
  COLUMN_ROLES,
  COLUMN_TYPES,
  COMBINERS,
  DECAYS,
  FAMILIES,
  FEATURE_KINDS,
  ID_MAPPINGS,
  INITIALIZERS,
  LAST_BATCH,
  LOSSES,
  METRIC_NAMES,
  NORMALISATIONS,
  OPTIMIZERS,
  PRECISIONS,
  type JsonValue,
  type ParamSpec,
  type ParamType,
} from '../dsl/language.js';
import { compileSource, parseSource, type SourceFormat } from '../compiler/compile.js';
import { hasErrors } from '../compiler/diagnostics.js';
import { LineIndex, renderDiagnostic } from '../compiler/render.js';
import { REPO } from './support/paths.js';

const DOC = readFileSync(join(REPO, 'docs', 'language.md'), 'utf8');
const DOC_LINES = new LineIndex(DOC);

interface Fence {
  lang: string;
  /** The info string after the language: a section name, `file=NAME`, or nothing. */
  tag: string;
  body: string;
  /** 1-based line of the opening fence, for messages. */
  line: number;
  start: number;
}

const FENCES: Fence[] = [...DOC.matchAll(/^```([^\n]*)\n([\s\S]*?)^```$/gm)].map((m) => {
  const [lang = '', ...rest] = m[1]!.trim().split(/\s+/);
  return { lang, tag: rest.join(' '), body: m[2]!, line: DOC_LINES.position(m.index!).line, start: m.index! };
});

const SPEC_LANGS: Readonly<Record<string, SourceFormat>> = { wnd: 'wnd', yaml: 'yaml' };

/** Files the examples may read: ```text file=NAME blocks. */
const FILES = new Map(FENCES.filter((f) => f.tag.startsWith('file=')).map((f) => [f.tag.slice('file='.length), f.body]));

function isComplete(fence: Fence): boolean {
  const firstCode = fence.body.split('\n').find((l) => l.trim() !== '' && !l.trim().startsWith('#'));
  return firstCode !== undefined && /^model\b/.test(firstCode);
}

function compile(source: string, format: SourceFormat) {
  return compileSource(source, `example.${format}`, format, { readText: (path) => FILES.get(basename(path)) });
}

function errorsOf(source: string, format: SourceFormat): string {
  const result = compile(source, format);
  return result.diagnostics
    .filter((d) => d.severity === 'error')
    .map((d) => renderDiagnostic(d, source))
    .join('\n\n');
}

const specFences = FENCES.filter((f) => f.lang in SPEC_LANGS);

// The running example: the complete specs in the section of that name.
const runningFrom = DOC.indexOf('\n## The running example\n');
const runningTo = DOC.indexOf('\n## ', runningFrom + 1);
const running = specFences.filter((f) => f.start > runningFrom && f.start < runningTo && isComplete(f));
const runningOf = (format: SourceFormat): string => running.find((f) => SPEC_LANGS[f.lang] === format)!.body;

test('the running example is given once in each form, compiles cleanly and both forms give one IR', () => {
  assert.ok(runningFrom >= 0, 'the reference needs a `## The running example` section');
  assert.deepEqual(running.map((f) => f.lang).sort(), ['wnd', 'yaml']);
  const wnd = compile(runningOf('wnd'), 'wnd');
  const yaml = compile(runningOf('yaml'), 'yaml');
  assert.deepEqual(wnd.diagnostics.map((d) => renderDiagnostic(d, runningOf('wnd'))), []);
  assert.deepEqual(yaml.diagnostics.map((d) => renderDiagnostic(d, runningOf('yaml'))), []);
  assert.ok(wnd.ir && yaml.ir);
  assert.equal(JSON.stringify(yaml.ir), JSON.stringify(wnd.ir));
});

test('every spec block is a complete spec or names the section it is a fragment of', () => {
  for (const f of specFences) {
    if (isComplete(f)) continue;
    assert.ok((SECTION_NAMES as readonly string[]).includes(f.tag), `line ${f.line}: a \`\`\`${f.lang} fragment needs its section in the info string, e.g. \`\`\`${f.lang} features`);
  }
});

for (const f of specFences.filter(isComplete)) {
  test(`line ${f.line}: the complete ${f.lang} spec compiles without errors`, () => {
    const format = SPEC_LANGS[f.lang]!;
    assert.equal(errorsOf(f.body, format), '', `the spec at line ${f.line} has errors`);
  });
}

for (const f of specFences.filter((x) => !isComplete(x) && (SECTION_NAMES as readonly string[]).includes(x.tag))) {
  test(`line ${f.line}: the ${f.lang} ${f.tag} fragment compiles inside the running example`, () => {
    const format = SPEC_LANGS[f.lang]!;
    const merged = mergeFragment(runningOf(format), format, f.tag as SectionName, f.body);
    assert.equal(errorsOf(merged, format), '', `the fragment at line ${f.line}, merged:\n${merged}`);
  });
}

/** The running example with a fragment of `section` merged in, replacing entries of the same name. */
function mergeFragment(base: string, format: SourceFormat, section: SectionName, body: string): string {
  const wrapped = format === 'wnd' ? `model fragment\n${section} {\n${body}}\n` : `${section}:\n${body}`;
  const fragment = parseSource(wrapped, `fragment.${format}`, format).ast;
  const names = new Set(entries(fragment, section).map((e) => e.name));
  assert.ok(names.size > 0, `the ${section} fragment declares nothing:\n${body}`);
  const ast = parseSource(base, `example.${format}`, format).ast;
  const index = new LineIndex(base);
  const lineOf = (offset: number) => index.position(offset).line - 1; // 0-based
  const lines = base.replace(/\n$/, '').split('\n');
  const drop = new Set<number>();
  for (const e of entries(ast, section)) {
    if (!names.has(e.name)) continue;
    for (let l = lineOf(e.span.start); l <= lineOf(e.span.end - 1); l++) drop.add(l);
  }
  const target = ast[section];
  const fragmentLines = body.replace(/\n$/, '').split('\n');
  let at: number;
  if (target === undefined) {
    at = lines.length;
    fragmentLines.unshift('', format === 'wnd' ? `${section} {` : `${section}:`);
    if (format === 'wnd') fragmentLines.push('}');
  } else {
    // Before the closing `}` of a .wnd section, after the last line of a YAML one.
    at = format === 'wnd' ? lineOf(target.span.end - 1) : lineOf(target.span.end - 1) + 1;
  }
  const out: string[] = [];
  lines.forEach((line, i) => {
    if (i === at) out.push(...fragmentLines);
    if (!drop.has(i)) out.push(line);
  });
  if (at >= lines.length) out.push(...fragmentLines);
  return `${out.join('\n')}\n`;
}

function entries(ast: ModelAst, section: SectionName): { name: string; span: Span }[] {
  if (section === 'input') return (ast.input?.columns ?? []).map((c) => ({ name: c.name.name, span: c.span }));
  if (section === 'features') return (ast.features?.features ?? []).map((f) => ({ name: f.name.name, span: f.span }));
  return (ast[section]?.props ?? []).map((p) => ({ name: p.key.name, span: p.span }));
}

test('the fragment merge replaces entries of the same name and adds the others', () => {
  const merged = mergeFragment(runningOf('wnd'), 'wnd', 'train', '  epochs: 9\n  seed: 3\n');
  const train = parseSource(merged, 'm.wnd', 'wnd').ast.train!;
  const props = Object.fromEntries(train.props.map((p) => [p.key.name, p.value.type === 'number' ? p.value.value : p.value.type]));
  assert.deepEqual(props, { batch_size: 512, metrics: 'list', epochs: 9, seed: 3 });
  const yaml = mergeFragment(runningOf('yaml'), 'yaml', 'head', '  loss: binary_crossentropy\n');
  assert.equal(parseSource(yaml, 'm.yaml', 'yaml').ast.head?.props[0]?.key.name, 'loss');
  assert.ok(hasErrors(compile(mergeFragment(runningOf('wnd'), 'wnd', 'features', '  user_id = hashed(nope, buckets: 5)\n'), 'wnd').diagnostics));
});

test('every name of the language appears in the reference, in backticks', () => {
  const names = [
    ...SECTION_NAMES,
    ...FEATURE_KINDS.map((c) => c.name),
    ...OPTIMIZERS.map((c) => c.name),
    ...INITIALIZERS.map((c) => c.name),
    ...DECAYS.map((c) => c.name),
    ...Object.values(BLOCK_PROPS).flatMap((ps) => ps.map((p) => p.name)),
    ...Object.values(FAMILIES).flatMap((cs) => cs.flatMap((c) => c.params.map((p) => p.name))),
    ...COLUMN_TYPES,
    ...COLUMN_ROLES.map((r) => `@${r}`),
    ...NORMALISATIONS,
    ...COMBINERS,
    ...ID_MAPPINGS,
    ...ACTIVATIONS,
    ...PRECISIONS,
    ...LAST_BATCH,
    ...LOSSES,
    ...METRIC_NAMES.map((m) => (m === 'map' ? 'map@k' : m)),
  ];
  const missing = [...new Set(names)].filter((n) => !DOC.includes(`\`${n}\``));
  assert.deepEqual(missing, []);
});

interface ParamTable {
  owner: string;
  line: number;
  rows: { name: string; type: string; default: string }[];
}

const TABLE_HEADER = '| parameter | type | default | meaning |';

/** Every parameter table, owned by the first name in backticks of the heading above it. */
function paramTables(): ParamTable[] {
  const lines = DOC.split('\n');
  const tables: ParamTable[] = [];
  let heading = '';
  let inFence = false;
  lines.forEach((line, i) => {
    if (line.startsWith('```')) inFence = !inFence;
    if (inFence) return;
    if (/^#+ /.test(line)) heading = line;
    if (line.trim() !== TABLE_HEADER) return;
    const owner = /`([^`]+)`/.exec(heading)?.[1] ?? '';
    const rows: ParamTable['rows'] = [];
    for (let j = i + 2; j < lines.length && lines[j]!.startsWith('|'); j++) {
      const cells = lines[j]!.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim());
      rows.push({ name: plain(cells[0] ?? ''), type: plain(cells[1] ?? ''), default: plain(cells[2] ?? '') });
    }
    tables.push({ owner, line: i + 1, rows });
  });
  return tables;
}

const plain = (cell: string): string => cell.replace(/`/g, '').trim();

function paramsOf(owner: string): readonly ParamSpec[] | undefined {
  if (owner in BLOCK_PROPS) return BLOCK_PROPS[owner as keyof typeof BLOCK_PROPS];
  for (const family of Object.values(FAMILIES)) {
    const callable = family.find((c) => c.name === owner);
    if (callable !== undefined) return callable.params;
  }
  return undefined;
}

/** How a parameter table writes a type: `int ≥ 1`, `number in [0, 1)`, `[feature name], ≥ 2 items`. */
function typeLabel(t: ParamType): string {
  switch (t.kind) {
    case 'int':
    case 'number': {
      const { min, max } = t;
      const exMin = t.kind === 'number' && t.exclusiveMin === true;
      const exMax = t.kind === 'number' && t.exclusiveMax === true;
      if (min !== undefined && max !== undefined) return `${t.kind} in ${exMin ? '(' : '['}${min}, ${max}${exMax ? ')' : ']'}`;
      if (min !== undefined) return `${t.kind} ${exMin ? '>' : '≥'} ${min}`;
      if (max !== undefined) return `${t.kind} ${exMax ? '<' : '≤'} ${max}`;
      return t.kind;
    }
    case 'bool':
    case 'string':
    case 'size':
    case 'metric':
    case 'literal':
      return t.kind;
    case 'enum':
      return t.values.join(', ');
    case 'ref':
      return `${t.to === 'share' ? 'share group' : t.to} name`;
    case 'list':
      return `[${typeLabel(t.of)}]${t.minItems === undefined ? '' : `, ≥ ${t.minItems} item${t.minItems === 1 ? '' : 's'}`}`;
    case 'call':
      return t.only === undefined ? t.family : `${t.only.join('/')} call`;
    case 'oneOf':
      return t.options.map(typeLabel).join(' or ');
  }
}

/** How a parameter table writes a default: `required`, `—` (unset), or the value as in `.wnd`. */
function defaultLabel(p: ParamSpec): string {
  if (p.required) return 'required';
  if (p.default === undefined) return '—';
  const show = (v: JsonValue): string => (Array.isArray(v) ? `[${v.map(show).join(', ')}]` : String(v));
  return show(p.default);
}

test('every parameter table agrees with the language table: parameters, types and defaults', () => {
  const tables = paramTables();
  assert.ok(tables.length > 0);
  for (const table of tables) {
    const params = paramsOf(table.owner);
    assert.ok(params, `line ${table.line}: the heading above a parameter table must name its kind or block in backticks, found \`${table.owner}\``);
    const where = `line ${table.line} (\`${table.owner}\`)`;
    assert.deepEqual(table.rows.map((r) => r.name), params.map((p) => p.name), `${where}: the parameters, in the language table's order`);
    for (const [i, row] of table.rows.entries()) {
      assert.equal(row.type, typeLabel(params[i]!.type), `${where}: the type of \`${row.name}\``);
      assert.equal(row.default, defaultLabel(params[i]!), `${where}: the default of \`${row.name}\``);
    }
  }
});

test('every block and every kind, optimizer, initializer and decay with parameters has its table', () => {
  const owners = new Set(paramTables().map((t) => t.owner));
  const expected = [...Object.keys(BLOCK_PROPS), ...Object.values(FAMILIES).flatMap((cs) => cs.filter((c) => c.params.length > 0).map((c) => c.name))];
  assert.deepEqual(expected.filter((name) => !owners.has(name)), []);
});
