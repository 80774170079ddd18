import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { Span } from '../dsl/ast.js';
import type { Diagnostic } from '../compiler/diagnostics.js';
import { parseWnd } from '../dsl/wnd/parse.js';
import { parseYaml } from '../dsl/yaml/parse.js';
import { seededRandom as random } from './support/random.js';
import { stripSpans } from './support/ast.js';

const quickstart = readFileSync(new URL('./fixtures/quickstart.yaml', import.meta.url), 'utf8');


/** The span of the `nth` occurrence of `needle` in `source`. */
function at(source: string, needle: string, nth = 1): Span {
  let start = -1;
  for (let i = 0; i < nth; i++) {
    start = source.indexOf(needle, start + 1);
    assert.ok(start >= 0, `\`${needle}\` #${nth} is in the source`);
  }
  return { start, end: start + needle.length };
}

const brief = (d: Diagnostic) => ({ code: d.code, span: d.span, message: d.message, ...(d.help === undefined ? {} : { help: d.help }) });

function diagnose(source: string) {
  return parseYaml(source, 'm.yaml').diagnostics.map(brief);
}

const text = (value: string) => ({ type: 'text', value });
const num = (value: number) => ({ type: 'number', value });
const list = (...items: unknown[]) => ({ type: 'list', items });
const call = (callee: string, ...args: [string, unknown][]) => ({ type: 'call', callee: { name: callee }, args: args.map(([name, value]) => ({ name: { name }, value })) });
const column = (name: string, type: string, extra: object = {}) => ({ name: { name }, type: { text: type }, ...extra });
const feature = (name: string, value: unknown) => ({ name: { name }, value });
const prop = (key: string, value: unknown) => ({ key: { name: key }, value });

test('the quickstart in YAML gives the AST of quickstart.wnd, comments included', () => {
  const { ast, diagnostics } = parseYaml(quickstart, 'quickstart.yaml');
  assert.deepEqual(diagnostics, []);
  assert.deepEqual(stripSpans(ast), {
    file: 'quickstart.yaml',
    leadingComments: ['Quick start: a small click model. `wndc run` trains it on synthetic data when no --data is given.'],
    name: { name: 'quickstart' },
    input: {
      keyword: { name: 'input' },
      columns: [
        column('request_id', 'int', { role: { name: 'group' }, trailingComment: 'ranking metrics are computed per request' }),
        column('clicked', 'int', { role: { name: 'label' } }),
        column('user', 'string', { default: text('') }),
        column('item', 'int', { default: num(0), role: { name: 'item' } }),
        column('hour', 'int', { default: num(0) }),
        column('tags', 'list<string>', { default: list() }),
        column('price', 'float', { default: num(0) }),
      ],
    },
    features: {
      keyword: { name: 'features' },
      features: [
        feature('user_id', call('hashed', ['column', text('user')], ['buckets', num(10000)])),
        feature('item_id', call('identity', ['column', text('item')], ['buckets', num(5000)])),
        feature('hour_of_day', call('identity', ['column', text('hour')], ['buckets', num(24)])),
        feature('tag_bag', call('multi_hot', ['column', text('tags')], ['max_len', num(4)], ['buckets', num(1000)], ['combiner', text('mean')])),
        feature('price_scaled', call('numeric', ['column', text('price')], ['norm', text('log_count_minmax')])),
        feature('price_band', call('bucketized', ['column', text('price')], ['boundaries', list(num(1), num(10), num(100))])),
        feature('user_x_item', call('crossed', ['features', list(text('user_id'), text('item_id'))], ['buckets', num(100000)])),
      ],
    },
    wide: {
      keyword: { name: 'wide' },
      props: [
        prop('features', list(...['user_id', 'item_id', 'hour_of_day', 'tag_bag', 'price_band', 'user_x_item', 'price_scaled'].map(text))),
        prop('optimizer', call('ftrl', ['learning_rate', num(0.2)])),
      ],
    },
    deep: {
      keyword: { name: 'deep' },
      props: [
        prop(
          'features',
          list(
            call('embedding', ['feature', text('user_id')], ['dim', num(16)]),
            call('embedding', ['feature', text('item_id')], ['dim', num(16)]),
            call('embedding', ['feature', text('tag_bag')], ['dim', num(8)]),
            call('indicator', ['feature', text('hour_of_day')]),
            text('price_scaled'),
          ),
        ),
        prop('hidden_units', list(num(64), num(32))),
        prop('dropout', num(0.1)),
        prop('optimizer', call('adagrad', ['learning_rate', num(0.05)])),
      ],
    },
    train: {
      keyword: { name: 'train' },
      props: [prop('batch_size', num(512)), prop('epochs', num(3)), prop('seed', num(7)), prop('metrics', list(text('map@12'), text('auc'), text('logloss')))],
    },
  });
});

