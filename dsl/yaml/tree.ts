// Reads YAML text into a small located tree (YNode) that the rest of the YAML front end works on,
// so that the quirks of the `yaml` library stay in this file: syntax errors, several documents,
// aliases (resolved, shared, bounded), keys that are not strings, duplicate keys, nulls without
// text, and block collections whose ranges run past their last value.

import { Composer, isAlias, isMap, isPair, isScalar, isSeq, Parser, visit, type Alias, type CST, type Document, type Node as YamlNode } from 'yaml';
import type { Span } from '../ast.js';
import type { Reporter } from '../../compiler/diagnostics.js';

export type YNode = YScalar | YSeq | YMap;

export interface YScalar {
  kind: 'scalar';
  value: string | number | boolean | null;
  /** For a null written as nothing (`key:`), the key's span. */
  span: Span;
}

export interface YSeq {
  kind: 'seq';
  items: YNode[];
  span: Span;
}

export interface YMap {
  kind: 'map';
  entries: YEntry[];
  span: Span;
}

export interface YEntry {
  key: string;
  keySpan: Span;
  value: YNode;
  /** True when an earlier entry of the same mapping has the same key (reported as WND2005). */
  duplicate: boolean;
}

/** Nesting deeper than this is no model file; it is cut off with a diagnostic instead of overflowing the stack. */
const MAX_DEPTH = 64;
/** Values aliases may add to a document when written out (a "billion laughs" file stops here). */
export const MAX_EXPANDED_VALUES = 100_000;

export interface ReadResult {
  /** The first document's contents; undefined for a stream without documents. */
  root?: YNode;
  /** The library's concrete syntax tree, where the comments are (see comments.ts). */
  tokens: CST.Token[];
  /** True when the text could not be read as one well-formed value (a diagnostic says why); its shape is not checked. */
  malformed: boolean;
}

/** `Implicit keys need to be on a single line` -> `implicit keys need to be on a single line`. */
function yamlMessage(message: string): string {
  const first = (message.split('\n')[0] ?? '').trim().replace(/\.$/, '').replace(/:$/, '');
  return first.length === 0 ? 'invalid YAML' : first[0]!.toLowerCase() + first.slice(1);
}

function clampSpan(start: number, end: number, length: number): Span {
  const s = Math.max(0, Math.min(start, length));
  return { start: s, end: Math.max(s, Math.min(end, length)) };
}

/** Parses `source`; reports syntax errors (WND2001) and structural problems found while reading (WND2004, WND2005). */
export function readYaml(source: string, reporter: Reporter): ReadResult {
  let tokens: CST.Token[] = [];
  let docs: Document.Parsed[];
  let reader: TreeReader | undefined;
  try {
    // What parseAllDocuments does, keeping the tokens so that comments need no second parse.
    tokens = [...new Parser().parse(source)];
    docs = [...new Composer({ uniqueKeys: false, intAsBigInt: true }).compose(tokens)];
    if (docs[0] !== undefined) reader = new TreeReader(docs[0], source, reporter);
  } catch (e) {
    // The library gave up (e.g. nesting beyond its stack): a syntax error at the start, never a crash.
    reporter.report('WND2001', { start: 0, end: 0 }, `the YAML could not be read: ${yamlMessage(e instanceof Error ? e.message : String(e))}`);
    return { tokens, malformed: true };
  }
  const doc = docs[0];
  if (doc === undefined || reader === undefined) return { tokens, malformed: false };

  let malformed = false;
  for (const d of docs) {
    for (const problem of [...d.errors, ...d.warnings]) {
      malformed = true;
      reporter.report('WND2001', clampSpan(problem.pos[0], problem.pos[1], source.length), yamlMessage(problem.message));
    }
  }
  const second = docs[1];
  if (second !== undefined) {
    const start = second.range[0];
    const marker = source.startsWith('---', start) ? 3 : Math.max(0, second.range[1] - start);
    reporter.report('WND2004', clampSpan(start, start + marker, source.length), `expected one YAML document, found ${docs.length}`, {
      help: 'a model file holds one model; remove the `---` and what follows, or move it to its own file',
    });
  }

  const root = reader.read(doc.contents, undefined, 0);
  if (reader.expandedSize(root) - reader.distinctValues > MAX_EXPANDED_VALUES) {
    reporter.report('WND2004', root.span, `aliases expand the document by more than ${MAX_EXPANDED_VALUES} values`, {
      help: 'write the repeated values out instead of aliasing aliases',
    });
    return { tokens, malformed: true };
  }
  return { root, tokens, malformed };
}

