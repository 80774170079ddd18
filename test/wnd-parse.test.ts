// The `.wnd` front end: AST shape, spans, positional naming, comments, every WND1xxx diagnostic
// with its exact span and message, recovery, and a seeded fuzz run that must never throw.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { CallValue, ModelAst, Span, Value } from '../dsl/ast.js';
import { cstDts, CST_DTS_PATH } from '../dsl/wnd/gen-cst-dts.js';
import { parseWnd } from '../dsl/wnd/parse.js';
import { printWnd } from '../dsl/wnd/print.js';
import type { Diagnostic } from '../compiler/diagnostics.js';
import { REPO } from './support/paths.js';
import { seededRandom as rng } from './support/random.js';

const quickstart = readFileSync(join(REPO, 'examples', 'quickstart', 'quickstart.wnd'), 'utf8');

/** The span of the `nth` occurrence (0-based) of `text` in `source`. */
function spanOf(source: string, text: string, nth = 0): Span {
  let start = -1;
  for (let i = 0; i <= nth; i++) {
    start = source.indexOf(text, start + 1);
    assert.ok(start >= 0, `\`${text}\` occurs ${nth + 1} times in the source`);
  }
  return { start, end: start + text.length };
}

/** The span of `text` inside the first occurrence of `context`. */
function spanWithin(source: string, context: string, text: string): Span {
  const outer = spanOf(source, context);
  const offset = context.indexOf(text);
  assert.ok(offset >= 0, `\`${text}\` occurs in \`${context}\``);
  return { start: outer.start + offset, end: outer.start + offset + text.length };
}

function parse(source: string): { ast: ModelAst; diagnostics: Diagnostic[] } {
  return parseWnd(source, 'test.wnd');
}

/** Diagnostics as `code start-end message`, the form most assertions below compare. */
function brief(source: string): string[] {
  return parse(source).diagnostics.map((d) => `${d.code} ${d.span.start}-${d.span.end} ${d.message}`);
}

function line(code: string, span: Span, message: string): string {
  return `${code} ${span.start}-${span.end} ${message}`;
}

function only(source: string): Diagnostic {
  const { diagnostics } = parse(source);
  assert.equal(diagnostics.length, 1, `one diagnostic, got ${JSON.stringify(diagnostics.map((d) => d.message))}`);
  return diagnostics[0]!;
}

function call(v: Value | undefined): CallValue {
  assert.equal(v?.type, 'call');
  return v as CallValue;
}

/** `name=value` for each argument, values as JSON without spans. */
function args(c: CallValue): string[] {
  return c.args.map((a) => `${a.name.name}=${JSON.stringify(a.value, (k, v) => (k === 'span' ? undefined : v))}`);
}

const MODEL = 'model m\n';

// --- the quickstart -------------------------------------------------------------------------------

test('the quickstart parses without diagnostics', () => {
  assert.deepEqual(parse(quickstart).diagnostics, []);
});

test('quickstart: columns with types, defaults and roles', () => {
  const { ast } = parse(quickstart);
  assert.equal(ast.name?.name, 'quickstart');
  assert.deepEqual(ast.name?.span, spanWithin(quickstart, 'model quickstart', 'quickstart'));
  const columns = ast.input!.columns;
  assert.deepEqual(
    columns.map((c) => `${c.name.name}:${c.type.text}${c.default === undefined ? '' : `=${JSON.stringify(c.default.type === 'list' ? [] : (c.default as { value: unknown }).value)}`}${c.role === undefined ? '' : `@${c.role.name}`}`),
    ['request_id:int@group', 'clicked:int@label', 'user:string=""', 'item:int=0@item', 'hour:int=0', 'tags:list<string>=[]', 'price:float=0'],
  );
  const tags = columns[5]!;
  assert.deepEqual(tags.type.span, spanOf(quickstart, 'list<string>'));
  assert.deepEqual(tags.span, spanOf(quickstart, 'tags: list<string> = []'));
  assert.deepEqual(columns[0]!.role?.span, spanOf(quickstart, 'group'));
  assert.deepEqual(columns[0]!.span, spanOf(quickstart, 'request_id: int @group'));
});

