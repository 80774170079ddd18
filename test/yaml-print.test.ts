import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Arg, CallValue, ModelAst, Span, Value } from '../dsl/ast.js';
import { parseWnd } from '../dsl/wnd/parse.js';
import { parseYaml } from '../dsl/yaml/parse.js';
import { numberText, printYaml, quoteYaml } from '../dsl/yaml/print.js';
import { stripSpans } from './support/ast.js';

const quickstart = readFileSync(new URL('./fixtures/quickstart.yaml', import.meta.url), 'utf8');


function parseClean(source: string): ModelAst {
  const { ast, diagnostics } = parseYaml(source, 'm.yaml');
  assert.deepEqual(diagnostics, [], `parses without diagnostics:\n${source}`);
  return ast;
}

/** print is canonical: printing what it printed changes nothing. `clean`: the output has no diagnostics. */
function assertStable(ast: ModelAst, clean = true): string {
  const printed = printYaml(ast);
  const reparsed = clean ? parseClean(printed) : parseYaml(printed, 'm.yaml').ast;
  assert.equal(printYaml(reparsed), printed);
  return printed;
}

test('the quickstart fixture is canonical: print(parse(x)) is x, byte for byte', () => {
  assert.equal(printYaml(parseClean(quickstart)), quickstart);
});

test('the AST of examples/quickstart/quickstart.wnd prints as the YAML fixture (what `wndc convert --to yaml` writes)', () => {
  const wnd = readFileSync(new URL('../examples/quickstart/quickstart.wnd', import.meta.url), 'utf8');
  assert.equal(printYaml(parseWnd(wnd, 'quickstart.wnd').ast), quickstart);
});

test('parse(print(ast)) equals ast up to spans, comments included', () => {
  const ast = parseClean(quickstart);
  assert.deepEqual(stripSpans(parseClean(printYaml(ast))), stripSpans(ast));
});

test('a messy file prints in canonical order, layout and quoting, and printing again changes nothing', () => {
  const messy = [
    '# about training',
    'train:',
    '  metrics: [auc]',
    '  mixed_precision: off',
    '  memory_budget: 16GiB',
    'deep:',
    '  optimizer:',
    '    learning_rate: 1.0e-3',
    '    kind: adam',
    '  hidden_units:',
    '  - 64',
    '  - 32',
    '  features:',
    '  - {dim: 8, feature: country_ids, kind: embedding, init: {stddev: 0.01, kind: normal}}',
    '  - country_ids',
    '  init: zeros',
    "model: 'messy'   # the name",
    'features:',
    '  country_ids: {values: ["1", "true", "off", plain, 2, true, "has space", ""], column: country, kind: vocabulary}',
    '  crossed_one: {buckets: 1000, kind: crossed, features: [a, b, c]}',
    '  "on": {kind: hashed, column: "yes", buckets: 10}',
    '  bands: {kind: bucketized, column: price, boundaries: [0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009, 0.01]}',
    'input:',
    '  country: {default: "", type: string}',
    '  label: {role: label, type: int}',
    '  "y": int',
    '  price: {type: float, default: 1e21}',
    'wide:',
    '  features: [country_ids, crossed_one, a_really_long_feature_name_number_one, a_really_long_feature_name_number_two]',
    '  optimizer: {kind: ftrl, learning_rate: 0.2, l1: 0.0}',
    '',
  ].join('\n');
  const expected = [
    'model: messy  # the name',
    '',
    'input:',
    '  country: {type: string, default: ""}',
    '  label: {type: int, role: label}',
    '  "y": int',
    '  price: {type: float, default: 1e+21}',
    '',
    'features:',
    '  country_ids:',
    '    kind: vocabulary',
    '    column: country',
    '    values: ["1", "true", "off", "plain", 2, true, "has space", ""]',
    '  crossed_one: {kind: crossed, features: [a, b, c], buckets: 1000}',
    '  "on": {kind: hashed, column: "yes", buckets: 10}',
    '  bands:',
    '    kind: bucketized',
    '    column: price',
    '    boundaries: [0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008, 0.009, 0.01]',
    '',
    'wide:',
    '  features:',
    '    - country_ids',
    '    - crossed_one',
    '    - a_really_long_feature_name_number_one',
    '    - a_really_long_feature_name_number_two',
    '  optimizer: {kind: ftrl, learning_rate: 0.2, l1: 0}',
    '',
    'deep:',
    '  optimizer: {kind: adam, learning_rate: 0.001}',
    '  hidden_units: [64, 32]',
    '  features:',
    '    - {kind: embedding, feature: country_ids, dim: 8, init: {kind: normal, stddev: 0.01}}',
    '    - country_ids',
    '  init: zeros',
    '',
    '# about training',
    'train:',
    '  metrics: [auc]',
    '  mixed_precision: "off"',
    '  memory_budget: 16GiB',
    '',
  ].join('\n');
  const printed = printYaml(parseClean(messy));
  assert.equal(printed, expected);
  assert.equal(assertStable(parseClean(printed)), expected);
});

