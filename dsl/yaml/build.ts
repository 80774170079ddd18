// Builds the wndc AST from the YAML tree: the same tree the `.wnd` front end gives for the same model.
// Shape errors were reported by the schema (validate.ts); here a value of the wrong shape is left
// out, except where leaving it out would make the checker report a second, unrelated-looking error
// (a feature or column that vanished): such values become an empty name spanned where the schema
// diagnostic is, so the compile driver's same-span rule keeps only the first report.

import type { Arg, Block, BlockName, CallValue, ColumnDecl, FeatureDecl, FeaturesSection, Ident, InputSection, ModelAst, Property, Span, Trivia, TypeRef, Value } from '../ast.js';
import { BLOCK_NAMES } from '../ast.js';
import { argType, blockParam, callFamily, itemType } from '../context.js';
import type { FamilyName, ParamType } from '../language.js';
import type { YEntry, YMap, YNode } from './tree.js';
import { missingKeySpan } from './validate.js';

/** Something comments attach to: the model line, a section, a declaration or a property. */
export interface Entity {
  span: Span;
  trivia: Trivia;
  children: Entity[];
}

export interface BuildResult {
  ast: ModelAst;
  /** Top-level entities in source order, each with its children in source order. */
  entities: Entity[];
}

const join = (a: Span, b: Span): Span => ({ start: Math.min(a.start, b.start), end: Math.max(a.end, b.end) });

const scalarText = (node: YNode): string | undefined => (node.kind === 'scalar' && node.value !== null ? String(node.value) : undefined);

const firstEntry = (map: YMap, key: string): YEntry | undefined => map.entries.find((e) => e.key === key && !e.duplicate);

export function buildAst(root: YNode | undefined, file: string): BuildResult {
  const ast: ModelAst = { file };
  const entities: Entity[] = [];
  if (root?.kind !== 'map') return { ast, entities };

  for (const entry of root.entries) {
    if (entry.duplicate) continue;
    const span = join(entry.keySpan, entry.value.span);
    const keyword: Ident = { name: entry.key, span: entry.keySpan };
    if (entry.key === 'model') {
      const name = scalarText(entry.value);
      if (name !== undefined) ast.name = { name, span: entry.value.span };
      entities.push({ span, trivia: ast, children: [] });
    } else if (entry.key === 'input') {
      const section: InputSection = { keyword, columns: [], span };
      const children = entries(entry.value).map((e) => {
        const column = buildColumn(e);
        section.columns.push(column);
        return { span: column.span, trivia: column, children: [] };
      });
      ast.input = section;
      entities.push({ span, trivia: section, children });
    } else if (entry.key === 'features') {
      const section: FeaturesSection = { keyword, features: [], span };
      const children = entries(entry.value).map((e) => {
        const feature = buildFeature(e);
        section.features.push(feature);
        return { span: feature.span, trivia: feature, children: [] };
      });
      ast.features = section;
      entities.push({ span, trivia: section, children });
    } else if ((BLOCK_NAMES as readonly string[]).includes(entry.key)) {
      const name = entry.key as BlockName;
      const block: Block = { keyword, props: [], span };
      const children: Entity[] = [];
      for (const e of entries(entry.value)) {
        const value = toValue(e.value, blockParam(name, e.key)?.type, e.keySpan);
        if (value === undefined) continue;
        const prop: Property = { key: { name: e.key, span: e.keySpan }, value, span: join(e.keySpan, value.span) };
        block.props.push(prop);
        children.push({ span: prop.span, trivia: prop, children: [] });
      }
      ast[name] = block;
      entities.push({ span, trivia: block, children });
    }
    // Unknown top-level keys were reported by the schema and have no place in the AST.
  }
  return { ast, entities };
}

/** A section's entries; duplicates stay (the checker reports duplicate names, as for `.wnd`). */
function entries(node: YNode): YEntry[] {
  return node.kind === 'map' ? node.entries : [];
}

