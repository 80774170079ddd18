// Builds the AST from the `.wnd` concrete syntax tree: the semantics that parser.ts leaves out.
// It names positional arguments from the language table, turns a bare name into a call where a
// call is expected (`init: zeros`), checks the model header and the section names, and attaches
// comments to the nodes they describe.
//
// The tree may come from error recovery: any child can be missing and any token can be one the
// parser made up (no offsets). Declarations missing an essential part are left out of the AST.

import type { CstNode, IToken, TokenType } from 'chevrotain';
import {
  BLOCK_NAMES,
  SECTION_NAMES,
  type Arg,
  type Block,
  type BlockName,
  type CallValue,
  type ColumnDecl,
  type FeatureDecl,
  type FeaturesSection,
  type Ident,
  type InputSection,
  type ModelAst,
  type Property,
  type Span,
  type Trivia,
  type TypeRef,
  type Value,
} from '../ast.js';
import { callableOf, argType, blockParam, callFamily, itemType, namePositional, type PositionalArg } from '../context.js';
import type { FamilyName, ParamType } from '../language.js';
import { didYouMean, type Reporter } from '../../compiler/diagnostics.js';
import { LineIndex } from '../../compiler/render.js';
import type {
  ArgCstChildren,
  BlockSectionCstChildren,
  CallCstChildren,
  ColumnDeclCstChildren,
  FeatureDeclCstChildren,
  FeaturesSectionCstChildren,
  FileCstChildren,
  FileCstNode,
  HeaderCstChildren,
  InputSectionCstChildren,
  ListCstChildren,
  MapCstChildren,
  PropertyCstChildren,
  SectionCstChildren,
  TypeRefCstChildren,
  ValueCstChildren,
  ValueCstNode,
  WndCstVisitor,
} from './cst.js';
import { ClosedString, Colon, decodeString, describeFound, Equals, isVirtual, tokenLabel, tokenSpan } from './lexer.js';
import { wndParser } from './parser.js';

export interface BuildInput {
  source: string;
  file: string;
  /** Code tokens, in order (comments excluded). */
  tokens: readonly IToken[];
  comments: readonly IToken[];
  reporter: Reporter;
}

/** The AST of a parsed `.wnd` file, with its diagnostics reported through `input.reporter`. */
export function buildAst(cst: FileCstNode, input: BuildInput): ModelAst {
  return new AstBuilder(input).build(cst);
}

const LITERAL: ParamType = { kind: 'literal' };
const FEATURE_CALL: ParamType = { kind: 'call', family: 'feature' };

type AnySection = InputSection | FeaturesSection | Block;

interface ParsedHeader {
  name?: Ident;
  span: Span;
}

/** What a section's body is built with: its name and extent. */
interface SectionHead {
  keyword: Ident;
  span: Span;
}

const BaseVisitor = wndParser.getBaseCstVisitorConstructor();

class AstBuilder extends BaseVisitor implements WndCstVisitor<unknown, unknown> {
  /** The block whose properties are being read, for their expected types. */
  private block: BlockName | undefined;
  private readonly reporter: Reporter;

  constructor(private readonly input: BuildInput) {
    super();
    this.reporter = input.reporter;
    this.validateVisitor();
  }

  build(cst: FileCstNode): ModelAst {
    return this.file(cst.children);
  }

  file(children: FileCstChildren): ModelAst {
    const ast: ModelAst = { file: this.input.file };
    const headers = (children.header ?? []).map((h) => this.header(h.children)).filter(isDefined);
    const sectionNodes = (children.section ?? []).map((s) => this.sectionNode(s.children)).filter(isDefined);
    const header = headers[0];
    const firstSection = sectionNodes[0];
    if (header?.name !== undefined) ast.name = header.name;
    this.checkHeader(headers, firstSection);

    const kept: AnySection[] = [];
    for (const node of sectionNodes) {
      const section = this.sectionBody(node, ast);
      if (section !== undefined) kept.push(section);
    }
    attachComments(ast, header?.span, kept, this.input);
    return ast;
  }