test('quickstart: a crossed feature gets its positional features as one `features` list', () => {
  const { ast } = parse(quickstart);
  const crossed = ast.features!.features.find((f) => f.name.name === 'user_x_item')!;
  assert.deepEqual(crossed.span, spanOf(quickstart, 'user_x_item = crossed(user_id, item_id, buckets: 100000)'));
  const value = crossed.value;
  assert.equal(value.callee.name, 'crossed');
  assert.deepEqual(value.span, spanOf(quickstart, 'crossed(user_id, item_id, buckets: 100000)'));
  assert.deepEqual(args(value), ['features={"type":"list","items":[{"type":"text","value":"user_id"},{"type":"text","value":"item_id"}]}', 'buckets={"type":"number","value":100000}']);
  const features = value.args[0]!;
  assert.deepEqual(features.name.span, spanOf(quickstart, 'user_id, item_id'));
  assert.deepEqual(features.value.span, spanOf(quickstart, 'user_id, item_id'));
});

test('quickstart: one-positional features name their column; named arguments keep their order', () => {
  const { ast } = parse(quickstart);
  const tagBag = ast.features!.features.find((f) => f.name.name === 'tag_bag')!;
  assert.deepEqual(args(tagBag.value), [
    'column={"type":"text","value":"tags"}',
    'max_len={"type":"number","value":4}',
    'buckets={"type":"number","value":1000}',
    'combiner={"type":"text","value":"mean"}',
  ]);
  assert.deepEqual(tagBag.value.args[0]!.name.span, spanWithin(quickstart, 'multi_hot(tags', 'tags'));
});

test('quickstart: deep features hold inline calls named from the feature family, and plain names', () => {
  const { ast } = parse(quickstart);
  const features = ast.deep!.props.find((p) => p.key.name === 'features')!.value;
  assert.equal(features.type, 'list');
  const items = features.type === 'list' ? features.items : [];
  assert.deepEqual(args(call(items[0])), ['feature={"type":"text","value":"user_id"}', 'dim={"type":"number","value":16}']);
  assert.deepEqual(args(call(items[3])), ['feature={"type":"text","value":"hour_of_day"}']);
  assert.deepEqual(items[4], { type: 'text', value: 'price_scaled', span: spanWithin(quickstart, '    price_scaled,', 'price_scaled') });
});

test('quickstart: metrics are texts, `map@12` included', () => {
  const { ast } = parse(quickstart);
  const metrics = ast.train!.props.find((p) => p.key.name === 'metrics')!;
  assert.deepEqual(metrics.value, {
    type: 'list',
    span: spanOf(quickstart, '[map@12, auc, logloss]'),
    items: [
      { type: 'text', value: 'map@12', span: spanOf(quickstart, 'map@12') },
      { type: 'text', value: 'auc', span: spanOf(quickstart, 'auc') },
      { type: 'text', value: 'logloss', span: spanOf(quickstart, 'logloss') },
    ],
  });
  assert.deepEqual(metrics.span, spanOf(quickstart, 'metrics: [map@12, auc, logloss]'));
});

// --- values in context ----------------------------------------------------------------------------

test('a bare name where a call is expected is a call without arguments; elsewhere it is text', () => {
  const source = `${MODEL}deep {\n  init: zeros\n  decay: none\n  activation: relu\n  features: [indicator(x), y]\n}\n`;
  const props = parse(source).ast.deep!.props;
  assert.deepEqual(props[0]!.value, { type: 'call', callee: { name: 'zeros', span: spanOf(source, 'zeros') }, args: [], span: spanOf(source, 'zeros') });
  assert.deepEqual(props[1]!.value, { type: 'call', callee: { name: 'none', span: spanOf(source, 'none') }, args: [], span: spanOf(source, 'none') });
  assert.deepEqual(props[2]!.value, { type: 'text', value: 'relu', span: spanOf(source, 'relu') });
  // deep features expect a feature name or a call (oneOf): a bare name stays a name
  const features = props[3]!.value;
  assert.deepEqual(features.type === 'list' ? features.items[1] : undefined, { type: 'text', value: 'y', span: spanWithin(source, '(x), y]', 'y') });
});

