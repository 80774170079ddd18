// The `.wnd` formatter: canonical layout, idempotence, round trips through the parser, comments kept.

import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { CallValue, ModelAst, Value } from '../dsl/ast.js';
import { parseWnd } from '../dsl/wnd/parse.js';
import { COMMENT_COLUMN, MAX_WIDTH, printWnd } from '../dsl/wnd/print.js';
import { REPO } from './support/paths.js';

function parse(source: string): ModelAst {
  const { ast, diagnostics } = parseWnd(source, 'test.wnd');
  assert.deepEqual(diagnostics.map((d) => `${d.code} ${d.message}`), [], 'the input parses cleanly');
  return ast;
}

const fmt = (source: string): string => printWnd(parse(source));

/** The AST without spans: what must survive printing and parsing again. */
function withoutSpans(ast: ModelAst): unknown {
  return JSON.parse(JSON.stringify(ast, (key, value: unknown) => (key === 'span' ? undefined : value)));
}

/** fmt is idempotent and printing loses nothing the parser reads (spans aside). */
function assertStable(source: string): void {
  const ast = parse(source);
  const once = printWnd(ast);
  const reparsed = parse(once);
  assert.equal(printWnd(reparsed), once, 'fmt is idempotent');
  assert.deepEqual(withoutSpans(reparsed), withoutSpans(ast), 'parse(print(ast)) equals ast up to spans');
}

const examples = readdirSync(join(REPO, 'examples'))
  .map((dir) => join(REPO, 'examples', dir, `${dir}.wnd`))
  .filter((p) => existsSync(p))
  .sort();

test('the quickstart is already in canonical layout', () => {
  const source = readFileSync(join(REPO, 'examples', 'quickstart', 'quickstart.wnd'), 'utf8');
  assert.equal(fmt(source), source);
});

for (const path of examples) {
  test(`${path.slice(REPO.length + 1)}: fmt is idempotent and round-trips the AST`, () => assertStable(readFileSync(path, 'utf8')));
}

const MESSY = `#lead
model   messy   # header
input{clicked:int@label
  # the user
  user : string="a \\"b\\""   # quoted
  tags:list < string >=[ "x","y", ]
  price: float = -0.50
}
train { seed: 7   metrics: [ map@12 , auc ] memory_budget: 16GiB }
features{ u = hashed( user , buckets : 100 , ) x = crossed(u, i, buckets: 1e3)
i = identity(buckets: 10, column: item, default_id: 0)
}
deep {
  features: [embedding(u, dim: 8, init: constant(0.0001)), indicator(i), x]
  init: zeros
  decay: exponential(rate: 0.5, steps: 10)
  optimizer: adam(learning_rate: 1e-7)
}
# end
`;

test('a messy file gets the canonical layout', () => {
  assert.equal(
    fmt(MESSY),
    `# lead
model messy                       # header

input {
  clicked: int @label
  # the user
  user: string = "a \\"b\\""        # quoted
  tags: list<string> = ["x", "y"]
  price: float = -0.5
}

features {
  u = hashed(user, buckets: 100)
  x = crossed(u, i, buckets: 1000)
  i = identity(item, buckets: 10, default_id: 0)
}

deep {
  features: [embedding(u, dim: 8, init: constant(0.0001)), indicator(i), x]
  init: zeros
  decay: exponential(rate: 0.5, steps: 10)
  optimizer: adam(learning_rate: 1e-7)
}

train {
  seed: 7
  metrics: [map@12, auc]
  memory_budget: 16GiB
}

# end
`,
  );
});

test('a messy file: fmt is idempotent and keeps the AST once arguments are in print order', () => {
  const once = fmt(MESSY);
  assert.equal(fmt(once), once);
  // `identity(buckets: 10, column: item, ...)` is printed with its positional column first
  const messyAst = withoutSpans(parse(MESSY)) as ModelAst;
  const printedAst = withoutSpans(parse(once)) as ModelAst;
  assert.deepEqual(printedAst.features!.features[2]!.value.args.map((a) => a.name.name), ['column', 'buckets', 'default_id']);
  assert.deepEqual(messyAst.features!.features[2]!.value.args.map((a) => a.name.name), ['buckets', 'column', 'default_id']);
  assertStable(once);
});