  header(children: HeaderCstChildren): ParsedHeader | undefined {
    const model = real(children.Model?.[0]);
    if (model === undefined) return undefined;
    const name = ident(children.Name?.[0]);
    if (name === undefined) {
      const next = this.tokenAfter(tokenSpan(model).end);
      const span = next === undefined ? this.endSpan() : tokenSpan(next);
      this.reporter.report('WND1003', span, `expected a model name after \`model\`, found ${next === undefined ? 'end of input' : describeFound(next)}`, {
        help: 'name the model: `model clicks`',
      });
    }
    return { ...(name !== undefined ? { name } : {}), span: { start: tokenSpan(model).start, end: name?.span.end ?? tokenSpan(model).end } };
  }

  private checkHeader(headers: ParsedHeader[], firstSection: SectionNode | undefined): void {
    const header = headers[0];
    const example = `model ${header?.name?.name ?? 'NAME'}`;
    if (firstSection !== undefined && (header === undefined || header.span.start > firstSection.keyword.span.start)) {
      const message = `missing model header before section \`${firstSection.keyword.name}\``;
      const help = header === undefined ? `start the file with \`${example}\`` : `move \`${example}\` to the top of the file`;
      this.reporter.report('WND1008', firstSection.keyword.span, message, { help });
    } else if (header === undefined) {
      this.reporter.report('WND1008', { start: 0, end: 0 }, 'missing model header', { help: 'start the file with `model NAME`, e.g. `model clicks`' });
    }
    for (const extra of headers.slice(1)) {
      this.reporter.report('WND1003', extra.span, 'the model is named twice', {
        help: 'remove this `model` line',
        related: [{ span: header!.span, message: 'the model is first named here' }],
      });
    }
  }

  section(children: SectionCstChildren): SectionNode | undefined {
    return this.sectionNode(children);
  }

  private sectionNode(children: SectionCstChildren): SectionNode | undefined {
    const node = children.inputSection?.[0] ?? children.featuresSection?.[0] ?? children.blockSection?.[0];
    const keyword = ident(node?.children.keyword?.[0]);
    if (node === undefined || keyword === undefined) return undefined;
    return { node, keyword, span: nodeSpan(node) ?? keyword.span } as SectionNode;
  }