test('size, string, bool and number values', () => {
  const source = `${MODEL}train {\n  memory_budget: 16GiB\n  x: "a\\tb\\u00e9\\""\n  y: true\n  z: false\n  n: -2.5e-3\n}\n`;
  const values = parse(source).ast.train!.props.map((p) => p.value);
  assert.deepEqual(values[0], { type: 'text', value: '16GiB', span: spanOf(source, '16GiB') });
  assert.deepEqual(values[1], { type: 'text', value: 'a\tbé"', span: spanOf(source, '"a\\tb\\u00e9\\""') });
  assert.deepEqual(values[2], { type: 'bool', value: true, span: spanOf(source, 'true') });
  assert.deepEqual(values[3], { type: 'bool', value: false, span: spanOf(source, 'false') });
  assert.deepEqual(values[4], { type: 'number', value: -0.0025, span: spanOf(source, '-2.5e-3') });
});

test('nested calls are named from their own family: an initializer inside an embedding', () => {
  const source = `${MODEL}features {\n  e = embedding(u, dim: 8, init: constant(0.5))\n  f = embedding(u, dim: 8, init: glorot_normal)\n}\n`;
  const [e, f] = parse(source).ast.features!.features;
  const init = call(e!.value.args[2]!.value);
  assert.deepEqual(args(init), ['value={"type":"number","value":0.5}']);
  assert.deepEqual(init.span, spanOf(source, 'constant(0.5)'));
  assert.deepEqual(f!.value.args[2]!.value, { type: 'call', callee: { name: 'glorot_normal', span: spanOf(source, 'glorot_normal') }, args: [], span: spanOf(source, 'glorot_normal') });
});

test('unknown callees and unknown properties keep positional arguments as `$1`, `$2`', () => {
  const source = `${MODEL}features {\n  a = hashd(u, 3, buckets: 1)\n}\nwide {\n  optimiser: ftrl(0.1)\n}\n`;
  const { ast, diagnostics } = parse(source);
  assert.deepEqual(diagnostics, []);
  assert.deepEqual(args(ast.features!.features[0]!.value), ['$1={"type":"text","value":"u"}', '$2={"type":"number","value":3}', 'buckets={"type":"number","value":1}']);
  assert.deepEqual(ast.features!.features[0]!.value.args[1]!.name.span, spanOf(source, '3'));
  assert.deepEqual(args(call(ast.wide!.props[0]!.value)), ['$1={"type":"number","value":0.1}']);
});

test('`model` may name a column or be a value; `list` and section names are plain names', () => {
  const source = `${MODEL}input {\n  model: string\n  list: list<int>\n  deep: int = 0\n}\ntrain {\n  x: model\n}\n`;
  const { ast, diagnostics } = parse(source);
  assert.deepEqual(diagnostics, []);
  assert.deepEqual(
    ast.input!.columns.map((c) => `${c.name.name}:${c.type.text}`),
    ['model:string', 'list:list<int>', 'deep:int'],
  );
  assert.deepEqual(ast.train!.props[0]!.value, { type: 'text', value: 'model', span: spanOf(source, 'model', 2) });
});

test('type references are kept as written without spaces', () => {
  const source = `${MODEL}input {\n  a: list < int >\n  b: lisst<x>\n}\n`;
  const columns = parse(source).ast.input!.columns;
  assert.deepEqual(columns[0]!.type, { text: 'list<int>', span: spanOf(source, 'list < int >') });
  assert.deepEqual(columns[1]!.type, { text: 'lisst<x>', span: spanOf(source, 'lisst<x>') });
});

test('trailing commas are allowed in lists and calls', () => {
  const source = `${MODEL}train {\n  metrics: [auc, logloss,]\n}\nwide {\n  optimizer: ftrl(learning_rate: 0.1,)\n}\n`;
  const { ast, diagnostics } = parse(source);
  assert.deepEqual(diagnostics, []);
  const metrics = ast.train!.props[0]!.value;
  assert.equal(metrics.type === 'list' ? metrics.items.length : -1, 2);
  assert.deepEqual(args(call(ast.wide!.props[0]!.value)), ['learning_rate={"type":"number","value":0.1}']);
});