test('comments of every kind survive printing and reprinting', () => {
  const source = [
    '# header',
    'model: m  # the name',
    '',
    '# about input',
    'input:  # input trailing',
    '  # before a',
    '  a: int  # a trailing',
    '  b: {type: int, role: label}',
    'wide:',
    '  features:  # list trailing',
    '    - x  # item comment',
    '    # between items',
    '    - z',
    '  optimizer: {kind: ftrl, learning_rate: 0.1}',
    '# empty section next',
    'head: {}  # defaults',
    '',
    '# the end',
    '#',
    '',
  ].join('\n');
  const ast = parseClean(source);
  const printed = assertStable(ast);
  assert.equal(
    printed,
    [
      '# header',
      'model: m  # the name',
      '',
      '# about input',
      'input:  # input trailing',
      '  # before a',
      '  a: int  # a trailing',
      '  b: {type: int, role: label}',
      '',
      'wide:',
      '  # item comment',
      '  # between items',
      '  features: [x, z]  # list trailing',
      '  optimizer: {kind: ftrl, learning_rate: 0.1}',
      '',
      '# empty section next',
      'head: {}  # defaults',
      '',
      '# the end',
      '#',
      '',
    ].join('\n'),
  );
  assert.deepEqual(stripSpans(parseClean(printed)), stripSpans(ast));
});

const S: Span = { start: 0, end: 0 };
const id = (name: string) => ({ name, span: S });
const text = (value: string): Value => ({ type: 'text', value, span: S });
const num = (value: number): Value => ({ type: 'number', value, span: S });
const list = (...items: Value[]): Value => ({ type: 'list', items, span: S });
const arg = (name: string, value: Value): Arg => ({ name: id(name), value });
const call = (callee: string, ...args: Arg[]): CallValue => ({ type: 'call', callee: id(callee), args, span: S });

test('an AST from the `.wnd` front end prints with positional parameters first and bare calls where a call is expected', () => {
  // As the `.wnd` parser builds `crossed(a, b, buckets: 10)` and `embedding(dim: 4, f)` (positional args first).
  const ast: ModelAst = {
    file: 'm.wnd',
    name: id('m'),
    features: {
      keyword: id('features'),
      span: S,
      features: [
        { name: id('x'), span: S, value: call('crossed', arg('buckets', num(10)), arg('features', list(text('a'), text('b')))) },
        { name: id('h'), span: S, value: call('hashed', arg('buckets', num(7)), arg('column', text('c'))), leadingComments: ['hashed'] },
      ],
    },
    deep: {
      keyword: id('deep'),
      span: S,
      props: [
        { key: id('features'), span: S, value: list(call('indicator', arg('feature', text('h'))), call('embedding', arg('dim', num(4)), arg('feature', text('x')), arg('init', call('zeros')))) },
        { key: id('hidden_units'), span: S, value: list(num(8)) },
        { key: id('init'), span: S, value: call('truncated_normal') },
        { key: id('optimizer'), span: S, value: call('sgd', arg('learning_rate', num(1e-7)), arg('nesterov', { type: 'bool', value: true, span: S })) },
      ],
    },
  };
  const printed = assertStable(ast);
  assert.equal(
    printed,
    [
      'model: m',
      '',
      'features:',
      '  x: {kind: crossed, features: [a, b], buckets: 10}',
      '  # hashed',
      '  h: {kind: hashed, column: c, buckets: 7}',
      '',
      'deep:',
      '  features:',
      '    - {kind: indicator, feature: h}',
      '    - {kind: embedding, feature: x, dim: 4, init: zeros}',
      '  hidden_units: [8]',
      '  init: truncated_normal',
      '  optimizer: {kind: sgd, learning_rate: 1e-7, nesterov: true}',
      '',
    ].join('\n'),
  );
});

test('a call without arguments is a bare name only where a call is expected', () => {
  const ast: ModelAst = {
    file: 'm.wnd',
    name: id('m'),
    features: { keyword: id('features'), span: S, features: [{ name: id('i'), span: S, value: call('indicator') }] },
    deep: { keyword: id('deep'), span: S, props: [{ key: id('features'), span: S, value: list(call('indicator'), text('indicator')) }] },
    wide: { keyword: id('wide'), span: S, props: [{ key: id('decay'), span: S, value: call('none') }] },
  };
  // Not a valid model (the checker's business); printing it must still be stable.
  const printed = assertStable(ast, false);
  assert.equal(printed, 'model: m\n\nfeatures:\n  i: {kind: indicator}\n\nwide:\n  decay: none\n\ndeep:\n  features:\n    - {kind: indicator}\n    - indicator\n');
  assert.deepEqual(stripSpans(parseYaml(printed, 'm.yaml').ast.deep), stripSpans(ast.deep));
});

