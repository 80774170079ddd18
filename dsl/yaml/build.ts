// Builds the wndc AST from the YAML tree: the same tree the `.wnd` front end gives for the same model.
// Shape errors were reported by the schema (validate.ts); here a value of the wrong shape is left
// out, except where leaving it out would make the checker report a second, unrelated-looking error
// (a feature or column that vanished): such values become an empty name spanned where the schema
// diagnostic is, so the compile driver's same-span rule keeps only the first report.
// The schema knows no parameters of a callee it does not know; a value there that the AST cannot
// hold is reported here, so that `fmt` refuses the file rather than drop the value.

import type { Arg, Block, BlockName, CallValue, ColumnDecl, FeatureDecl, FeaturesSection, Ident, InputSection, ModelAst, Property, Span, Trivia, TypeRef, Value } from '../ast.js';
import { BLOCK_NAMES } from '../ast.js';
import { argType, blockParam, callableOf, callFamily, itemType } from '../context.js';
import type { FamilyName, ParamType } from '../language.js';
import type { Reporter } from '../../compiler/diagnostics.js';
import { describeNode, type YEntry, type YMap, type YNode } from './tree.js';
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

/** A section's entries; duplicates stay (the checker reports duplicate names, as for `.wnd`). */
const entries = (node: YNode): YEntry[] => (node.kind === 'map' ? node.entries : []);

/** Where a value sits, for the values the schema did not check. */
interface Place {
  /** The key the value is under, for messages and for the span of a call without `kind`. */
  key?: string;
  keySpan?: Span;
  /** True inside a call whose callee the language does not know. */
  unchecked: boolean;
}

export function buildAst(root: YNode | undefined, file: string, reporter: Reporter): BuildResult {
  return new AstBuilder(reporter).build(root, file);
}

class AstBuilder {
  constructor(private readonly reporter: Reporter) {}