  /** Builds a known section not seen before and stores it in `ast`; reports unknown and repeated ones. */
  private sectionBody(section: SectionNode, ast: ModelAst): AnySection | undefined {
    const name = section.keyword.name;
    if (!(SECTION_NAMES as readonly string[]).includes(name)) {
      const help = didYouMean(name, SECTION_NAMES) ?? `sections are ${SECTION_NAMES.map((s) => `\`${s}\``).join(', ')}`;
      this.reporter.report('WND1004', section.keyword.span, `unknown section \`${name}\``, { help });
      return undefined;
    }
    const first = ast[name as keyof ModelAst] as AnySection | undefined;
    if (first !== undefined) {
      this.reporter.report('WND1005', section.keyword.span, `duplicate section \`${name}\``, {
        help: `merge the two \`${name}\` sections`,
        related: [{ span: first.keyword.span, message: `the first \`${name}\` section is here` }],
      });
      return undefined;
    }
    if (section.node.name === 'inputSection') return (ast.input = this.inputSection(section.node.children, section));
    if (section.node.name === 'featuresSection') return (ast.features = this.featuresSection(section.node.children, section));
    const block = this.blockSection(section.node.children, section);
    ast[name as BlockName] = block;
    return block;
  }

  inputSection(children: InputSectionCstChildren, { keyword, span }: SectionHead): InputSection {
    const columns = (children.columnDecl ?? []).map((c) => this.columnDecl(c.children, nodeSpan(c))).filter(isDefined);
    return { keyword, columns, span };
  }

  featuresSection(children: FeaturesSectionCstChildren, { keyword, span }: SectionHead): FeaturesSection {
    const features = (children.featureDecl ?? []).map((f) => this.featureDecl(f.children, nodeSpan(f))).filter(isDefined);
    return { keyword, features, span };
  }

  blockSection(children: BlockSectionCstChildren, { keyword, span }: SectionHead): Block {
    this.block = (BLOCK_NAMES as readonly string[]).includes(keyword.name) ? (keyword.name as BlockName) : undefined;
    const props = (children.property ?? []).map((p) => this.property(p.children, nodeSpan(p))).filter(isDefined);
    this.block = undefined;
    return { keyword, props, span };
  }

  columnDecl(children: ColumnDeclCstChildren, span?: Span): ColumnDecl | undefined {
    const name = ident(children.Name?.[0]);
    const typeNode = children.typeRef?.[0];
    const type = typeNode === undefined ? undefined : this.typeRef(typeNode.children);
    if (name === undefined || type === undefined || span === undefined) return undefined;
    this.checkSeparator(children.Separator?.[0], Colon, `column name \`${name.name}\``, `columns are declared as \`${name.name}: ${type.text}\``);
    const column: ColumnDecl = { name, type, span };
    const defaultNode = children.value?.[0];
    const value = defaultNode === undefined ? undefined : this.value(defaultNode.children, LITERAL);
    if (value !== undefined) column.default = value;
    const role = ident(children.role?.[0]);
    if (role !== undefined) column.role = role;
    return column;
  }

  typeRef(children: TypeRefCstChildren): TypeRef | undefined {
    const parts = [children.Name?.[0], children.LAngle?.[0], children.itemType?.[0], children.RAngle?.[0]].map(real).filter(isDefined);
    const first = parts[0];
    const last = parts[parts.length - 1];
    if (first === undefined || last === undefined || real(children.Name?.[0]) === undefined) return undefined;
    return { text: parts.map((t) => t.image).join(''), span: { start: tokenSpan(first).start, end: tokenSpan(last).end } };
  }

  featureDecl(children: FeatureDeclCstChildren, span?: Span): FeatureDecl | undefined {
    const name = ident(children.Name?.[0]);
    const callNode = children.call?.[0];
    const value = callNode === undefined ? undefined : this.call(callNode.children, FEATURE_CALL, nodeSpan(callNode));
    if (name === undefined || value === undefined || span === undefined) return undefined;
    this.checkSeparator(children.Separator?.[0], Equals, `feature name \`${name.name}\``, `features are declared as \`${name.name} = ${value.callee.name}(...)\``);
    return { name, value, span };
  }

  property(children: PropertyCstChildren, span?: Span): Property | undefined {
    const key = ident(children.Name?.[0]);
    if (key === undefined || span === undefined) return undefined;
    const expected = this.block === undefined ? undefined : blockParam(this.block, key.name)?.type;
    const valueNode = children.value?.[0];
    const value = valueNode === undefined ? undefined : this.value(valueNode.children, expected);
    if (value === undefined) return undefined;
    this.checkSeparator(children.Separator?.[0], Colon, `property name \`${key.name}\``, `properties are written as \`${key.name}: value\``);
    return { key, value, span };
  }

  /** `=` where `:` belongs or the reverse: the grammar accepts either so that parsing stays in step. */
  private checkSeparator(separator: IToken | undefined, expected: TokenType, what: string, help: string): void {
    const written = real(separator);
    if (written === undefined || written.tokenType === expected) return;
    this.reporter.report('WND1003', tokenSpan(written), `expected ${tokenLabel(expected)} after ${what}, found ${describeFound(written)}`, { help });
  }

  value(children: ValueCstChildren, listOrItem?: ParamType): Value | undefined {
    // A single value where a list is expected stands for one item (the checker reports the shape).
    const expected = children.list === undefined && listOrItem?.kind === 'list' ? listOrItem.of : listOrItem;
    const token = real(
      children.NumberLiteral?.[0] ?? children.StringLiteral?.[0] ?? children.True?.[0] ?? children.False?.[0] ?? children.MetricRef?.[0] ?? children.Size?.[0] ?? children.Name?.[0],
    );
    if (token !== undefined) return this.tokenValue(token, children, expected);
    const listNode = children.list?.[0];
    if (listNode !== undefined) return this.list(listNode.children, expected, nodeSpan(listNode));
    const callNode = children.call?.[0];
    if (callNode !== undefined) return this.call(callNode.children, expected, nodeSpan(callNode));
    const mapNode = children.map?.[0];
    if (mapNode !== undefined) return this.map(mapNode.children, expected, nodeSpan(mapNode));
    return undefined;
  }

  /** A YAML-style `{kind: ftrl, learning_rate: 0.2}`: reported, and read as the call it stands for. */
  map(children: MapCstChildren, expected?: ParamType, span?: Span): CallValue | undefined {
    const open = real(children.LCurly?.[0]);
    if (open === undefined || span === undefined) return undefined;
    const entries = (children.arg ?? []).map((a) => this.arg(a.children));
    const kindEntry = entries.find((e) => e.name?.name === 'kind');
    const kind = kindEntry?.valueNode === undefined ? undefined : this.value(kindEntry.valueNode.children);
    const help =
      kind?.type === 'text'
        ? `\`{kind: ${kind.value}, ...}\` is YAML; in \`.wnd\` write \`${kind.value}(...)\``
        : '`{...}` is YAML; in `.wnd` write a value, a list `[...]` or a call `name(...)`';
    this.reporter.report('WND1003', tokenSpan(open), 'expected a value, found `{`', { help });
    if (kind?.type !== 'text') return undefined;
    const callee = { name: kind.value, span: kind.span };
    const family = callFamily(expected, callee.name);
    const named: Arg[] = [];
    for (const { name, valueNode } of entries) {
      if (name === undefined || name.name === 'kind' || valueNode === undefined) continue;
      const value = this.value(valueNode.children, argType(family, callee.name, name.name));
      if (value !== undefined) named.push({ name, value });
    }
    return { type: 'call', callee, args: named, span };
  }

  private tokenValue(token: IToken, children: ValueCstChildren, expected: ParamType | undefined): Value {
    const span = tokenSpan(token);
    if (children.NumberLiteral !== undefined) return { type: 'number', value: Number(token.image), span };
    if (children.True !== undefined || children.False !== undefined) return { type: 'bool', value: children.True !== undefined, span };
    if (children.StringLiteral !== undefined) return { type: 'text', value: this.stringValue(token), span };
    // A bare name where a call is expected is that call without arguments: `init: zeros`.
    if (children.Name !== undefined && expected?.kind === 'call') return { type: 'call', callee: { name: token.image, span }, args: [], span };
    return { type: 'text', value: token.image, span };
  }

  private stringValue(token: IToken): string {
    const { value, badEscapes } = decodeString(token);
    // An unterminated string is already reported by the lexer; its odd ending is not news.
    if (token.tokenType === ClosedString) {
      for (const span of badEscapes) {
        const text = this.input.source.slice(span.start, span.end);
        this.reporter.report('WND1003', span, `invalid escape \`${text}\` in string`, {
          help: 'escapes are `\\"`, `\\\\`, `\\/`, `\\b`, `\\f`, `\\n`, `\\r`, `\\t` and `\\uXXXX`',
        });
      }
    }
    return value;
  }

  list(children: ListCstChildren, expected?: ParamType, span?: Span): Value | undefined {
    if (span === undefined) return undefined;
    this.checkCommas(children.value ?? [], children.Comma ?? [], '`,` or `]` after a list item');
    const items = (children.value ?? []).map((v) => this.value(v.children, itemType(expected))).filter(isDefined);
    return { type: 'list', items, span };
  }

  call(children: CallCstChildren, expected?: ParamType, span?: Span): CallValue | undefined {
    const callee = ident(children.Name?.[0]);
    if (callee === undefined || span === undefined) return undefined;
    const family = callFamily(expected, callee.name);
    this.checkCommas(children.arg ?? [], children.Comma ?? [], '`,` or `)` after an argument');
    const positional: PositionalArg[] = [];
    const named: Arg[] = [];
    for (const argNode of children.arg ?? []) {
      const { name, valueNode } = this.arg(argNode.children);
      if (valueNode === undefined) continue;
      if (name !== undefined) {
        const value = this.value(valueNode.children, argType(family, callee.name, name.name));
        if (value !== undefined) named.push({ name, value });
      } else {
        const value = this.value(valueNode.children, positionalType(family, callee.name, positional.length));
        if (value !== undefined) positional.push({ value, span: value.span });
      }
    }
    const { args, problem } = namePositional(family, callee, positional, named);
    if (problem !== undefined) {
      const takes = problem.max === 0 ? 'takes no positional arguments' : `takes ${problem.max} positional argument${problem.max === 1 ? '' : 's'}`;
      const given = `${positional.length} ${positional.length === 1 ? 'was' : 'were'} given`;
      this.reporter.report('WND1007', problem.span, `\`${problem.callee}\` ${takes} but ${given}`, { help: namedArgumentHelp(family, problem.callee) });
    }
    return { type: 'call', callee, args, span };
  }

  arg(children: ArgCstChildren): { name?: Ident; valueNode?: ValueCstNode } {
    const name = ident(children.argName?.[0]);
    const valueNode = children.value?.[0];
    // A made-up argument name (error recovery) leaves the argument out rather than guessing.
    if (name === undefined && children.argName !== undefined) return {};
    return { ...(name !== undefined ? { name } : {}), ...(valueNode !== undefined ? { valueNode } : {}) };
  }

  /** Items must be separated by commas; the grammar lets a missing one pass so that parsing goes on. */
  private checkCommas(items: readonly CstNode[], commas: readonly IToken[], expected: string): void {
    const spans = items.map(nodeSpan).filter(isDefined);
    for (let i = 1; i < spans.length; i++) {
      const gap = { start: spans[i - 1]!.end, end: spans[i]!.start };
      if (commas.some((c) => !isVirtual(c) && c.startOffset >= gap.start && c.startOffset < gap.end)) continue;
      const next = this.tokenAfter(gap.end);
      if (next === undefined) continue;
      this.reporter.report('WND1003', tokenSpan(next), `expected ${expected}, found ${describeFound(next)}`);
    }
  }

  private tokenAfter(offset: number): IToken | undefined {
    return this.input.tokens.find((t) => t.startOffset >= offset && !isVirtual(t));
  }

  private endSpan(): Span {
    return { start: this.input.source.length, end: this.input.source.length };
  }
}