test('the YAML fixture and examples/quickstart/quickstart.wnd give one AST up to spans', () => {
  const wnd = readFileSync(new URL('../examples/quickstart/quickstart.wnd', import.meta.url), 'utf8');
  const fromWnd = parseWnd(wnd, 'quickstart.yaml');
  const fromYaml = parseYaml(quickstart, 'quickstart.yaml');
  assert.deepEqual(fromWnd.diagnostics, []);
  assert.deepEqual(stripSpans(fromYaml.ast), stripSpans(fromWnd.ast));
});

test('spans: names at their keys, values at their values, declarations from key to value end', () => {
  const { ast } = parseYaml(quickstart, 'quickstart.yaml');
  assert.deepEqual(ast.name?.span, at(quickstart, 'quickstart'));
  assert.deepEqual(ast.input?.keyword.span, at(quickstart, 'input'));
  assert.deepEqual(ast.input?.span, { start: at(quickstart, 'input').start, end: at(quickstart, 'price: {type: float, default: 0}').end });
  const clicked = ast.input!.columns[1]!;
  assert.deepEqual(clicked.name.span, at(quickstart, 'clicked'));
  assert.deepEqual(clicked.span, at(quickstart, 'clicked: {type: int, role: label}'));
  assert.deepEqual(clicked.role?.span, at(quickstart, 'label'));
  const userId = ast.features!.features[0]!;
  assert.deepEqual(userId.span, at(quickstart, 'user_id: {kind: hashed, column: user, buckets: 10000}'));
  assert.deepEqual(userId.value.span, at(quickstart, '{kind: hashed, column: user, buckets: 10000}'));
  assert.deepEqual(userId.value.callee.span, at(quickstart, 'hashed'));
  assert.deepEqual(userId.value.args[1]!.name.span, at(quickstart, 'buckets'));
  assert.deepEqual(userId.value.args[1]!.value.span, at(quickstart, '10000'));
  const hidden = ast.deep!.props[1]!;
  assert.deepEqual(hidden.span, at(quickstart, 'hidden_units: [64, 32]'));
  assert.deepEqual(hidden.value.span, at(quickstart, '[64, 32]'));
  // A block section ends where its last value ends, not on the next line.
  assert.equal(ast.deep!.span.end, at(quickstart, '{kind: adagrad, learning_rate: 0.05}').end);
});

test('a bare name where a call is expected is a call without arguments; in deep.features it is a reference', () => {
  const source = [
    'model: m',
    'wide:',
    '  features: [a]',
    '  optimizer: {kind: sgd, learning_rate: 0.1}',
    '  decay: none',
    'deep:',
    '  features: [a, {kind: embedding, feature: a, dim: 4, init: zeros}, {kind: indicator, feature: b}]',
    '  hidden_units: [8]',
    '  init: glorot_normal',
    '  optimizer: {kind: adam, learning_rate: 0.01, beta1: 0.8}',
    '',
  ].join('\n');
  const { ast, diagnostics } = parseYaml(source, 'm.yaml');
  assert.deepEqual(diagnostics, []);
  assert.deepEqual(stripSpans(ast.wide!.props[2]), prop('decay', call('none')));
  assert.deepEqual(ast.wide!.props[2]!.value.span, at(source, 'none'));
  assert.deepEqual(stripSpans(ast.deep!.props[0]!.value), list(text('a'), call('embedding', ['feature', text('a')], ['dim', num(4)], ['init', call('zeros')]), call('indicator', ['feature', text('b')])));
  assert.deepEqual(stripSpans(ast.deep!.props[2]), prop('init', call('glorot_normal')));
  assert.deepEqual(stripSpans(ast.deep!.props[3]!.value), call('adam', ['learning_rate', num(0.01)], ['beta1', num(0.8)]));
});