// --- comments -------------------------------------------------------------------------------------

test('comments attach to the model, sections, declarations and properties', () => {
  const source = [
    '# about the model',
    '#',
    '#no space',
    'model m  # the name',
    '',
    '# the columns',
    'input {  # raw',
    '  # the label',
    '  clicked: int @label  # 1 = clicked   ',
    '  # nothing after this',
    '}',
    'wide {',
    '  features: [',
    '    a,  # first',
    '    b,',
    '  ]',
    '}',
    '# the end',
    '',
  ].join('\n');
  const { ast, diagnostics } = parse(source);
  assert.deepEqual(diagnostics, []);
  assert.deepEqual(ast.leadingComments, ['about the model', '', 'no space']);
  assert.equal(ast.trailingComment, 'the name');
  assert.deepEqual(ast.input!.leadingComments, ['the columns']);
  assert.equal(ast.input!.trailingComment, 'raw');
  const clicked = ast.input!.columns[0]!;
  assert.deepEqual(clicked.leadingComments, ['the label']);
  assert.equal(clicked.trailingComment, '1 = clicked');
  // an own-line comment before `}` leads what comes next: here the next section
  assert.deepEqual(ast.wide!.leadingComments, ['nothing after this']);
  // a comment inside a value spanning lines becomes the declaration's trailing comment
  assert.equal(ast.wide!.props[0]!.trailingComment, 'first');
  assert.deepEqual(ast.trailingComments, ['the end']);
});

test('comments in an empty section, after a closing brace and in a taken place', () => {
  const source = `${MODEL}input {\n  # none yet\n}\nwide {  # a\n  x: 1\n}  # b\n`;
  const { ast } = parse(source);
  assert.equal(ast.input!.trailingComment, 'none yet');
  assert.equal(ast.wide!.trailingComment, 'a');
  assert.deepEqual(ast.wide!.leadingComments, ['b']);
});

// --- diagnostics ----------------------------------------------------------------------------------

test('WND1001: an unexpected character, and a run of them', () => {
  const source = `${MODEL}input {\n  a: int $\n  b: int ;;\n  c: string = 'x'\n}\n`;
  assert.deepEqual(brief(source), [
    line('WND1001', spanOf(source, '$'), 'unexpected character `$`'),
    line('WND1001', spanOf(source, ';;'), 'unexpected characters `;;`'),
    line('WND1001', spanOf(source, "'"), "unexpected character `'`"),
    line('WND1001', spanOf(source, "'", 1), "unexpected character `'`"),
  ]);
  assert.equal(parse(source).diagnostics[2]!.help, 'strings are written in double quotes: `"text"`');
  assert.deepEqual(parse(source).ast.input!.columns.map((c) => c.name.name), ['a', 'b', 'c']);
});

test('WND1001: control characters are shown by code point', () => {
  const d = only(`${MODEL}input {\n  a: int \u0007\n}\n`);
  assert.equal(d.code, 'WND1001');
  assert.equal(d.message, 'unexpected character `U+0007`');
});

test('WND1002: an unterminated string spans from the quote to the end of the line', () => {
  const source = `${MODEL}input {\n  user: string = "abc  # no end\n  item: int\n}\n`;
  const d = only(source);
  assert.equal(d.code, 'WND1002');
  assert.deepEqual(d.span, spanOf(source, '"abc  # no end'));
  assert.equal(d.message, 'unterminated string');
  assert.equal(d.help, 'add the closing `"`; a string ends on the line it starts');
  assert.deepEqual(parse(source).ast.input!.columns.map((c) => c.name.name), ['user', 'item']);
});

test('WND1003: a wrong separator, with the message the user needs', () => {
  const source = `${MODEL}input {\n  clicked = int @label\n}\nfeatures {\n  a: hashed(x, buckets: 1)\n}\nwide {\n  features = [a]\n}\n`;
  assert.deepEqual(brief(source), [
    line('WND1003', spanOf(source, '='), 'expected `:` after column name `clicked`, found `=`'),
    line('WND1003', spanWithin(source, 'a: hashed', ':'), 'expected `=` after feature name `a`, found `:`'),
    line('WND1003', spanOf(source, '=', 1), 'expected `:` after property name `features`, found `=`'),
  ]);
  assert.equal(parse(source).diagnostics[0]!.help, 'columns are declared as `clicked: int`');
  // the declarations are kept
  assert.equal(parse(source).ast.input!.columns[0]!.role?.name, 'label');
});