test('numbers print in their shortest round-trip form', () => {
  const source = 'model m\ntrain {\n  a: 0.0001\n  b: 1e-7\n  c: 1.50\n  d: 1e21\n  e: -0\n  f: 007\n  g: 1E3\n}\n';
  assert.equal(fmt(source), 'model m\n\ntrain {\n  a: 0.0001\n  b: 1e-7\n  c: 1.5\n  d: 1e+21\n  e: 0\n  f: 7\n  g: 1000\n}\n');
  assertStable(source);
});

test('texts are bare or quoted as their expected type says', () => {
  const source = [
    'model m',
    'input {',
    '  a: string = "x"',
    '  b: list<string> = ["x", "y z"]',
    '}',
    'features {',
    '  v = vocabulary(a, values: ["x", 1, true], file: "vocab.txt")',
    '  w = multi_hot(b, max_len: 2, by: "hash")',
    '  e = embedding(v, dim: 4, share: "users")',
    '}',
    'deep {',
    '  activation: "relu"',
    '  features: ["e", "not a name"]',
    '  unknown_key: "plain"',
    '  other_key: "map@12"',
    '}',
    'train {',
    '  metrics: ["map@12", "auc"]',
    '  memory_budget: "512MiB"',
    '  mixed_precision: "true"',
    '}',
    '',
  ].join('\n');
  assert.equal(
    fmt(source),
    [
      'model m',
      '',
      'input {',
      '  a: string = "x"',
      '  b: list<string> = ["x", "y z"]',
      '}',
      '',
      'features {',
      '  v = vocabulary(a, values: ["x", 1, true], file: "vocab.txt")',
      '  w = multi_hot(b, max_len: 2, by: hash)',
      '  e = embedding(v, dim: 4, share: users)',
      '}',
      '',
      'deep {',
      '  activation: relu',
      '  features: [e, "not a name"]',
      '  unknown_key: plain',
      '  other_key: "map@12"',
      '}',
      '',
      'train {',
      '  metrics: [map@12, auc]',
      '  memory_budget: 512MiB',
      '  mixed_precision: "true"',
      '}',
      '',
    ].join('\n'),
  );
  assertStable(source);
});

test('a call without arguments is a bare name only where a call is expected', () => {
  const source = 'model m\nfeatures {\n  z = zeros()\n  e = embedding(f, dim: 2, init: zeros())\n}\ndeep {\n  features: [indicator()]\n  init: glorot_uniform()\n  x: foo()\n}\n';
  assert.equal(
    fmt(source),
    'model m\n\nfeatures {\n  z = zeros()\n  e = embedding(f, dim: 2, init: zeros)\n}\n\ndeep {\n  features: [indicator()]\n  init: glorot_uniform\n  x: foo()\n}\n',
  );
  assertStable(source);
});

test(`lists and calls stay on one line up to ${MAX_WIDTH} columns, then take one item per line`, () => {
  const items = Array.from({ length: 10 }, (_, i) => `f${i}`);
  const prefix = `  features: [${items.join(', ')}, `;
  const filler = 'x'.repeat(MAX_WIDTH - prefix.length - 1);
  const fits = `${prefix}${filler}]`;
  assert.equal(fits.length, MAX_WIDTH);
  assert.equal(fmt(`model m\nwide {\n${fits}\n}\n`), `model m\n\nwide {\n${fits}\n}\n`);
  const tooLong = `model m\nwide {\n${prefix}${filler}x]\n}\n`;
  assert.equal(fmt(tooLong), `model m\n\nwide {\n  features: [\n${[...items, `${filler}x`].map((i) => `    ${i},`).join('\n')}\n  ]\n}\n`);
  assertStable(tooLong);
});

test('a long feature call breaks into one argument per line; nested values break only when they must', () => {
  const long = 'a_rather_long_column_name_that_goes_on_and_on';
  const [v, w] = ['v'.repeat(60), 'w'.repeat(60)];
  const source = `model m\nfeatures {\n  f = vocabulary(${long}, values: ["${v}", "${w}"], oov_buckets: 2)\n}\n`;
  assert.equal(
    fmt(source),
    [
      'model m',
      '',
      'features {',
      '  f = vocabulary(',
      `    ${long},`,
      '    values: [',
      `      "${v}",`,
      `      "${w}",`,
      '    ],',
      '    oov_buckets: 2,',
      '  )',
      '}',
      '',
    ].join('\n'),
  );
  assertStable(source);
});