test('texts that YAML would read as something else stay strings', () => {
  const tricky = ['1', '1.5', '-2', '0x1F', '1e3', 'true', 'False', 'off', 'ON', 'yes', 'n', 'null', '~', '', ' lead', 'trail ', '#hash', 'a # b', 'a: b', '- x', '[x]', '{x}', '*x', '&x', '!x', '%x', '@x', '`x', '"q"', "'q'", 'a\nb', 'tab\there', '\u0000', '\u007f', '\u0085', '\u2028', '\ufeff', 'é', '😀', '\\'];
  const ast: ModelAst = {
    file: 'm.wnd',
    name: id('m'),
    input: { keyword: id('input'), span: S, columns: [{ name: id('c'), type: { text: 'string', span: S }, span: S, default: list(...tricky.map(text)) }] },
    features: { keyword: id('features'), span: S, features: [{ name: id('v'), span: S, value: call('vocabulary', arg('column', text('c')), arg('values', list(...tricky.map(text)))) }] },
  };
  const printed = assertStable(ast);
  assert.deepEqual(stripSpans(parseClean(printed).features), stripSpans(ast.features));
  assert.deepEqual(stripSpans(parseClean(printed).input), stripSpans(ast.input));
  assert.equal(quoteYaml('\u007f\u2028'), '"\\u007f\\u2028"');
});

test('names that YAML would misread are quoted as keys and as references', () => {
  const ast: ModelAst = {
    file: 'm.wnd',
    name: id('null'),
    input: { keyword: id('input'), span: S, columns: [{ name: id('true'), type: { text: 'int', span: S }, span: S }, { name: id('no'), type: { text: 'list<int>', span: S }, span: S }] },
    wide: { keyword: id('wide'), span: S, props: [{ key: id('features'), span: S, value: list(text('on'), text('x')) }] },
  };
  const printed = assertStable(ast, false);
  assert.equal(printed, 'model: "null"\n\ninput:\n  "true": int\n  "no": list<int>\n\nwide:\n  features: ["on", x]\n');
});

test('numbers print in their shortest round-trip form', () => {
  assert.deepEqual([0.0001, 1e-7, 1e21, 100000, 0.1, -0.5, -0, Infinity, -Infinity, NaN].map(numberText), ['0.0001', '1e-7', '1e+21', '100000', '0.1', '-0.5', '-0', '.inf', '-.inf', '.nan']);
  const values = [0.0001, 1e-7, 1e21, -0, Infinity, -Infinity, NaN, 123456789.125];
  const ast: ModelAst = {
    file: 'm.wnd',
    name: id('m'),
    features: { keyword: id('features'), span: S, features: [{ name: id('b'), span: S, value: call('bucketized', arg('column', text('p')), arg('boundaries', list(...values.map(num)))) }] },
  };
  // Not finite numbers are the checker's to reject; the printer only has to keep them.
  const printed = assertStable(ast, false);
  assert.deepEqual(stripSpans(parseYaml(printed, 'm.yaml').ast.features), stripSpans(ast.features));
});

test('a value too long for one line breaks into block style, nested mappings included', () => {
  const long = Array.from({ length: 12 }, (_, i) => text(`feature_number_${i}`));
  const ast: ModelAst = {
    file: 'm.wnd',
    name: id('m'),
    deep: {
      keyword: id('deep'),
      span: S,
      props: [
        {
          key: id('features'),
          span: S,
          value: list(call('embedding', arg('feature', text('a_rather_long_feature_name_for_this_test')), arg('dim', num(16)), arg('init', call('truncated_normal', arg('mean', num(0)), arg('stddev', num(0.03125)))))),
        },
        { key: id('hidden_units'), span: S, value: list(num(8)) },
      ],
    },
    wide: { keyword: id('wide'), span: S, props: [{ key: id('features'), span: S, value: list(...long) }], trailingComment: 'wide' },
  };
  const printed = assertStable(ast, false);
  assert.equal(
    printed,
    [
      'model: m',
      '',
      'wide:  # wide',
      '  features:',
      ...long.map((t) => `    - ${t.type === 'text' ? t.value : ''}`),
      '',
      'deep:',
      '  features:',
      '    - kind: embedding',
      '      feature: a_rather_long_feature_name_for_this_test',
      '      dim: 16',
      '      init: {kind: truncated_normal, mean: 0, stddev: 0.03125}',
      '  hidden_units: [8]',
      '',
    ].join('\n'),
  );
  for (const line of printed.split('\n')) assert.ok(line.length <= 100, line);
});

test('an empty model prints as nothing, and a model without a name keeps its comments', () => {
  assert.equal(printYaml({ file: 'm.yaml' }), '');
  const ast: ModelAst = { file: 'm.yaml', leadingComments: ['top'], trailingComment: 'orphan', head: { keyword: id('head'), span: S, props: [], leadingComments: ['head'] } };
  assert.equal(assertStable(ast, false), '# top\n# orphan\n# head\nhead: {}\n');
});