test('WND1003: a missing separator is reported at the token found instead', () => {
  const source = `${MODEL}input {\n  clicked int\n  b: int\n}\n`;
  assert.deepEqual(brief(source), [line('WND1003', spanOf(source, 'int'), 'expected `:` after column name `clicked`, found `int`')]);
  assert.deepEqual(parse(source).ast.input!.columns.map((c) => `${c.name.name}:${c.type.text}`), ['clicked:int', 'b:int']);
});

test('WND1003: at the end of input the span is empty, at the end', () => {
  const source = `${MODEL}input {\n  a: int`;
  assert.deepEqual(brief(source), [line('WND1003', { start: source.length, end: source.length }, 'expected a column declaration like `name: int` or `}`, found end of input')]);
  assert.deepEqual(parse(source).ast.input!.columns.map((c) => c.name.name), ['a']);
});

test('WND1003: missing commas between items are reported once each, and the items kept', () => {
  const source = `${MODEL}train {\n  metrics: [map@12 auc]\n}\nfeatures {\n  a = hashed(x buckets: 10)\n}\n`;
  assert.deepEqual(brief(source), [
    line('WND1003', spanOf(source, 'auc'), 'expected `,` or `]` after a list item, found `auc`'),
    line('WND1003', spanOf(source, 'buckets'), 'expected `,` or `)` after an argument, found `buckets`'),
  ]);
  const { ast } = parse(source);
  assert.deepEqual(args(ast.features!.features[0]!.value), ['column={"type":"text","value":"x"}', 'buckets={"type":"number","value":10}']);
});

test('WND1003: a missing `)` at the end of a line is reported at the next token, and parsing goes on', () => {
  const source = `${MODEL}features {\n  a = hashed(x, buckets: 10\n  b = hashed(y, buckets: 20)\n}\n`;
  assert.deepEqual(brief(source), [line('WND1003', spanWithin(source, '  b = ', 'b'), 'expected `,` or `)` after an argument, found `b`')]);
  assert.deepEqual(parse(source).ast.features!.features.map((f) => f.name.name), ['a', 'b']);
});

test('WND1003: a section without its `{` is still read', () => {
  const source = `${MODEL}input\n  a: int\n}\ntrain {\n  epochs: 1\n}\n`;
  assert.deepEqual(brief(source), [line('WND1003', spanWithin(source, '  a: int', 'a'), 'expected `{` after section name `input`, found `a`')]);
  const { ast } = parse(source);
  assert.deepEqual(ast.input!.columns.map((c) => c.name.name), ['a']);
  assert.equal(ast.train!.props.length, 1);
});

test('WND1003: a value that is not one', () => {
  const source = `${MODEL}wide {\n  features: ]\n  combiner: sum\n}\n`;
  assert.deepEqual(brief(source), [line('WND1003', spanOf(source, ']'), 'expected a value (a number, string, name, list or call) after `:`, found `]`')]);
  assert.deepEqual(parse(source).ast.wide!.props.map((p) => p.key.name), ['combiner']);
});

test('WND1003: a YAML-style map is reported and read as the call it stands for', () => {
  const source = `${MODEL}wide {\n  optimizer: {kind: ftrl, learning_rate: 0.1}\n  features: [a]\n}\ndeep {\n  x: {a: 1}\n}\n`;
  const { ast, diagnostics } = parse(source);
  assert.deepEqual(
    diagnostics.map((d) => `${d.code} ${d.span.start}-${d.span.end} ${d.message} | ${d.help}`),
    [
      `WND1003 ${spanOf(source, '{k').start}-${spanOf(source, '{k').start + 1} expected a value, found \`{\` | \`{kind: ftrl, ...}\` is YAML; in \`.wnd\` write \`ftrl(...)\``,
      `WND1003 ${spanOf(source, '{a').start}-${spanOf(source, '{a').start + 1} expected a value, found \`{\` | \`{...}\` is YAML; in \`.wnd\` write a value, a list \`[...]\` or a call \`name(...)\``,
    ],
  );
  assert.deepEqual(args(call(ast.wide!.props[0]!.value)), ['learning_rate={"type":"number","value":0.1}']);
  assert.equal(ast.wide!.props[1]!.key.name, 'features');
  assert.equal(ast.deep!.props.length, 0);
});