interface SectionNodeBase<N> {
  node: N;
  keyword: Ident;
  span: Span;
}

type SectionNode =
  | SectionNodeBase<CstNode & { name: 'inputSection'; children: InputSectionCstChildren }>
  | SectionNodeBase<CstNode & { name: 'featuresSection'; children: FeaturesSectionCstChildren }>
  | SectionNodeBase<CstNode & { name: 'blockSection'; children: BlockSectionCstChildren }>;

/** The expected type of the `index`-th positional argument of `callee`, from its positional parameters. */
function positionalType(family: FamilyName | undefined, callee: string, index: number): ParamType | undefined {
  const callable = family === undefined ? undefined : callableOf(family, callee);
  if (callable === undefined) return undefined;
  let i = 0;
  for (const param of callable.params) {
    if (param.positional === 'rest') return itemType(param.type);
    if (param.positional === 'one' && i++ === index) return param.type;
  }
  return undefined;
}

function namedArgumentHelp(family: FamilyName | undefined, callee: string): string {
  const callable = family === undefined ? undefined : callableOf(family, callee);
  const namedParam = callable?.params.find((p) => p.positional === undefined);
  return namedParam === undefined ? 'remove the extra arguments' : `pass the other arguments by name, e.g. \`${namedParam.name}: ...\``;
}

