// The canonical `.wnd` layout, what `wndc fmt` writes: a pure function of the AST.
//
//   model NAME, a blank line, then the sections in the fixed order input, features, wide, deep,
//   train, head, one blank line apart; two-space indent; one declaration or property per line, in
//   the order written; lists and calls on one line when that line fits in MAX_WIDTH columns
//   (trailing comments not counted), otherwise one item per line with a trailing comma; numbers in
//   their shortest round-trip form; texts bare or quoted as their expected type says (context.ts);
//   comments where visitor.ts attached them, trailing ones from column COMMENT_COLUMN.

import {
  SECTION_NAMES,
  type Arg,
  type Block,
  type CallValue,
  type ColumnDecl,
  type FeatureDecl,
  type FeaturesSection,
  type InputSection,
  type ModelAst,
  type Property,
  type SectionName,
  type Value,
} from '../ast.js';
import { argType, blockParam, callableOf, callFamily, isBareText, itemType } from '../context.js';
import { BLOCK_PROPS, type ParamType } from '../language.js';

export const MAX_WIDTH = 100;
const INDENT = 2;

const LITERAL: ParamType = { kind: 'literal' };
const FEATURE_CALL: ParamType = { kind: 'call', family: 'feature' };

export function printWnd(ast: ModelAst): string {
  const lines = [...leadingLines(ast.leadingComments, 0)];
  lines.push(withTrailing(ast.name === undefined ? 'model' : `model ${ast.name.name}`, ast.trailingComment));
  for (const name of SECTION_NAMES) {
    const section = ast[name];
    if (section !== undefined) lines.push('', ...printSection(name, section));
  }
  if (ast.trailingComments !== undefined && ast.trailingComments.length > 0) lines.push('', ...leadingLines(ast.trailingComments, 0));
  return `${lines.join('\n')}\n`;
}

function printSection(name: SectionName, section: InputSection | FeaturesSection | Block): string[] {
  const entries = entryLines(name, section);
  const head = leadingLines(section.leadingComments, 0);
  if (entries.length === 0) return [...head, withTrailing(`${name} {}`, section.trailingComment)];
  return [...head, withTrailing(`${name} {`, section.trailingComment), ...entries, '}'];
}

function entryLines(name: SectionName, section: InputSection | FeaturesSection | Block): string[] {
  if ('columns' in section) return section.columns.flatMap(printColumn);
  if ('features' in section) return section.features.flatMap(printFeature);
  const block = name in BLOCK_PROPS ? (name as keyof typeof BLOCK_PROPS) : undefined;
  return section.props.flatMap((p) => printProperty(p, block));
}

function printColumn(column: ColumnDecl): string[] {
  let code = `${column.name.name}: ${column.type.text}`;
  const role = column.role === undefined ? '' : ` @${column.role.name}`;
  if (column.default !== undefined) {
    code += ' = ';
    code += printValue(column.default, LITERAL, INDENT, INDENT + code.length, role.length);
  }
  return entry(column.leadingComments, code + role, column.trailingComment);
}

function printFeature(feature: FeatureDecl): string[] {
  const head = `${feature.name.name} = `;
  return entry(feature.leadingComments, head + printCall(feature.value, FEATURE_CALL, INDENT, INDENT + head.length, 0, false), feature.trailingComment);
}

function printProperty(property: Property, block: keyof typeof BLOCK_PROPS | undefined): string[] {
  const head = `${property.key.name}: `;
  const expected = block === undefined ? undefined : blockParam(block, property.key.name)?.type;
  return entry(property.leadingComments, head + printValue(property.value, expected, INDENT, INDENT + head.length, 0), property.trailingComment);
}

/** A declaration's lines at the section indent: its leading comments, its code, its trailing comment. */
function entry(leading: string[] | undefined, code: string, trailing: string | undefined): string[] {
  const codeLines = code.split('\n');
  codeLines[0] = ' '.repeat(INDENT) + codeLines[0];
  codeLines[codeLines.length - 1] = withTrailing(codeLines[codeLines.length - 1]!, trailing);
  return [...leadingLines(leading, INDENT), ...codeLines];
}

/** Trailing comments line up at this column when the code leaves room (as in the examples), else follow two spaces after it. */
export const COMMENT_COLUMN = 34;

function withTrailing(code: string, comment: string | undefined): string {
  if (comment === undefined) return code;
  return `${code.padEnd(COMMENT_COLUMN - 2)}  ${commentLine(comment.replace(/\n/g, ' '))}`;
}

function leadingLines(comments: readonly string[] | undefined, indent: number): string[] {
  return (comments ?? []).flatMap((c) => c.split('\n')).map((c) => ' '.repeat(indent) + commentLine(c));
}