test('WND1003: a feature that is not a call', () => {
  const source = `${MODEL}features {\n  a = user\n  b = hashed(user, buckets: 2)\n}\n`;
  assert.deepEqual(brief(source), [line('WND1003', spanWithin(source, '  b = ', 'b'), 'expected `(` after `user`: features are declared by calling a feature kind, found `b`')]);
  // recovery reads `a = user` as a call without arguments
  assert.deepEqual(parse(source).ast.features!.features.map((f) => `${f.name.name}=${f.value.callee.name}/${f.value.args.length}`), ['a=user/0', 'b=hashed/2']);
});

test('WND1003: an invalid escape in a string', () => {
  const source = `${MODEL}train {\n  x: "a\\qb"\n}\n`;
  const d = only(source);
  assert.equal(d.code, 'WND1003');
  assert.deepEqual(d.span, spanOf(source, '\\q'));
  assert.equal(d.message, 'invalid escape `\\q` in string');
});

test('WND1003: `model` without a name', () => {
  const source = 'model\ninput {\n  a: int\n}\n';
  assert.deepEqual(brief(source), [line('WND1003', spanOf(source, 'input'), 'expected a model name after `model`, found `input`')]);
  assert.deepEqual(parse(source).ast.input!.columns.map((c) => c.name.name), ['a']);
  assert.deepEqual(brief('model'), [line('WND1003', { start: 5, end: 5 }, 'expected a model name after `model`, found end of input')]);
});

test('WND1003: the model named twice', () => {
  const source = 'model a\nmodel b\n';
  const d = only(source);
  assert.equal(d.code, 'WND1003');
  assert.deepEqual(d.span, spanOf(source, 'model b'));
  assert.equal(d.message, 'the model is named twice');
  assert.deepEqual(d.related, [{ span: spanOf(source, 'model a'), message: 'the model is first named here' }]);
});

test('WND1003: a stray token between sections does not hide the sections after it', () => {
  const source = `${MODEL}input {\n  a: int\n}\n}\ny: 2\ntrain {\n  epochs: 2\n}\n`;
  assert.deepEqual(brief(source), [line('WND1003', spanOf(source, '}', 1), 'expected a section like `input {`, found `}`')]);
  const { ast } = parse(source);
  assert.equal(ast.train?.props[0]?.key.name, 'epochs');
});

test('WND1003: a stray token before the header does not hide the model', () => {
  const source = `]\n${MODEL}input {\n  a: int\n}\n`;
  assert.deepEqual(brief(source), [line('WND1003', { start: 0, end: 1 }, 'expected a section like `input {`, found `]`')]);
  const { ast } = parse(source);
  assert.equal(ast.name?.name, 'm');
  assert.deepEqual(ast.input!.columns.map((c) => c.name.name), ['a']);
});

test('WND1003: nesting deeper than the limit stops reading there', () => {
  const source = `${MODEL}train {\n  x: ${'['.repeat(70)}\n}\n`;
  const d = parse(source).diagnostics[0]!;
  assert.equal(d.code, 'WND1003');
  assert.deepEqual(d.span, { start: spanOf(source, '[').start + 63, end: spanOf(source, '[').start + 64 });
  assert.equal(d.message, '`[` nests deeper than 64 levels');
});