test('input columns: shorthand, full mapping, spaces in a type, list defaults', () => {
  const source = 'model: m\ninput:\n  a: int\n  b: {type: list< int >, default: [1, 2], role: weight}\n  c: {role: label, type: float}\n';
  const { ast, diagnostics } = parseYaml(source, 'm.yaml');
  assert.deepEqual(diagnostics, []);
  assert.deepEqual(stripSpans(ast.input!.columns), [
    column('a', 'int'),
    column('b', 'list<int>', { default: list(num(1), num(2)), role: { name: 'weight' } }),
    column('c', 'float', { role: { name: 'label' } }),
  ]);
  assert.deepEqual(ast.input!.columns[0]!.type.span, at(source, 'int'));
  assert.deepEqual(ast.input!.columns[0]!.span, at(source, 'a: int'));
});

test('arguments keep the order written; an unknown kind keeps its arguments for the checker', () => {
  const source = 'model: m\nfeatures:\n  x: {buckets: 5, kind: hashd, column: c}\n';
  const { ast, diagnostics } = parseYaml(source, 'm.yaml');
  // Unknown kinds are the checker's (WND3005, with suggestions): the schema has no branch for them.
  assert.deepEqual(diagnostics, []);
  assert.deepEqual(stripSpans(ast.features!.features[0]!.value), call('hashd', ['buckets', num(5)], ['column', text('c')]));
});

test('WND2001: YAML syntax errors, spanned where the library found them, and no shape errors after them', () => {
  assert.deepEqual(diagnose('model: [m\n'), [
    { code: 'WND2001', span: { start: 10, end: 10 }, message: 'flow sequence in block collection must be sufficiently indented and end with a ]' },
  ]);
  const tabs = 'model: m\ninput:\n\ta: int\n';
  assert.deepEqual(diagnose(tabs), [{ code: 'WND2001', span: { start: at(tabs, '\t').start, end: at(tabs, '\t').end }, message: 'tabs are not allowed as indentation' }]);
  assert.deepEqual(diagnose("model: 'm\nwide: 1\n"), [{ code: 'WND2001', span: { start: 18, end: 18 }, message: "missing closing 'quote" }]);
});

test('WND2002: an unknown key is reported at the key, with the closest allowed key as help', () => {
  const source = 'model: m\ndeep:\n  features: [a]\n  hiden_units: [64]\n  optimizer: {kind: adagrad, learning_rate: 0.05}\n';
  assert.deepEqual(diagnose(source), [
    { code: 'WND2002', span: at(source, 'hiden_units'), message: 'unknown key `hiden_units` in `deep`', help: 'did you mean `hidden_units`?' },
  ]);
  const bucket = 'model: m\nfeatures:\n  u: {kind: hashed, column: user, bucket: 10}\n';
  assert.deepEqual(diagnose(bucket), [{ code: 'WND2002', span: at(bucket, 'bucket'), message: 'unknown key `bucket` in `u`', help: 'did you mean `buckets`?' }]);
  const top = 'model: m\ninputs: {}\nzzz: 1\n';
  assert.deepEqual(diagnose(top), [
    { code: 'WND2002', span: at(top, 'inputs'), message: 'unknown key `inputs` at the top level', help: 'did you mean `input`?' },
    { code: 'WND2002', span: at(top, 'zzz'), message: 'unknown key `zzz` at the top level', help: 'expected one of `model`, `input`, `features`, `wide`, `deep`, `train`, `head`' },
  ]);
  const column = 'model: m\ninput:\n  c: {type: int, rol: label}\n';
  assert.deepEqual(diagnose(column), [{ code: 'WND2002', span: at(column, 'rol'), message: 'unknown key `rol` in `c`', help: 'did you mean `role`?' }]);
});

test('WND2002: the unknown key and the AST argument share one span, so the checker\'s report is dropped as a duplicate', () => {
  const source = 'model: m\nwide:\n  features: [a]\n  optimizer: {kind: ftrl, learning_rat: 0.2}\n';
  const { ast, diagnostics } = parseYaml(source, 'm.yaml');
  // One problem, one diagnostic: the missing `learning_rate` is the misspelt key.
  assert.deepEqual(diagnostics.map(brief), [
    { code: 'WND2002', span: at(source, 'learning_rat'), message: 'unknown key `learning_rat` in `optimizer`', help: 'did you mean one of `learning_rate`, `learning_rate_power`?' },
  ]);
  const optimizer = ast.wide!.props[1]!.value;
  assert.equal(optimizer.type, 'call');
  assert.deepEqual(optimizer.type === 'call' ? optimizer.args[0]!.name.span : undefined, diagnostics[0]!.span);
});