/** `name: int`, or `name: {type: int, default: 0, role: label}`. */
function buildColumn(e: YEntry): ColumnDecl {
  const name: Ident = { name: e.key, span: e.keySpan };
  const value = e.value;
  const column: ColumnDecl = { name, type: typeRef(value, e.keySpan), span: join(e.keySpan, value.span) };
  if (value.kind === 'map') {
    const typeEntry = firstEntry(value, 'type');
    column.type = typeEntry === undefined ? { text: '', span: missingKeySpan(value, e.keySpan) } : typeRef(typeEntry.value, typeEntry.keySpan);
    const def = firstEntry(value, 'default');
    const defaultValue = def === undefined ? undefined : toValue(def.value, { kind: 'literal' }, def.keySpan);
    if (defaultValue !== undefined) column.default = defaultValue;
    const role = firstEntry(value, 'role');
    const roleName = role === undefined ? undefined : scalarText(role.value);
    if (role !== undefined && roleName !== undefined) column.role = { name: roleName, span: role.value.span };
  }
  return column;
}

/** The type as written, without spaces (`list<int>`), as the `.wnd` front end keeps it. */
function typeRef(node: YNode, keySpan: Span): TypeRef {
  if (node.kind === 'map') return { text: '', span: keySpan };
  const text = scalarText(node);
  return { text: text === undefined ? '' : text.replace(/\s+/g, ''), span: node.span };
}

function buildFeature(e: YEntry): FeatureDecl {
  const name: Ident = { name: e.key, span: e.keySpan };
  const value = e.value;
  let call: CallValue;
  if (value.kind === 'map') call = buildCall(value, 'feature', e.keySpan);
  else {
    // A bare kind (`x: indicator`) or a wrong shape: a call without arguments, spanned at the value.
    const callee = value.kind === 'scalar' && typeof value.value === 'string' ? value.value : '';
    call = { type: 'call', callee: { name: callee, span: value.span }, args: [], span: value.span };
  }
  return { name, value: call, span: join(e.keySpan, value.span) };
}

/** `{kind: ftrl, learning_rate: 0.2}` -> `ftrl(learning_rate: 0.2)`; arguments in the order written. */
function buildCall(map: YMap, family: FamilyName | undefined, keySpan: Span | undefined): CallValue {
  const kind = firstEntry(map, 'kind');
  let callee: Ident;
  if (kind === undefined) callee = { name: '', span: missingKeySpan(map, keySpan) };
  else callee = { name: scalarText(kind.value) ?? '', span: kind.value.span };
  const args: Arg[] = [];
  for (const e of map.entries) {
    if (e.key === 'kind') continue;
    const value = toValue(e.value, argType(family, callee.name, e.key), e.keySpan);
    if (value !== undefined) args.push({ name: { name: e.key, span: e.keySpan }, value });
  }
  return { type: 'call', callee, args, span: map.span };
}

/**
 * The AST value of a YAML value where `type` is expected. A bare name where a call is expected
 * (not a `oneOf`, where a name is a reference) is a call without arguments. Undefined for a null
 * or for a mapping where no call can be.
 */
function toValue(node: YNode, type: ParamType | undefined, keySpan: Span | undefined): Value | undefined {
  switch (node.kind) {
    case 'scalar': {
      const v = node.value;
      if (v === null) return undefined;
      if (typeof v === 'number') return { type: 'number', value: v, span: node.span };
      if (typeof v === 'boolean') return { type: 'bool', value: v, span: node.span };
      if (type?.kind === 'call') return { type: 'call', callee: { name: v, span: node.span }, args: [], span: node.span };
      return { type: 'text', value: v, span: node.span };
    }
    case 'seq': {
      const items: Value[] = [];
      for (const item of node.items) {
        const value = toValue(item, itemType(type), undefined);
        if (value !== undefined) items.push(value);
      }
      return { type: 'list', items, span: node.span };
    }
    case 'map': {
      const kind = firstEntry(node, 'kind');
      const calleeName = kind === undefined ? undefined : scalarText(kind.value);
      const family = callFamily(type, calleeName);
      if (kind === undefined && family === undefined) return undefined;
      return buildCall(node, family, keySpan);
    }
  }
}