test('WND1004: an unknown section, with the closest name', () => {
  const source = `${MODEL}inptu {\n  a: int\n}\nwide {\n  features: [a]\n}\nfoo {\n}\n`;
  const { ast, diagnostics } = parse(source);
  assert.deepEqual(
    diagnostics.map((d) => `${d.code} ${d.span.start}-${d.span.end} ${d.message} | ${d.help}`),
    [
      `WND1004 ${spanOf(source, 'inptu').start}-${spanOf(source, 'inptu').end} unknown section \`inptu\` | did you mean \`input\`?`,
      `WND1004 ${spanOf(source, 'foo').start}-${spanOf(source, 'foo').end} unknown section \`foo\` | sections are \`input\`, \`features\`, \`wide\`, \`deep\`, \`train\`, \`head\``,
    ],
  );
  assert.equal(ast.input, undefined);
  assert.equal(ast.wide?.props.length, 1);
});

test('WND1005: a duplicate section points at the first one and is dropped', () => {
  const source = `${MODEL}train {\n  epochs: 1\n}\ntrain {\n  epochs: 2\n}\n`;
  const d = only(source);
  assert.equal(d.code, 'WND1005');
  assert.deepEqual(d.span, spanOf(source, 'train', 1));
  assert.equal(d.message, 'duplicate section `train`');
  assert.equal(d.help, 'merge the two `train` sections');
  assert.deepEqual(d.related, [{ span: spanOf(source, 'train'), message: 'the first `train` section is here' }]);
  assert.deepEqual(parse(source).ast.train!.props[0]!.value, { type: 'number', value: 1, span: spanOf(source, '1') });
});

test('WND1006: numbers that overflow, lose precision or are malformed', () => {
  const source = `${MODEL}train {\n  a: 1e999\n  b: 123456789012345678901\n  c: 16G\n  d: .5\n  e: 1.2.3\n}\n`;
  const { diagnostics } = parse(source);
  assert.deepEqual(
    diagnostics.map((d) => `${d.code} ${d.span.start}-${d.span.end} ${d.message} | ${d.help}`),
    [
      `WND1006 ${spanOf(source, '1e999').start}-${spanOf(source, '1e999').end} number \`1e999\` is too large | numbers must lie within ±1.7976931348623157e+308`,
      `WND1006 ${spanOf(source, '123456789012345678901').start}-${spanOf(source, '123456789012345678901').end} integer \`123456789012345678901\` is too large to be represented exactly | integers must lie within ±9007199254740991`,
      `WND1006 ${spanOf(source, '16G').start}-${spanOf(source, '16G').end} invalid number \`16G\` | sizes take one of the units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB, e.g. \`16GiB\``,
      `WND1006 ${spanOf(source, '.5').start}-${spanOf(source, '.5').end} invalid number \`.5\` | write a digit before the decimal point: \`0.5\``,
      `WND1006 ${spanOf(source, '1.2.3').start}-${spanOf(source, '1.2.3').end} invalid number \`1.2.3\` | numbers are written like \`42\`, \`-0.5\` or \`1e-7\``,
    ],
  );
  assert.equal(parse(source).ast.train!.props.length, 5);
});

test('WND1007: too many positional arguments, at the first extra one', () => {
  const source = `${MODEL}features {\n  a = hashed(user, item, buckets: 10)\n}\ndeep {\n  init: zeros(1)\n}\n`;
  const { ast, diagnostics } = parse(source);
  assert.deepEqual(
    diagnostics.map((d) => `${d.code} ${d.span.start}-${d.span.end} ${d.message} | ${d.help}`),
    [
      `WND1007 ${spanOf(source, 'item').start}-${spanOf(source, 'item').end} \`hashed\` takes 1 positional argument but 2 were given | pass the other arguments by name, e.g. \`buckets: ...\``,
      `WND1007 ${spanOf(source, '1)').start}-${spanOf(source, '1)').start + 1} \`zeros\` takes no positional arguments but 1 was given | remove the extra arguments`,
    ],
  );
  assert.deepEqual(args(ast.features!.features[0]!.value), ['column={"type":"text","value":"user"}', 'buckets={"type":"number","value":10}']);
});

test('WND1008: sections before any model header', () => {
  const source = 'input {\n  a: int\n}\n';
  const d = only(source);
  assert.equal(d.code, 'WND1008');
  assert.deepEqual(d.span, spanOf(source, 'input'));
  assert.equal(d.message, 'missing model header before section `input`');
  assert.equal(d.help, 'start the file with `model NAME`');
});

