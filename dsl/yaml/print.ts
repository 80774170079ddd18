// The canonical YAML form of a model: what `wndc convert --to yaml` and `wndc fmt x.yaml` write.
//
// Keys in the order model, input, features, wide, deep, train, head, one blank line between them;
// a column as its bare type when it has no default and no role, else `{type, default, role}`; a
// feature or call as a flow mapping `{kind: hashed, column: user, buckets: 10000}` with the
// positional parameters of the language table first (as the `.wnd` printer writes them), then the
// others in the order written; a call without arguments as a bare name where a call is expected;
// lists of scalars in flow style. A line that would pass 100 columns, and a list holding mappings
// (`deep.features`), is written in block style instead, one entry per line.
// Texts are bare or quoted exactly as in `.wnd` (context.ts isBareText), and quoted in any case
// when YAML (1.2, or 1.1 as older tools read it) would take the bare text for something else.

import type { CallValue, ColumnDecl, ModelAst, Value } from '../ast.js';
import { BLOCK_NAMES } from '../ast.js';
import { argType, blockParam, callFamily, callableOf, isBareText, itemType } from '../context.js';
import type { FamilyName, ParamType } from '../language.js';

const WIDTH = 100;

/** A value laid out: a scalar's text, a sequence or a mapping. */
type Layout = { kind: 'scalar'; text: string } | { kind: 'seq'; items: Layout[] } | { kind: 'map'; entries: [string, Layout][] };

// Words YAML 1.1 (still spoken by PyYAML and others) or 1.2 reads as booleans or null.
const RESERVED = new Set(['y', 'n', 'yes', 'no', 'on', 'off', 'true', 'false', 'null']);
const NAME_LIKE = /^[A-Za-z_][A-Za-z0-9_]*(@[0-9]+)?$/;
const SIZE_LIKE = /^[0-9]+(\.[0-9]+)?([KMGT]i?B|B)$/;
const TYPE_LIKE = /^[A-Za-z_][A-Za-z0-9_]*<[A-Za-z_][A-Za-z0-9_]*>$/;

/** True when `text` reads back as this very string when written bare, in flow and block context. */
function plainSafe(text: string): boolean {
  return (NAME_LIKE.test(text) || SIZE_LIKE.test(text) || TYPE_LIKE.test(text)) && !RESERVED.has(text.toLowerCase());
}