test('WND2003: a missing key is reported at the call\'s kind, else at the mapping\'s key, else at the top', () => {
  const param = 'model: m\nfeatures:\n  u: {kind: hashed, column: user}\n';
  assert.deepEqual(diagnose(param), [
    { code: 'WND2003', span: at(param, 'hashed'), message: 'missing key `buckets` in `u`', help: 'add `buckets: ...` (number of hash buckets)' },
  ]);
  const block = 'model: m\nwide:\n  combiner: sum\n';
  assert.deepEqual(diagnose(block), [
    { code: 'WND2003', span: at(block, 'wide'), message: 'missing keys `features` and `optimizer` in `wide`', help: 'add `features: ...` and `optimizer: ...`' },
  ]);
  const kindless = 'model: m\nfeatures:\n  v: {column: user}\n';
  const { ast, diagnostics } = parseYaml(kindless, 'm.yaml');
  assert.deepEqual(diagnostics.map(brief), [
    {
      code: 'WND2003',
      span: at(kindless, 'v'),
      message: 'missing key `kind` in `v`',
      help: 'add `kind: ...` (the feature kind: numeric, bucketized, hashed, identity, vocabulary, multi_hot, crossed, weighted, embedding, indicator)',
    },
  ]);
  // The call keeps an empty callee spanned like the diagnostic, so "unknown kind" is not said twice.
  assert.deepEqual(ast.features!.features[0]!.value.callee, { name: '', span: at(kindless, 'v') });
  const glued = 'model: m\nwide: {features: [a], optimizer: {kind:ftrl}}\n';
  assert.deepEqual(diagnose(glued), [
    { code: 'WND2003', span: at(glued, 'optimizer'), message: 'missing key `kind` in `optimizer`', help: 'put a space after the colon: `kind: ftrl`' },
  ]);
  const noModel = '# a model\ninput: {}\n';
  assert.deepEqual(diagnose(noModel), [
    { code: 'WND2003', span: { start: 10, end: 10 }, message: 'missing key `model` at the top level', help: 'add `model: ...` (the model name: letters, digits and `_`, starting with a letter or `_`)' },
  ]);
  const untyped = 'model: m\ninput:\n  d: {default: 1}\n';
  assert.deepEqual(diagnose(untyped), [{ code: 'WND2003', span: at(untyped, 'd', 2), message: 'missing key `type` in `d`', help: 'add `type: ...` (the column type)' }]);
});

test('WND2004: wrong YAML shapes', () => {
  const shapes = 'model: m\nfeatures:\n  x: {kind: hashed, column: 5, buckets: 10}\nwide: [a]\n';
  assert.deepEqual(diagnose(shapes), [
    { code: 'WND2004', span: at(shapes, '5'), message: 'expected a name for `column`, found a number' },
    { code: 'WND2004', span: at(shapes, '[a]'), message: 'expected a mapping for `wide`, found a list' },
  ]);
  const deep = 'model: m\ndeep:\n  features: [a, 5]\n  hidden_units: 64\n  optimizer: adam\n';
  assert.deepEqual(diagnose(deep), [
    { code: 'WND2004', span: at(deep, '5'), message: 'expected a name or a mapping for item 2 of `features`, found a number' },
    { code: 'WND2004', span: at(deep, '64'), message: 'expected a list for `hidden_units`, found a number', help: 'write a list: `[64]`' },
    { code: 'WND2004', span: at(deep, 'adam'), message: 'expected a mapping for `optimizer`, found a string', help: 'write a mapping with the parameters: `{kind: adam, ...}`' },
  ]);
  const empty = 'model: m\ninput:\n  b:\n';
  assert.deepEqual(diagnose(empty), [{ code: 'WND2004', span: at(empty, 'b'), message: 'expected a name or a mapping for `b`, found nothing', help: 'write a value after `b:`' }]);
  assert.deepEqual(diagnose('- a\n- b\n'), [{ code: 'WND2004', span: { start: 0, end: 7 }, message: 'expected a mapping at the top level, found a list' }]);
  assert.deepEqual(diagnose(''), [{ code: 'WND2004', span: { start: 0, end: 0 }, message: 'expected a mapping at the top level, found nothing' }]);
  const keys = 'model: m\n1: 2\n? [a]\n: b\n';
  assert.deepEqual(diagnose(keys), [
    { code: 'WND2004', span: at(keys, '1'), message: 'expected a name as key, found a number', help: 'keys are names such as `model`, `user_id` or `buckets`' },
    { code: 'WND2004', span: at(keys, '[a]'), message: 'expected a name as key, found a list', help: 'keys are names such as `model`, `user_id` or `buckets`' },
  ]);
  const docs = 'model: m\n---\nmodel: n\n';
  assert.deepEqual(diagnose(docs), [
    { code: 'WND2004', span: at(docs, '---'), message: 'expected one YAML document, found 2', help: 'a model file holds one model; remove the `---` and what follows, or move it to its own file' },
  ]);
});