function commentLine(text: string): string {
  return text === '' ? '#' : `# ${text}`;
}

/** One item of a broken list or call: `prefix` is `name: ` for a named argument. */
interface Part {
  prefix: string;
  value: Value;
  type: ParamType | undefined;
}

/**
 * `value` printed where `type` is expected, starting at `column` on a line indented by `indent`,
 * with `suffix` more characters to follow it on its last line.
 */
function printValue(value: Value, listOrItem: ParamType | undefined, indent: number, column: number, suffix: number): string {
  const type = singleType(value, listOrItem);
  if (value.type === 'call') return printCall(value, type, indent, column, suffix, true);
  const flat = flatValue(value, type);
  if (value.type !== 'list' || value.items.length === 0 || column + flat.length + suffix <= MAX_WIDTH) return flat;
  const of = listItemType(type);
  return broken('[', value.items.map((item) => ({ prefix: '', value: item, type: of })), ']', indent);
}

/** A call; without arguments and where a call is expected it is written as a bare name (`zeros`) unless `bare` is off. */
function printCall(call: CallValue, type: ParamType | undefined, indent: number, column: number, suffix: number, bare: boolean): string {
  const parts = callParts(call, type);
  if (parts.length === 0) return bare && type?.kind === 'call' ? call.callee.name : `${call.callee.name}()`;
  const flat = `${call.callee.name}(${parts.map(flatPart).join(', ')})`;
  if (column + flat.length + suffix <= MAX_WIDTH) return flat;
  return broken(`${call.callee.name}(`, parts, ')', indent);
}

function broken(open: string, parts: Part[], close: string, indent: number): string {
  const inner = indent + INDENT;
  const items = parts.map((p) => `${' '.repeat(inner)}${p.prefix}${printValue(p.value, p.type, inner, inner + p.prefix.length, 1)},`);
  return [open, ...items, `${' '.repeat(indent)}${close}`].join('\n');
}

function flatValue(value: Value, listOrItem: ParamType | undefined): string {
  const type = singleType(value, listOrItem);
  switch (value.type) {
    case 'number':
      return String(value.value);
    case 'bool':
      return String(value.value);
    case 'text':
      return isBareText(type, value.value) ? value.value : JSON.stringify(value.value);
    case 'list': {
      const of = listItemType(type);
      return `[${value.items.map((item) => flatValue(item, of)).join(', ')}]`;
    }
    case 'call': {
      const parts = callParts(value, type);
      if (parts.length === 0) return type?.kind === 'call' ? value.callee.name : `${value.callee.name}()`;
      return `${value.callee.name}(${parts.map(flatPart).join(', ')})`;
    }
  }
}

function flatPart(part: Part): string {
  return part.prefix + flatValue(part.value, part.type);
}

/** A single value where a list is expected stands for one item (as the parser reads it). */
function singleType(value: Value, type: ParamType | undefined): ParamType | undefined {
  return value.type !== 'list' && type?.kind === 'list' ? type.of : type;
}

/** Items of a list where `type` is expected; a list standing for a literal (a column default) holds literals. */
function listItemType(type: ParamType | undefined): ParamType | undefined {
  return type?.kind === 'literal' ? type : itemType(type);
}

/**
 * The arguments in print order: first, as positional, the parameters the language table marks
 * positional (in table order, while each is present; a `rest` one as its list's items), then the
 * others by name in the order written. Arguments of an unknown callee (`$1`...) stay positional.
 */
function callParts(call: CallValue, type: ParamType | undefined): Part[] {
  const callee = call.callee.name;
  const family = callFamily(type, callee);
  const slots = (family === undefined ? undefined : callableOf(family, callee))?.params.filter((p) => p.positional !== undefined) ?? [];
  const used = new Set<Arg>();
  const parts: Part[] = [];
  for (const arg of call.args) {
    if (!arg.name.name.startsWith('$')) continue;
    parts.push({ prefix: '', value: arg.value, type: undefined });
    used.add(arg);
  }
  for (const slot of slots) {
    const arg = call.args.find((a) => a.name.name === slot.name && !used.has(a));
    if (arg === undefined) break;
    if (slot.positional === 'rest') {
      if (arg.value.type !== 'list' || arg.value.items.length === 0) break;
      parts.push(...arg.value.items.map((item) => ({ prefix: '', value: item, type: itemType(slot.type) })));
    } else {
      parts.push({ prefix: '', value: arg.value, type: slot.type });
    }
    used.add(arg);
  }
  for (const arg of call.args) {
    if (used.has(arg)) continue;
    parts.push({ prefix: `${arg.name.name}: `, value: arg.value, type: family === undefined ? undefined : argType(family, callee, arg.name.name) });
  }
  return parts;
}