/** A double-quoted YAML scalar: JSON's escapes, plus those YAML needs for characters it does not allow raw. */
export function quoteYaml(text: string): string {
  return JSON.stringify(text).replace(/[\u007f-\u009f\u2028\u2029\ufeff\ufffe\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function scalarText(text: string, bare: boolean): string {
  return bare && plainSafe(text) ? text : quoteYaml(text);
}

/** Shortest round-trip form (`String(n)`), in YAML's spelling for the values JSON has no literal for. */
export function numberText(n: number): string {
  if (Number.isNaN(n)) return '.nan';
  if (n === Infinity) return '.inf';
  if (n === -Infinity) return '-.inf';
  if (Object.is(n, -0)) return '-0';
  return String(n);
}

const scalar = (text: string): Layout => ({ kind: 'scalar', text });

function valueLayout(value: Value, type: ParamType | undefined): Layout {
  switch (value.type) {
    case 'number':
      return scalar(numberText(value.value));
    case 'bool':
      return scalar(String(value.value));
    case 'text':
      return scalar(scalarText(value.value, isBareText(type, value.value)));
    case 'list':
      return { kind: 'seq', items: value.items.map((item) => valueLayout(item, itemType(type))) };
    case 'call':
      // A bare name means a call only where the type is a call; in a `oneOf` it is a reference.
      if (value.args.length === 0 && type?.kind === 'call') return scalar(scalarText(value.callee.name, true));
      return callLayout(value, callFamily(type, value.callee.name));
  }
}

/** `{kind: ..., positional params in table order, the other arguments as written}`. */
function callLayout(call: CallValue, family: FamilyName | undefined): Layout {
  const callable = family === undefined ? undefined : callableOf(family, call.callee.name);
  const positional = callable?.params.filter((p) => p.positional !== undefined).map((p) => p.name) ?? [];
  const rank = (name: string): number => {
    const i = positional.indexOf(name);
    return i < 0 ? positional.length : i;
  };
  // Array.prototype.sort is stable: arguments of equal rank keep the order written.
  const args = [...call.args].sort((a, b) => rank(a.name.name) - rank(b.name.name));
  const entries: [string, Layout][] = [['kind', scalar(scalarText(call.callee.name, true))]];
  for (const arg of args) entries.push([keyText(arg.name.name), valueLayout(arg.value, argType(family, call.callee.name, arg.name.name))]);
  return { kind: 'map', entries };
}

function keyText(name: string): string {
  return plainSafe(name) && !name.includes('@') ? name : quoteYaml(name);
}

function columnLayout(column: ColumnDecl): Layout {
  const type = scalar(scalarText(column.type.text, true));
  if (column.default === undefined && column.role === undefined) return type;
  const entries: [string, Layout][] = [['type', type]];
  if (column.default !== undefined) entries.push(['default', valueLayout(column.default, { kind: 'literal' })]);
  if (column.role !== undefined) entries.push(['role', scalar(scalarText(column.role.name, true))]);
  return { kind: 'map', entries };
}

function flat(layout: Layout): string {
  switch (layout.kind) {
    case 'scalar':
      return layout.text;
    case 'seq':
      return `[${layout.items.map(flat).join(', ')}]`;
    case 'map':
      return `{${layout.entries.map(([k, v]) => `${k}: ${flat(v)}`).join(', ')}}`;
  }
}

/** A list holding mappings is always written one item per line (`deep.features`). */
function mustBreak(layout: Layout): boolean {
  if (layout.kind === 'seq') return layout.items.some((i) => i.kind === 'map' || mustBreak(i));
  if (layout.kind === 'map') return layout.entries.some(([, v]) => mustBreak(v));
  return false;
}

const isEmpty = (layout: Layout): boolean => (layout.kind === 'seq' ? layout.items.length === 0 : layout.kind === 'map' ? layout.entries.length === 0 : false);

const comment = (text: string): string => (text.length === 0 ? '#' : `# ${text}`);

class Lines {
  readonly out: string[] = [];

  comments(indent: number, texts: readonly string[] | undefined): void {
    for (const t of texts ?? []) this.out.push(' '.repeat(indent) + comment(t));
  }

  /** `key: value`, on one line when it fits, else in block style. */
  entry(indent: number, key: string, layout: Layout, trailing?: string): void {
    const prefix = `${' '.repeat(indent)}${key}:`;
    const after = trailing === undefined ? '' : `  ${comment(trailing)}`;
    const line = `${prefix} ${flat(layout)}`;
    if (layout.kind === 'scalar' || isEmpty(layout) || (!mustBreak(layout) && line.length <= WIDTH)) {
      this.out.push(line + after);
      return;
    }
    this.out.push(prefix + after);
    if (layout.kind === 'seq') for (const item of layout.items) this.item(indent + 2, item);
    else if (layout.kind === 'map') for (const [k, v] of layout.entries) this.entry(indent + 2, k, v);
  }

  /** `- value`; a mapping item that does not fit starts on the dash line and continues below it. */
  private item(indent: number, layout: Layout): void {
    const dash = `${' '.repeat(indent)}- `;
    const line = dash + flat(layout);
    if (layout.kind === 'scalar' || isEmpty(layout) || (!mustBreak(layout) && line.length <= WIDTH)) {
      this.out.push(line);
    } else if (layout.kind === 'map') {
      const nested = new Lines();
      for (const [k, v] of layout.entries) nested.entry(indent + 2, k, v);
      nested.out[0] = dash + (nested.out[0] ?? '').slice(indent + 2);
      this.out.push(...nested.out);
    } else if (layout.kind === 'seq') {
      this.out.push(`${' '.repeat(indent)}-`);
      for (const item of layout.items) this.item(indent + 2, item);
    }
  }
}

export function printYaml(ast: ModelAst): string {
  const lines = new Lines();
  const out = lines.out;
  lines.comments(0, ast.leadingComments);
  let codeWritten = false;
  if (ast.name !== undefined) {
    lines.entry(0, 'model', scalar(scalarText(ast.name.name, true)), ast.trailingComment);
    codeWritten = true;
  } else if (ast.trailingComment !== undefined) {
    lines.comments(0, [ast.trailingComment]);
  }

  const section = (keyword: string, leading: readonly string[] | undefined, trailing: string | undefined, body: [string, Layout, { leadingComments?: string[]; trailingComment?: string }][]): void => {
    if (codeWritten) out.push('');
    codeWritten = true;
    lines.comments(0, leading);
    const after = trailing === undefined ? '' : `  ${comment(trailing)}`;
    if (body.length === 0) {
      out.push(`${keyword}: {}${after}`);
      return;
    }
    out.push(`${keyword}:${after}`);
    for (const [key, layout, trivia] of body) {
      lines.comments(2, trivia.leadingComments);
      lines.entry(2, key, layout, trivia.trailingComment);
    }
  };

  if (ast.input !== undefined) {
    const s = ast.input;
    section('input', s.leadingComments, s.trailingComment, s.columns.map((c) => [keyText(c.name.name), columnLayout(c), c]));
  }
  if (ast.features !== undefined) {
    const s = ast.features;
    section('features', s.leadingComments, s.trailingComment, s.features.map((f) => [keyText(f.name.name), callLayout(f.value, 'feature'), f]));
  }
  for (const name of BLOCK_NAMES) {
    const block = ast[name];
    if (block === undefined) continue;
    section(
      name,
      block.leadingComments,
      block.trailingComment,
      block.props.map((p) => [keyText(p.key.name), valueLayout(p.value, blockParam(name, p.key.name)?.type), p]),
    );
  }

  if (ast.trailingComments !== undefined && ast.trailingComments.length > 0) {
    if (out.length > 0) out.push('');
    lines.comments(0, ast.trailingComments);
  }
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}