test('WND2004: under an unknown kind, a value the AST cannot hold is reported rather than dropped', () => {
  const source = 'model: m\nfeatures:\n  x: {kind: hashd, a: , b: {c: 1}, d: [1, ~]}\n';
  const a = at(source, 'a: ,').start;
  assert.deepEqual(diagnose(source), [
    { code: 'WND2004', span: { start: a, end: a + 1 }, message: 'expected a value for `a`, found nothing' },
    { code: 'WND2004', span: at(source, '{c: 1}'), message: 'expected a value or a call `{kind: ...}` for `b`, found a mapping' },
    { code: 'WND2004', span: at(source, '~'), message: 'expected a value for `d`, found nothing' },
  ]);
});

test('WND2005: a duplicate key is reported at the second key, pointing at the first', () => {
  const source = 'model: m\ninput:\n  a: int\n  a: float\nmodel: n\n';
  const { ast, diagnostics } = parseYaml(source, 'm.yaml');
  assert.deepEqual(
    diagnostics.map((d) => ({ code: d.code, span: d.span, message: d.message, related: d.related })),
    [
      { code: 'WND2005', span: at(source, 'a', 2), message: 'duplicate key `a`', related: [{ span: at(source, 'a'), message: '`a` is first given here' }] },
      { code: 'WND2005', span: at(source, 'model', 2), message: 'duplicate key `model`', related: [{ span: at(source, 'model'), message: '`model` is first given here' }] },
    ],
  );
  // The first `model` counts; both columns stay so that the checker sees the duplicate as in `.wnd`.
  assert.equal(ast.name?.name, 'm');
  assert.deepEqual(ast.input!.columns.map((c) => c.type.text), ['int', 'float']);
});