class TreeReader {
  /** One YNode per YAML node, so an alias shares its anchor's tree instead of copying it. */
  private readonly done = new Map<YamlNode, YNode>();
  private readonly inProgress = new Set<YamlNode>();
  private readonly aliasTargets = new Map<Alias, YamlNode>();
  private readonly sizes = new Map<YNode, number>();
  private tooDeep = false;
  /** Values read, each once however often it is aliased. */
  distinctValues = 0;

  constructor(
    doc: Document.Parsed,
    private readonly source: string,
    private readonly reporter: Reporter,
  ) {
    // An alias names the last node with its anchor before it, in document order.
    const latest = new Map<string, YamlNode>();
    visit(doc, {
      Node: (_key, node) => {
        if (isAlias(node)) {
          const target = latest.get(node.source);
          if (target !== undefined) this.aliasTargets.set(node, target);
        } else if (node.anchor !== undefined) {
          latest.set(node.anchor, node);
        }
      },
    });
  }

  private span(range: readonly number[] | null | undefined): Span {
    if (!range) return { start: 0, end: 0 };
    return clampSpan(range[0] ?? 0, range[1] ?? range[0] ?? 0, this.source.length);
  }

  /** `keySpan`: where a null without text points (the key it belongs to). */
  read(node: unknown, keySpan: Span | undefined, depth: number): YNode {
    if (node === null || node === undefined) return { kind: 'scalar', value: null, span: keySpan ?? { start: 0, end: 0 } };
    if (isAlias(node)) {
      const target = this.aliasTargets.get(node);
      if (target === undefined) {
        // The library reports an alias without anchor; this is a fallback that keeps spans sane.
        return { kind: 'scalar', value: null, span: this.span(node.range) };
      }
      if (this.inProgress.has(target)) {
        this.reporter.report('WND2004', this.span(node.range), `alias \`*${node.source}\` refers to a value that contains it`);
        return { kind: 'scalar', value: null, span: this.span(node.range) };
      }
      return this.read(target, keySpan, depth);
    }
    const known = this.done.get(node as YamlNode);
    if (known !== undefined) return known;
    if (depth > MAX_DEPTH && (isMap(node) || isSeq(node))) {
      const span = this.span(node.range);
      if (!this.tooDeep) this.reporter.report('WND2004', { start: span.start, end: Math.min(span.start + 1, span.end) }, `values nested deeper than ${MAX_DEPTH} levels`);
      this.tooDeep = true;
      return { kind: 'scalar', value: null, span };
    }
    this.inProgress.add(node as YamlNode);
    const result = this.readNode(node, keySpan, depth);
    this.inProgress.delete(node as YamlNode);
    if (!(result.kind === 'scalar' && result.value === null)) this.done.set(node as YamlNode, result);
    return result;
  }