test('the crossed features are printed positionally, other calls keep named arguments in order', () => {
  const source = 'model m\nfeatures {\n  c = crossed(buckets: 10, features: [a, b])\n  d = crossed(features: [], buckets: 1)\n  e = crossed(features: a, buckets: 1)\n}\n';
  assert.equal(
    fmt(source),
    'model m\n\nfeatures {\n  c = crossed(a, b, buckets: 10)\n  d = crossed(features: [], buckets: 1)\n  e = crossed(features: a, buckets: 1)\n}\n',
  );
});

test('an AST built by hand (as from YAML) prints its positional parameters positionally', () => {
  const span = { start: 0, end: 0 };
  const text = (value: string): Value => ({ type: 'text', value, span });
  const id = (name: string) => ({ name, span });
  const hashed: CallValue = { type: 'call', callee: id('hashed'), args: [{ name: id('buckets'), value: { type: 'number', value: 5, span } }, { name: id('column'), value: text('user') }], span };
  const unknown: CallValue = { type: 'call', callee: id('mystery'), args: [{ name: id('$1'), value: text('x') }, { name: id('k'), value: text('two words') }], span };
  const ast: ModelAst = {
    file: 'hand.wnd',
    name: id('hand'),
    features: { keyword: id('features'), span, features: [{ name: id('h'), value: hashed, span }, { name: id('q'), value: unknown, span }] },
    wide: { keyword: id('wide'), span, props: [{ key: id('optimizer'), value: { type: 'call', callee: id('ftrl'), args: [], span }, span, trailingComment: 'multi\nline' }] },
  };
  assert.equal(
    printWnd(ast),
    `model hand\n\nfeatures {\n  h = hashed(user, buckets: 5)\n  q = mystery(x, k: "two words")\n}\n\nwide {\n  optimizer: ftrl${' '.repeat(COMMENT_COLUMN - 17)}# multi line\n}\n`,
  );
});

test('CRLF line endings and a byte order mark are read; fmt writes LF', () => {
  const source = readFileSync(join(REPO, 'examples', 'quickstart', 'quickstart.wnd'), 'utf8');
  assert.equal(fmt(`\uFEFF${source.replace(/\n/g, '\r\n')}`), source);
});

test('empty sections and a model without sections', () => {
  assert.equal(fmt('model m input{} wide{ }'), 'model m\n\ninput {}\n\nwide {}\n');
  assert.equal(fmt('model m'), 'model m\n');
});

// --- comments -------------------------------------------------------------------------------------

const COMMENTED = `# file header
# second line
model c  # the model

# columns first
input {  # raw
  # the label
  clicked: int @label
  a_very_long_column_name_here: int = 0  # long
  #
  #   indented
  b: int
  # dangling at the end of input
}

wide {
  features: [  # opening
    a,  # first item
    # own line in the list
    b,
  ]  # closing
}
# after everything
`;

test('comments are kept, at their canonical places', () => {
  assert.equal(
    fmt(COMMENTED),
    `# file header
# second line
model c                           # the model

# columns first
input {                           # raw
  # the label
  clicked: int @label
  a_very_long_column_name_here: int = 0  # long
  #
  #   indented
  b: int
}

# dangling at the end of input
wide {
  # first item
  # own line in the list
  # closing
  features: [a, b]                # opening
}

# after everything
`,
  );
  assertStable(fmt(COMMENTED));
});

test('every comment of every example survives fmt', () => {
  const commentTexts = (source: string) =>
    source
      .split('\n')
      .map((l) => /#.*$/.exec(l)?.[0] ?? '')
      .filter((c) => c !== '' && !c.includes('"'))
      .sort();
  for (const path of [...examples]) {
    const source = readFileSync(path, 'utf8');
    assert.deepEqual(commentTexts(fmt(source)), commentTexts(source), path);
  }
  assert.deepEqual(commentTexts(fmt(COMMENTED)), commentTexts(COMMENTED));
});