  build(root: YNode | undefined, file: string): BuildResult {
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
        const section: InputSection = { keyword, columns: entries(entry.value).map((e) => this.column(e)), span };
        ast.input = section;
        entities.push({ span, trivia: section, children: section.columns.map(leaf) });
      } else if (entry.key === 'features') {
        const section: FeaturesSection = { keyword, features: entries(entry.value).map((e) => this.feature(e)), span };
        ast.features = section;
        entities.push({ span, trivia: section, children: section.features.map(leaf) });
      } else if ((BLOCK_NAMES as readonly string[]).includes(entry.key)) {
        const name = entry.key as BlockName;
        const block: Block = { keyword, props: [], span };
        for (const e of entries(entry.value)) {
          const value = this.value(e.value, blockParam(name, e.key)?.type, { key: e.key, keySpan: e.keySpan, unchecked: false });
          if (value !== undefined) block.props.push({ key: { name: e.key, span: e.keySpan }, value, span: join(e.keySpan, value.span) } satisfies Property);
        }
        ast[name] = block;
        entities.push({ span, trivia: block, children: block.props.map(leaf) });
      }
      // Unknown top-level keys were reported by the schema and have no place in the AST.
    }
    return { ast, entities };
  }

  /** `name: int`, or `name: {type: int, default: 0, role: label}`. */
  private column(e: YEntry): ColumnDecl {
    const value = e.value;
    const column: ColumnDecl = { name: { name: e.key, span: e.keySpan }, type: typeRef(value), span: join(e.keySpan, value.span) };
    if (value.kind === 'map') {
      const type = firstEntry(value, 'type');
      column.type = type === undefined ? { text: '', span: missingKeySpan(value, e.keySpan) } : typeRef(type.value);
      const def = firstEntry(value, 'default');
      const defaultValue = def === undefined ? undefined : this.value(def.value, { kind: 'literal' }, { key: 'default', keySpan: def.keySpan, unchecked: false });
      if (defaultValue !== undefined) column.default = defaultValue;
      const role = firstEntry(value, 'role');
      const roleName = role === undefined ? undefined : scalarText(role.value);
      if (role !== undefined && roleName !== undefined) column.role = { name: roleName, span: role.value.span };
    }
    return column;
  }

  private feature(e: YEntry): FeatureDecl {
    const value = e.value;
    let call: CallValue;
    if (value.kind === 'map') call = this.call(value, 'feature', { key: e.key, keySpan: e.keySpan, unchecked: false });
    else {
      // A bare kind (`x: indicator`) or a wrong shape: a call without arguments, spanned at the value.
      const callee = value.kind === 'scalar' && typeof value.value === 'string' ? value.value : '';
      call = { type: 'call', callee: { name: callee, span: value.span }, args: [], span: value.span };
    }
    return { name: { name: e.key, span: e.keySpan }, value: call, span: join(e.keySpan, value.span) };
  }

  /** `{kind: ftrl, learning_rate: 0.2}` -> `ftrl(learning_rate: 0.2)`; arguments in the order written. */
  private call(map: YMap, family: FamilyName | undefined, place: Place, only?: readonly string[]): CallValue {
    const kind = firstEntry(map, 'kind');
    const callee: Ident = kind === undefined ? { name: '', span: missingKeySpan(map, place.keySpan) } : { name: scalarText(kind.value) ?? '', span: kind.value.span };
    // Only a callee named by a string the language does not know escapes the schema unreported.
    const unknownCallee =
      kind?.value.kind === 'scalar' &&
      typeof kind.value.value === 'string' &&
      family !== undefined &&
      (callableOf(family, callee.name) === undefined || (only !== undefined && !only.includes(callee.name)));
    const unchecked = place.unchecked || unknownCallee;
    const args: Arg[] = [];
    for (const e of map.entries) {
      if (e.key === 'kind') continue;
      const value = this.value(e.value, argType(family, callee.name, e.key), { key: e.key, keySpan: e.keySpan, unchecked });
      if (value !== undefined) args.push({ name: { name: e.key, span: e.keySpan }, value });
    }
    return { type: 'call', callee, args, span: map.span };
  }

  /**
   * The AST value of a YAML value where `type` is expected. A bare name where a call is expected
   * (not a `oneOf`, where a name is a reference) is a call without arguments. Undefined for a null,
   * or for a mapping where no call can be.
   */
  private value(node: YNode, type: ParamType | undefined, place: Place): Value | undefined {
    switch (node.kind) {
      case 'scalar': {
        const v = node.value;
        if (v === null) return this.unrepresentable(node, place);
        if (typeof v === 'number') return { type: 'number', value: v, span: node.span };
        if (typeof v === 'boolean') return { type: 'bool', value: v, span: node.span };
        if (type?.kind === 'call') return { type: 'call', callee: { name: v, span: node.span }, args: [], span: node.span };
        return { type: 'text', value: v, span: node.span };
      }
      case 'seq': {
        const items: Value[] = [];
        for (const item of node.items) {
          const value = this.value(item, itemType(type), { ...(place.key === undefined ? {} : { key: place.key }), unchecked: place.unchecked });
          if (value !== undefined) items.push(value);
        }
        return { type: 'list', items, span: node.span };
      }
      case 'map': {
        const kind = firstEntry(node, 'kind');
        const family = callFamily(type, kind === undefined ? undefined : scalarText(kind.value));
        if (kind === undefined && family === undefined) return this.unrepresentable(node, place);
        return this.call(node, family, place, allowedCallees(type));
      }
    }
  }

  /** Nothing, or a mapping without `kind`: no AST value. Reported unless the schema did. */
  private unrepresentable(node: YNode, place: Place): undefined {
    if (place.unchecked) {
      const where = place.key === undefined ? '' : ` for \`${place.key}\``;
      const expected = node.kind === 'map' ? 'a value or a call `{kind: ...}`' : 'a value';
      this.reporter.report('WND2004', node.span, `expected ${expected}${where}, found ${describeNode(node)}`);
    }
    return undefined;
  }
}

/** The callees a call may name where `type` is expected (`deep.features`: embedding and indicator). */
function allowedCallees(type: ParamType | undefined): readonly string[] | undefined {
  if (type?.kind === 'call') return type.only;
  if (type?.kind === 'oneOf') return type.options.find((o): o is Extract<ParamType, { kind: 'call' }> => o.kind === 'call')?.only;
  return undefined;
}

const leaf = (node: ColumnDecl | FeatureDecl | Property): Entity => ({ span: node.span, trivia: node, children: [] });

/** The type as written, without spaces (`list<int>`), as the `.wnd` front end keeps it. */
function typeRef(node: YNode): TypeRef {
  const text = scalarText(node);
  return { text: text === undefined ? '' : text.replace(/\s+/g, ''), span: node.span };
}