test('WND1008: a model header after the first section', () => {
  const source = 'input {\n  a: int\n}\nmodel m\n';
  const { ast, diagnostics } = parse(source);
  assert.deepEqual(diagnostics.map((d) => `${d.code} ${d.span.start}-${d.span.end} ${d.message} | ${d.help}`), ['WND1008 0-5 missing model header before section `input` | move `model m` to the top of the file']);
  assert.equal(ast.name?.name, 'm');
});

test('WND1008: an empty file, or one of comments only', () => {
  assert.deepEqual(brief(''), ['WND1008 0-0 missing model header']);
  assert.deepEqual(brief('# nothing\n'), ['WND1008 0-0 missing model header']);
  assert.deepEqual(parse('# nothing\n').ast.trailingComments, ['nothing']);
});

test('diagnostics come in source order', () => {
  const source = 'input {\n  a = int $\n}\n';
  assert.deepEqual(
    parse(source).diagnostics.map((d) => d.code),
    ['WND1008', 'WND1003', 'WND1001'],
  );
});

// --- robustness -----------------------------------------------------------------------------------


function parseSafely(source: string, label: string): void {
  let result;
  try {
    result = parseWnd(source, 'fuzz.wnd');
    printWnd(result.ast);
  } catch (e) {
    assert.fail(`${label}: threw ${(e as Error).stack}\n--- input ---\n${source}`);
  }
  for (const d of result.diagnostics) {
    assert.ok(0 <= d.span.start && d.span.start <= d.span.end && d.span.end <= source.length, `${label}: ${d.code} span ${d.span.start}..${d.span.end} outside 0..${source.length}\n${source}`);
    for (const r of d.related ?? []) assert.ok(0 <= r.span.start && r.span.start <= r.span.end && r.span.end <= source.length, `${label}: related span outside the source`);
  }
}

const FUZZ_TOKENS = [
  'model', 'm', 'input', 'features', 'wide', 'deep', 'train', 'head', 'inptu', '{', '}', '(', ')', '[', ']', '<', '>', ':', '=', ',',
  '@', '@label', 'list', 'int', 'string', '"s"', '"unterminated', '"\\q"', '1', '-2.5', '1e999', '16GiB', '16G', '.5', 'map@12', 'true',
  'false', 'hashed', 'crossed', 'embedding', 'zeros', 'ftrl', 'learning_rate', 'features', '# c\n', '\n', '$', "'", '\u0000', '\u2028',
];

test('fuzz: random token strings never throw and every span lies in the source', () => {
  const next = rng(7);
  for (let round = 0; round < 3000; round++) {
    const length = Math.floor(next() * 40);
    let source = '';
    for (let i = 0; i < length; i++) source += FUZZ_TOKENS[Math.floor(next() * FUZZ_TOKENS.length)]! + [' ', '', '\n', '  '][Math.floor(next() * 4)]!;
    parseSafely(source, `round ${round}`);
  }
});

test('fuzz: every truncation of the quickstart never throws', () => {
  for (let cut = 0; cut <= quickstart.length; cut++) parseSafely(quickstart.slice(0, cut), `truncated at ${cut}`);
});

test('fuzz: random bytes and unbalanced braces never throw', () => {
  const next = rng(11);
  for (let round = 0; round < 500; round++) {
    let source = '';
    const length = Math.floor(next() * 200);
    for (let i = 0; i < length; i++) source += String.fromCharCode(Math.floor(next() * (next() < 0.5 ? 128 : 0x10000)));
    parseSafely(source, `bytes round ${round}`);
  }
  parseSafely('{'.repeat(10000), 'deep braces');
  parseSafely(`${MODEL}train { x: ${'['.repeat(10000)} }`, 'deep lists');
  parseSafely(`${MODEL}train { x: ${'f('.repeat(10000)} }`, 'deep calls');
  parseSafely('}'.repeat(1000), 'closing braces');
});

test('cst.d.ts is up to date with the grammar (regenerate: node --import tsx dsl/wnd/gen-cst-dts.ts)', () => {
  assert.equal(readFileSync(CST_DTS_PATH, 'utf8'), cstDts());
});