function real(token: IToken | undefined): IToken | undefined {
  return token === undefined || isVirtual(token) ? undefined : token;
}

function ident(token: IToken | undefined): Ident | undefined {
  const t = real(token);
  return t === undefined ? undefined : { name: t.image, span: tokenSpan(t) };
}

/** The span of the source tokens under `node` (chevrotain tracks offsets; made-up tokens have none). */
function nodeSpan(node: CstNode): Span | undefined {
  const loc = node.location;
  if (loc === undefined || !Number.isFinite(loc.startOffset) || loc.endOffset === undefined || !Number.isFinite(loc.endOffset)) return undefined;
  return { start: loc.startOffset, end: loc.endOffset + 1 };
}

function isDefined<T>(x: T | undefined): x is T {
  return x !== undefined;
}

type Entry = ColumnDecl | FeatureDecl | Property;

function entriesOf(section: AnySection): Entry[] {
  if ('columns' in section) return section.columns;
  if ('features' in section) return section.features;
  return section.props;
}

/** A node comments can attach to, with the lines it covers. */
interface Anchor {
  span: Span;
  trivia: Trivia;
  depth: number;
  children: Anchor[];
  firstLine: number;
  lastLine: number;
}

/**
 * Attaches every comment to a node by offsets, so that `fmt` and `convert` never lose one. The
 * rules are those of the YAML front end (dsl/yaml/comments.ts), so both forms place a comment alike:
 * - after code on its line: the trailing comment of the declaration, property, section or model
 *   header that ends on that line (the one ending last, the innermost on a tie), else of the one
 *   that starts on that line (`input {  # raw columns`);
 * - on its own line: a leading comment of the next declaration or property of its section, else of
 *   the next section (of the model before `model`); after the last section, one of the model's
 *   `trailingComments`. So a comment just before a section's `}` leads the next section;
 * - inside an empty section, or inside a declaration spanning lines (a long list): the trailing
 *   comment of that section or declaration.
 * A trailing comment whose place is taken becomes a leading comment instead: it moves, but stays.
 */