  private readNode(node: unknown, keySpan: Span | undefined, depth: number): YNode {
    this.distinctValues++;
    if (isScalar(node)) {
      const v = node.value;
      const span = this.span(node.range);
      if (v === null || v === undefined) return { kind: 'scalar', value: null, span: span.end > span.start || keySpan === undefined ? span : keySpan };
      if (typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean') return { kind: 'scalar', value: v, span };
      if (typeof v === 'bigint') {
        // Integers are read exactly, so one beyond 2^53 is reported rather than silently rounded (as `.wnd` does).
        // BigInt has no negative zero; the source text keeps it.
        const n = v === 0n && this.source.slice(span.start, span.end).trimStart().startsWith('-') ? -0 : Number(v);
        if (!Number.isSafeInteger(n)) {
          this.reporter.report('WND1006', span, `the integer ${v} is too large to be represented exactly`, { help: `integers must lie within ±${Number.MAX_SAFE_INTEGER}` });
        }
        return { kind: 'scalar', value: n, span };
      }
      return { kind: 'scalar', value: this.source.slice(span.start, span.end), span };
    }
    if (isSeq(node)) {
      const items = node.items.map((item) => this.read(item, undefined, depth + 1));
      return { kind: 'seq', items, span: this.collectionSpan(node.range, node.flow === true, items.map((i) => i.span)) };
    }
    if (isMap(node)) {
      const entries: YEntry[] = [];
      const seen = new Map<string, YEntry>();
      const ends: Span[] = [];
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        const keyNode: unknown = pair.key;
        const keyRange = keyNode !== null && typeof keyNode === 'object' && 'range' in keyNode ? this.span((keyNode as { range?: number[] }).range) : undefined;
        // Keys are read without descending: a key that is a collection is only described.
        const keyTarget = isAlias(keyNode) ? this.aliasTargets.get(keyNode) : keyNode;
        const key = isScalar(keyTarget) ? this.readNode(keyTarget, undefined, depth) : undefined;
        const valueKeySpan = keyRange ?? { start: 0, end: 0 };
        const value = this.read(pair.value, valueKeySpan, depth + 1);
        ends.push(keyRange ?? value.span, value.span);
        if (key?.kind !== 'scalar' || typeof key.value !== 'string') {
          const where = keyRange ?? value.span;
          const found = key !== undefined ? describeNode(key) : keyTarget === null || keyTarget === undefined ? 'nothing' : isSeq(keyTarget) ? 'a list' : 'a mapping';
          this.reporter.report('WND2004', where, `expected a name as key, found ${found}`, { help: 'keys are names such as `model`, `user_id` or `buckets`' });
          continue;
        }
        const entry: YEntry = { key: key.value, keySpan: keyRange ?? key.span, value, duplicate: false };
        const first = seen.get(entry.key);
        if (first !== undefined) {
          entry.duplicate = true;
          this.reporter.report('WND2005', entry.keySpan, `duplicate key \`${entry.key}\``, {
            help: 'remove one of them',
            related: [{ span: first.keySpan, message: `\`${entry.key}\` is first given here` }],
          });
        } else {
          seen.set(entry.key, entry);
        }
        entries.push(entry);
      }
      return { kind: 'map', entries, span: this.collectionSpan(node.range, node.flow === true, ends) };
    }
    // A node kind the library may add later: keep its text as a string.
    const range = node !== null && typeof node === 'object' && 'range' in node ? (node as { range?: number[] }).range : undefined;
    const span = this.span(range);
    return { kind: 'scalar', value: this.source.slice(span.start, span.end), span };
  }

  /** A block collection's range runs to the next line; its span ends where its last value does. */
  private collectionSpan(range: readonly number[] | null | undefined, flow: boolean, children: Span[]): Span {
    const whole = this.span(range);
    if (flow || children.length === 0) return whole;
    const end = children.reduce((max, c) => Math.max(max, c.end), whole.start);
    return { start: whole.start, end: Math.max(whole.start, Math.min(end, whole.end)) };
  }

  /** How many values the tree stands for with every alias written out (memoised, so linear in the DAG; a double, so no overflow). */
  expandedSize(node: YNode): number {
    const known = this.sizes.get(node);
    if (known !== undefined) return known;
    let size = 1;
    if (node.kind === 'seq') for (const item of node.items) size += this.expandedSize(item);
    if (node.kind === 'map') for (const e of node.entries) size += this.expandedSize(e.value);
    this.sizes.set(node, size);
    return size;
  }
}

/** `a number`, `a string`, `nothing`, `` `true` ``: what a YAML value is, for messages. */
export function describeScalar(node: YScalar): string {
  if (node.value === null) return 'nothing';
  if (typeof node.value === 'boolean') return `\`${node.value}\``;
  if (typeof node.value !== 'number') return 'a string';
  if (Number.isNaN(node.value)) return '`.nan`';
  return Number.isFinite(node.value) ? 'a number' : 'an infinite number';
}

export function describeNode(node: YNode): string {
  if (node.kind === 'seq') return 'a list';
  if (node.kind === 'map') return 'a mapping';
  return describeScalar(node);
}