test('anchors and aliases are resolved; self-reference and alias bombs are diagnostics', () => {
  const source = 'model: m\nwide: &w {features: [a], optimizer: &o {kind: ftrl, learning_rate: 1}}\ndeep: {features: [a], hidden_units: [2], optimizer: *o}\n';
  const { ast, diagnostics } = parseYaml(source, 'm.yaml');
  assert.deepEqual(diagnostics, []);
  assert.deepEqual(stripSpans(ast.deep!.props[2]), prop('optimizer', call('ftrl', ['learning_rate', num(1)])));
  const cycle = 'model: m\nx: &a [*a]\n';
  assert.deepEqual(diagnose(cycle).filter((d) => d.code === 'WND2004'), [{ code: 'WND2004', span: at(cycle, '*a'), message: 'alias `*a` refers to a value that contains it' }]);
  const lines = ['model: m', 'a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
  for (let i = 1; i < 8; i++) lines.push(`a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]`);
  const bomb = `${lines.join('\n')}\n`;
  assert.deepEqual(diagnose(bomb), [{ code: 'WND2004', span: { start: 0, end: bomb.length - 1 }, message: 'aliases expand the document by more than 100000 values', help: 'write the repeated values out instead of aliasing aliases' }]);
});

test('comments attach to the model, sections, declarations and properties', () => {
  const source = [
    '# header',
    'model: m  # the name',
    '',
    '# about input',
    'input:  # input trailing',
    '  # before a',
    '  a: int  # a trailing',
    '  b: {type: int, role: label}',
    '# before wide',
    'wide:',
    '  features:  # list trailing',
    '    - x  # item comment',
    '    # between items',
    '    - y',
    '  optimizer:',
    '    kind: ftrl  # inside a call',
    '    learning_rate: 0.1',
    '',
    '# the end',
    '',
  ].join('\n');
  const { ast, diagnostics } = parseYaml(source, 'm.yaml');
  assert.deepEqual(diagnostics, []);
  assert.deepEqual(ast.leadingComments, ['header']);
  assert.equal(ast.trailingComment, 'the name');
  assert.deepEqual(ast.input!.leadingComments, ['about input']);
  assert.equal(ast.input!.trailingComment, 'input trailing');
  assert.deepEqual(ast.input!.columns[0]!.leadingComments, ['before a']);
  assert.equal(ast.input!.columns[0]!.trailingComment, 'a trailing');
  assert.equal(ast.input!.columns[1]!.leadingComments, undefined);
  assert.deepEqual(ast.wide!.leadingComments, ['before wide']);
  // Comments inside a value move to the enclosing property: trailing when free, else leading.
  assert.equal(ast.wide!.props[0]!.trailingComment, 'list trailing');
  assert.deepEqual(ast.wide!.props[0]!.leadingComments, ['item comment', 'between items']);
  assert.equal(ast.wide!.props[1]!.trailingComment, 'inside a call');
  assert.deepEqual(ast.trailingComments, ['the end']);
});

test('never throws: malformed, hostile and odd inputs give diagnostics', () => {
  const inputs = [
    '\u0000\u0001\u0002',
    '{',
    '[[[[[[[[',
    `${'['.repeat(5000)}${']'.repeat(5000)}`,
    `${'- '.repeat(300)}x`,
    '"\\ud800"',
    '!!binary aGVsbG8=',
    '!foo bar',
    'model: !!int x',
    'model: m\n<<: {a: 1}\n',
    '%YAML 1.2\n---\nmodel: m\n...\n',
    'model: *missing\n',
    '? \n',
    ': x\n',
    'model: m\ninput: {__proto__: int, constructor: {type: int}, toString: int}\n',
    'model: m\nfeatures: {x: {kind: [1], column: {a: 1}}}\n',
    '\ufeffmodel: m\n',
    'model: m\r\ninput:\r\n  a: int\r\n',
  ];
  for (const source of inputs) {
    const { diagnostics } = parseYaml(source, 'm.yaml');
    for (const d of diagnostics) assertSpanIn(d.span, source, d.message);
  }
  const proto = parseYaml(inputs[14]!, 'm.yaml');
  assert.deepEqual(proto.diagnostics, []);
  assert.deepEqual(proto.ast.input!.columns.map((c) => [c.name.name, c.type.text]), [['__proto__', 'int'], ['constructor', 'int'], ['toString', 'int']]);
});

function assertSpanIn(span: Span, source: string, what: string): void {
  assert.ok(Number.isInteger(span.start) && Number.isInteger(span.end), `integer span for ${what}`);
  assert.ok(0 <= span.start && span.start <= span.end && span.end <= source.length, `span ${span.start}..${span.end} of ${what} lies in a source of ${source.length}`);
}

function assertAllSpansIn(x: unknown, source: string): void {
  if (Array.isArray(x)) x.forEach((y) => assertAllSpansIn(y, source));
  else if (x !== null && typeof x === 'object') {
    for (const [k, v] of Object.entries(x)) {
      if (k === 'span') assertSpanIn(v as Span, source, 'an AST node');
      else assertAllSpansIn(v, source);
    }
  }
}


test('fuzz: thousands of seeded mutations and truncations of the quickstart never throw and keep spans in the source', () => {
  const pieces = ['{', '}', '[', ']', ':', ': ', ',', '-', '- ', '#', '"', "'", '&a ', '*a', '!!str ', '?', '|', '>', '\n', '\n  ', '\t', ' ', 'kind', 'model', '---', '\\', 'x', '0', '1e999', 'null', '~'];
  const next = random(20240611);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!;
  for (let i = 0; i < 3000; i++) {
    let source = quickstart;
    const edits = 1 + Math.floor(next() * 4);
    for (let e = 0; e < edits; e++) {
      const at = Math.floor(next() * (source.length + 1));
      const r = next();
      if (r < 0.2) source = source.slice(0, at);
      else if (r < 0.5) source = source.slice(0, at) + source.slice(at + 1 + Math.floor(next() * 20));
      else if (r < 0.9) source = source.slice(0, at) + pick(pieces) + source.slice(at);
      else source = source.slice(0, at) + String.fromCharCode(Math.floor(next() * 0x3000)) + source.slice(at);
    }
    let result;
    try {
      result = parseYaml(source, 'fuzz.yaml');
    } catch (err) {
      assert.fail(`case ${i} threw ${String(err)} on ${JSON.stringify(source)}`);
    }
    for (const d of result.diagnostics) {
      assertSpanIn(d.span, source, `case ${i}: ${d.message}`);
      for (const r of d.related ?? []) assertSpanIn(r.span, source, `case ${i}: related`);
    }
    assertAllSpansIn(result.ast, source);
  }
});