function attachComments(ast: ModelAst, headerSpan: Span | undefined, sections: AnySection[], input: BuildInput): void {
  if (input.comments.length === 0) return;
  const lines = new LineIndex(input.source);
  const anchor = (span: Span, trivia: Trivia, depth: number, children: Anchor[] = []): Anchor => ({
    span,
    trivia,
    depth,
    children,
    firstLine: lines.position(span.start).line,
    lastLine: lines.position(Math.max(span.start, span.end - 1)).line,
  });
  const top: Anchor[] = [];
  if (headerSpan !== undefined) top.push(anchor(headerSpan, ast, 0));
  for (const section of sections) top.push(anchor(section.span, section, 0, entriesOf(section).map((e) => anchor(e.span, e, 1))));
  top.sort((a, b) => a.span.start - b.span.start);
  const all = top.flatMap((a) => [a, ...a.children]);

  const innermostContaining = (offset: number): Anchor | undefined => {
    let best: Anchor | undefined;
    for (const a of all) if (a.span.start < offset && offset < a.span.end && (best === undefined || a.depth > best.depth)) best = a;
    return best;
  };
  const ownLine = (offset: number, text: string): void => {
    const container = innermostContaining(offset);
    const next = (container?.children ?? top).find((a) => a.span.start > offset);
    if (next !== undefined) addLeading(next.trivia, text);
    else if (container !== undefined && container.children.length === 0) addTrailing(container.trivia, text);
    else {
      // After the last entry of a section (or of the file): the next section, else the end of the model.
      const after = top.find((a) => a.span.start > offset);
      if (after !== undefined) addLeading(after.trivia, text);
      else (ast.trailingComments ??= []).push(text);
    }
  };

  for (const comment of input.comments) {
    const offset = comment.startOffset;
    const text = commentText(comment.image);
    const { line, column } = lines.position(offset);
    if (input.source.slice(offset - column + 1, offset).trim() === '') {
      ownLine(offset, text);
      continue;
    }
    let target: Anchor | undefined;
    for (const a of all) {
      if (a.lastLine !== line || a.span.end > offset) continue;
      if (target === undefined || a.span.end > target.span.end || (a.span.end === target.span.end && a.depth > target.depth)) target = a;
    }
    if (target === undefined) {
      for (const a of all) if (a.firstLine === line && a.span.start < offset && (target === undefined || a.depth > target.depth)) target = a;
    }
    target ??= innermostContaining(offset);
    if (target !== undefined) addTrailing(target.trivia, text);
    else ownLine(offset, text);
  }
}

function addLeading(trivia: Trivia, text: string): void {
  (trivia.leadingComments ??= []).push(text);
}

function addTrailing(trivia: Trivia, text: string): void {
  if (trivia.trailingComment === undefined) trivia.trailingComment = text;
  else addLeading(trivia, text);
}

/** `#  note ` -> ` note`: the marker, one space after it and trailing blanks go. */
function commentText(image: string): string {
  return image.slice(1).replace(/^ /, '').trimEnd();
}
