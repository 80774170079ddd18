// Emits the TypeScript module of a model: the IR as a typed constant, the RawRow and NumericStats
// interfaces, and encodeRow as straight-line code, one commented block per encoded feature writing
// to the constant offsets of ir.layout. ts-morph builds and formats the file in memory.
//
// Spec names never become identifiers: constants are numbered after the feature or column index
// (BUCKETS_3), property keys and names are JSON string literals, and names in comments are quoted
// and escaped so that they can end neither the comment nor the line.
//
// The IR is trusted to be checked; an inconsistent IR is a wndc bug and throws.

import { IndentationText, NewLineKind, Project, QuoteKind, ts, VariableDeclarationKind, type FormatCodeSettings } from 'ts-morph';
import { statsNeeded } from '../runtime/compiled-model.js';
import type { ColumnIR, EncodedLayoutIR, FeatureIR, Literal, ModelIR } from './ir.js';

export function emitModule(ir: ModelIR): string {
  const encoder = new EncoderWriter(ir);
  const body = encoder.encodeRowBody();
  return printModule(ir, encoder, body);
}

// ---------------------------------------------------------------------------------------------
// Safe text: literals and comments built from spec names.

/** A string literal valid anywhere in TypeScript: JSON, with the two JSON-legal line separators escaped. */
function str(text: string): string {
  return JSON.stringify(text).replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

/** Single-line text for a comment that can end neither a line comment nor a block comment. */
function inComment(text: string): string {
  return text.replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029').replace(/\*\//g, '*\\/');
}

/** A spec name for a comment: quoted and escaped (JSON escapes newlines). */
function quoted(name: string): string {
  return inComment(JSON.stringify(name));
}

function num(n: number): string {
  if (!Number.isFinite(n)) throw new Error(`internal: IR number ${n} is not finite`);
  return JSON.stringify(n);
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** Object key: bare when it is an identifier, quoted otherwise; `__proto__` computed so it stays a property. */
function key(name: string): string {
  if (name === '__proto__') return `[${str(name)}]`;
  return IDENTIFIER.test(name) ? name : str(name);
}

/** A JSON value on one line: `{ name: "user", list: false }`, `[1, 10, 100]`. */
function oneLine(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(oneLine).join(', ')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
    return entries.length === 0 ? '{}' : `{ ${entries.map(([k, v]) => `${key(k)}: ${oneLine(v)}`).join(', ')} }`;
  }
  if (value === null) return 'null';
  if (typeof value === 'string') return str(value);
  if (typeof value === 'number') return num(value);
  if (typeof value === 'boolean') return String(value);
  throw new Error(`internal: IR holds a ${typeof value}, which is not JSON`);
}

const LINE_WIDTH = 100;

/**
 * A JSON value as a TypeScript expression, laid out as a formatter would: on one line when it
 * fits in LINE_WIDTH after `indent` and `prefix` (the text before it on its line), else one
 * item or property per line.
 */
function literal(value: unknown, indent = '', prefix = ''): string {
  const flat = oneLine(value);
  if (value === null || typeof value !== 'object' || indent.length + prefix.length + flat.length + 1 <= LINE_WIDTH) return flat;
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    return `[\n${value.map((item) => `${inner}${literal(item, inner)},`).join('\n')}\n${indent}]`;
  }
  const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
  return `{\n${entries.map(([k, v]) => `${inner}${key(k)}: ${literal(v, inner, `${key(k)}: `)},`).join('\n')}\n${indent}}`;
}

/** Columns whose name a plain object inherits (`constructor`, `toString`, `__proto__`...). */
function inheritedByObjects(name: string): boolean {
  return name in Object.prototype;
}

// ---------------------------------------------------------------------------------------------
// Columns.

function baseType(column: ColumnIR): 'number' | 'string' {
  return column.type === 'string' ? 'string' : 'number';
}

function columnType(column: ColumnIR): string {
  return column.list ? `readonly ${baseType(column)}[]` : baseType(column);
}

function columnTypeName(column: ColumnIR): string {
  return column.list ? `list<${column.type}>` : column.type;
}

function checkScalar(column: ColumnIR, value: Literal): void {
  if (typeof value !== baseType(column)) {
    throw new Error(`internal: default ${JSON.stringify(value)} of column ${JSON.stringify(column.name)} is not a ${columnTypeName(column)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Where a categorical feature's ids live while a row is encoded.

interface IdsHome {
  /** The Int32Array expression: `out.ids` or a module-level temporary. */
  ids: string;
  offset: number;
  /** 1 for single-valued features, max_len for bags. */
  width: number;
  /** The Int32Array holding the bag length, null for single-valued features. */
  lengths: string | null;
  lengthSlot: number;
  /** Offset into out.weights, for weighted features in the layout. */
  weightOffset: number | null;
  /** For comments: `ids[3]`, `ids[4..8), lengths[0]`. */
  label: string;
}

type IdsSlot = EncodedLayoutIR['ids'][number];

interface Constant {
  name: string;
  doc: string;
  type?: string;
  initializer: string;
}

/** One `{ ... }` block of encodeRow, declaring `fc` (the feature's counters) only when it is used. */
class Block {
  readonly lines: string[] = [];
  /** False for a block of plain assignments, which needs no scope of its own. */
  scoped = true;
  private countersUsed = false;

  constructor(
    readonly comment: string,
    private readonly featureIndex: number | null,
  ) {}

  get counters(): string {
    if (this.featureIndex === null) throw new Error('internal: role blocks have no feature counters');
    this.countersUsed = true;
    return 'fc';
  }

  render(): string[] {
    if (!this.scoped) return [`// ${this.comment}`, ...this.lines];
    const head = this.countersUsed ? [`const fc = counters.features[${this.featureIndex}]!;`] : [];
    return [`// ${this.comment}`, '{', ...[...head, ...this.lines].map((l) => `  ${l}`), '}'];
  }
}

// ---------------------------------------------------------------------------------------------
// encodeRow, feature by feature.

class EncoderWriter {
  readonly runtimeImports = new Set<string>(['defineModel']);
  readonly constants: Constant[] = [];
  private readonly blocks: Block[] = [];
  private readonly featureIndex = new Map<string, number>();
  private readonly columnIndex = new Map<string, number>();
  private readonly layoutSlots = new Map<string, IdsSlot>();
  private readonly homes = new Map<string, IdsHome>();
  private readonly inProgress = new Set<string>();
  private readonly listDefaults = new Map<number, string>();
  statsUsed = false;

  constructor(private readonly ir: ModelIR) {
    ir.features.forEach((f, i) => {
      if (this.featureIndex.has(f.name)) throw new Error(`internal: IR feature ${JSON.stringify(f.name)} is defined twice`);
      this.featureIndex.set(f.name, i);
    });
    ir.columns.forEach((c, i) => {
      if (this.columnIndex.has(c.name)) throw new Error(`internal: IR column ${JSON.stringify(c.name)} is defined twice`);
      this.columnIndex.set(c.name, i);
    });
    for (const slot of ir.layout.ids) {
      if (this.layoutSlots.has(slot.feature)) throw new Error(`internal: IR layout lists ${JSON.stringify(slot.feature)} twice`);
      this.layoutSlots.set(slot.feature, slot);
    }
  }

  private use(runtimeName: string): string {
    this.runtimeImports.add(runtimeName);
    return runtimeName;
  }

  private constant(constant: Constant): string {
    this.constants.push(constant);
    return constant.name;
  }

  encodeRowBody(): string[] {
    const lines = ['counters.rows++;', ''];
    this.roles();
    for (const slot of this.ir.layout.ids) this.ensureIds(slot.feature);
    for (const slot of this.ir.layout.numeric) this.numeric(slot.feature, slot.offset);
    for (const block of this.blocks) lines.push(...block.render(), '');
    lines.pop();
    return lines;
  }

  // --- lookups ---------------------------------------------------------------------------------

  private feature(name: string): { feature: FeatureIR; index: number } {
    const index = this.featureIndex.get(name);
    if (index === undefined) throw new Error(`internal: IR refers to unknown feature ${JSON.stringify(name)}`);
    return { feature: this.ir.features[index]!, index };
  }

  private column(name: string): { column: ColumnIR; index: number } {
    const index = this.columnIndex.get(name);
    if (index === undefined) throw new Error(`internal: IR refers to unknown column ${JSON.stringify(name)}`);
    return { column: this.ir.columns[index]!, index };
  }

  private categorical(feature: FeatureIR): Extract<FeatureIR['output'], { type: 'categorical' }> {
    if (feature.output.type !== 'categorical') throw new Error(`internal: IR feature ${JSON.stringify(feature.name)} is used for ids but is dense`);
    return feature.output;
  }

  // --- reading columns -------------------------------------------------------------------------

  /**
   * Declares `local` with the row's value of `columnName`, replaced by the column default (and
   * counted by `onMissing`) when the field is absent or null; columns without a default throw.
   */
  private readColumn(block: Block, columnName: string, local: string, onMissing: () => string): ColumnIR {
    const { column, index } = this.column(columnName);
    const k = str(column.name);
    const access = inheritedByObjects(column.name) ? `Object.hasOwn(row, ${k}) ? row[${k}] : undefined` : `row[${k}]`;
    if (column.default === null) {
      block.lines.push(`const ${local} = ${access};`, `if (${local} == null) throw new ${this.use('MissingColumnError')}(${k});`);
    } else {
      block.lines.push(`let ${local} = ${access};`, `if (${local} == null) {`, `  ${local} = ${this.defaultOf(column, index)};`, `  ${onMissing()};`, '}');
    }
    return column;
  }

  private readFeatureColumn(block: Block, columnName: string, local: string): ColumnIR {
    return this.readColumn(block, columnName, local, () => `${block.counters}.missing++`);
  }

  private defaultOf(column: ColumnIR, index: number): string {
    const value = column.default;
    if (value === null) throw new Error('internal: no default');
    if (!column.list) {
      if (Array.isArray(value)) throw new Error(`internal: default of column ${JSON.stringify(column.name)} is a list`);
      checkScalar(column, value);
      return literal(value);
    }
    if (!Array.isArray(value)) throw new Error(`internal: default of list column ${JSON.stringify(column.name)} is not a list`);
    value.forEach((item) => checkScalar(column, item));
    const existing = this.listDefaults.get(index);
    if (existing !== undefined) return existing;
    const name = this.constant({ name: `COLUMN_DEFAULT_${index}`, doc: `Default of column ${quoted(column.name)}.`, type: columnType(column), initializer: literal(value) });
    this.listDefaults.set(index, name);
    return name;
  }

  private requireType(feature: FeatureIR, column: ColumnIR, list: boolean, types: readonly ColumnIR['type'][]): void {
    if (column.list !== list || !types.includes(column.type)) {
      throw new Error(`internal: IR feature ${JSON.stringify(feature.name)} (${feature.kind}) cannot read column ${JSON.stringify(column.name)} of type ${columnTypeName(column)}`);
    }
  }

  // --- roles -----------------------------------------------------------------------------------

  private roles(): void {
    const { label, group, weight } = this.ir.roles;
    this.role('label', label, 'out.label', ['int', 'float']);
    if (group === null) this.fixedRole('out.group = 0;', 'group: none, every example in group 0');
    else this.role('group', group, 'out.group', ['int', 'float', 'string']);
    if (weight === null) this.fixedRole('out.weight = 1;', 'weight: none, every example weighs 1');
    else this.role('weight', weight, 'out.weight', ['int', 'float']);
  }

  private fixedRole(line: string, comment: string): void {
    const block = new Block(comment, null);
    block.scoped = false;
    block.lines.push(line);
    this.blocks.push(block);
  }

  private role(role: string, columnName: string, target: string, types: readonly ColumnIR['type'][]): void {
    const block = new Block(`${role}: column ${quoted(columnName)}`, null);
    const column = this.readColumn(block, columnName, 'v', () => 'counters.roleDefaults++');
    if (column.list || !types.includes(column.type)) throw new Error(`internal: ${role} column ${JSON.stringify(columnName)} has type ${columnTypeName(column)}`);
    // A text group (a request id as a string) becomes a number through the value hash.
    block.lines.push(column.type === 'string' ? `${target} = ${this.use('textGroupId')}(v);` : `${target} = v;`);
    this.blocks.push(block);
  }

  // --- categorical features --------------------------------------------------------------------

  /** Encodes `name` (and, first, what it reads) unless this row already has its ids; returns where they are. */
  private ensureIds(name: string): IdsHome {
    const done = this.homes.get(name);
    if (done !== undefined) return done;
    if (this.inProgress.has(name)) throw new Error(`internal: IR feature ${JSON.stringify(name)} depends on itself`);
    this.inProgress.add(name);
    const { feature, index } = this.feature(name);
    const output = this.categorical(feature);
    const slot = this.layoutSlots.get(name);
    const home = slot === undefined ? this.temporaryHome(feature, index) : layoutHome(feature, slot);
    if (home.width !== output.maxLen || (home.lengths !== null) !== output.multivalent) {
      throw new Error(`internal: IR layout of ${JSON.stringify(name)} does not match its output (max_len ${output.maxLen}, multivalent ${output.multivalent})`);
    }
    if ((home.weightOffset !== null) !== (feature.kind === 'weighted') && slot !== undefined) {
      throw new Error(`internal: IR layout gives ${JSON.stringify(name)} weights but it is not a weighted feature, or the reverse`);
    }
    const block = this.idsBlock(feature, index, home, slot === undefined);
    this.blocks.push(block);
    this.inProgress.delete(name);
    this.homes.set(name, home);
    return home;
  }

  private temporaryHome(feature: FeatureIR, index: number): IdsHome {
    const output = this.categorical(feature);
    const ids = this.constant({
      name: `TEMP_IDS_${index}`,
      doc: `Ids of ${quoted(feature.name)}, which the layout does not store.`,
      initializer: `new Int32Array(${output.maxLen})`,
    });
    const lengths = output.multivalent
      ? this.constant({ name: `TEMP_LENGTH_${index}`, doc: `Bag length of ${quoted(feature.name)}.`, initializer: 'new Int32Array(1)' })
      : null;
    return { ids, offset: 0, width: output.maxLen, lengths, lengthSlot: 0, weightOffset: null, label: 'temporary (not in the layout)' };
  }

  private idsBlock(feature: FeatureIR, index: number, home: IdsHome, temporary: boolean): Block {
    const block = new Block(`${home.label}: ${quoted(feature.name)} = ${describe(feature)}`, index);
    const setId = (expression: string): void => {
      block.lines.push(`${home.ids}[${home.offset}] = ${expression};`);
    };
    const setBag = (call: string): void => {
      block.lines.push(`${home.lengths}[${home.lengthSlot}] = ${call};`);
    };
    const bagTarget = `${home.ids}, ${home.offset}, ${home.width}`;
    switch (feature.kind) {
      case 'hashed': {
        const column = this.readFeatureColumn(block, feature.column, 'v');
        this.requireType(feature, column, false, ['int', 'float', 'string']);
        setId(`${this.use('hashBucket')}(v, ${this.buckets(feature, index, 'hash buckets')})`);
        break;
      }
      case 'identity': {
        const column = this.readFeatureColumn(block, feature.column, 'v');
        this.requireType(feature, column, false, ['int', 'float']);
        setId(`${this.use('identityId')}(v, ${this.buckets(feature, index, 'ids')}, ${num(feature.defaultId)}, ${block.counters})`);
        break;
      }
      case 'bucketized': {
        const column = this.readFeatureColumn(block, feature.column, 'v');
        this.requireType(feature, column, false, ['int', 'float']);
        const boundaries = this.constant({
          name: `BOUNDARIES_${index}`,
          doc: `Bucket boundaries of ${quoted(feature.name)}.`,
          type: 'readonly number[]',
          initializer: literal(feature.boundaries),
        });
        setId(`${this.use('bucketize')}(v, ${boundaries})`);
        break;
      }
      case 'vocabulary': {
        const column = this.readFeatureColumn(block, feature.column, 'v');
        this.requireType(feature, column, false, ['int', 'float', 'string']);
        setId(`${this.vocabulary(feature, index)}.id(v, ${block.counters})`);
        break;
      }
      case 'multi_hot': {
        const column = this.readFeatureColumn(block, feature.column, 'v');
        const mapping = feature.mapping;
        if (mapping.by === 'identity') {
          this.requireType(feature, column, true, ['int', 'float']);
          setBag(`${this.use('identityBag')}(v, ${this.buckets(feature, index, 'ids')}, ${num(mapping.defaultId)}, ${bagTarget}, ${block.counters})`);
        } else if (mapping.by === 'hash') {
          this.requireType(feature, column, true, ['int', 'float', 'string']);
          setBag(`${this.use('hashBag')}(v, ${this.buckets(feature, index, 'hash buckets')}, ${bagTarget}, ${block.counters})`);
        } else {
          this.requireType(feature, column, true, ['int', 'float', 'string']);
          setBag(`${this.use('vocabularyBag')}(v, ${this.vocabulary(feature, index)}, ${bagTarget}, ${block.counters})`);
        }
        break;
      }
      case 'crossed':
        this.cross(feature, index, home, block);
        break;
      case 'weighted':
        this.weighted(feature, home, block, temporary);
        break;
      case 'numeric':
      case 'embedding':
      case 'indicator':
        throw new Error(`internal: IR feature ${JSON.stringify(feature.name)} (${feature.kind}) has no ids to encode`);
    }
    return block;
  }

  private buckets(feature: FeatureIR, index: number, what: string): string {
    return this.constant({
      name: `BUCKETS_${index}`,
      doc: `Number of ${what} of ${quoted(feature.name)}.`,
      initializer: num(this.categorical(feature).buckets),
    });
  }

  private vocabulary(feature: FeatureIR, index: number): string {
    return this.constant({
      name: `VOCABULARY_${index}`,
      doc: `Vocabulary of ${quoted(feature.name)}, built once from the IR.`,
      initializer: `${this.use('vocabularyOf')}(ir, ${index})`,
    });
  }

  /** Gathers the inputs' ids into CROSS_INPUTS_i, then hashes them (one id) or their product (a bag). */
  private cross(feature: Extract<FeatureIR, { kind: 'crossed' }>, index: number, home: IdsHome, block: Block): void {
    const inputs = feature.features.map((name) => this.ensureIds(name));
    const offsets: number[] = [];
    let width = 0;
    for (const input of inputs) {
      offsets.push(width);
      width += input.width;
    }
    const gathered = this.constant({
      name: `CROSS_INPUTS_${index}`,
      doc: `Ids of the features ${quoted(feature.name)} crosses, gathered.`,
      initializer: `new Int32Array(${width})`,
    });
    const buckets = this.buckets(feature, index, 'hash buckets');
    const bags = inputs.some((input) => input.lengths !== null);
    if (!bags) {
      if (home.lengths !== null) throw new Error(`internal: IR cross ${JSON.stringify(feature.name)} of single ids is stored as a bag`);
      inputs.forEach((input, k) => block.lines.push(`${gathered}[${k}] = ${input.ids}[${input.offset}]!;`));
      block.lines.push(`${home.ids}[${home.offset}] = ${this.use('crossId')}(${gathered}, 0, ${inputs.length}, ${buckets});`);
      return;
    }
    if (home.lengths === null) throw new Error(`internal: IR cross ${JSON.stringify(feature.name)} of bags is stored as a single id`);
    const offsetsName = this.constant({
      name: `CROSS_OFFSETS_${index}`,
      doc: `Where each crossed input of ${quoted(feature.name)} starts in ${gathered}.`,
      type: 'readonly number[]',
      initializer: literal(offsets),
    });
    const lengthsName = this.constant({
      name: `CROSS_LENGTHS_${index}`,
      doc: `Length of each crossed input of ${quoted(feature.name)}; single ids stay 1.`,
      initializer: `new Int32Array(${literal(inputs.map((input) => (input.lengths === null ? 1 : 0)))})`,
    });
    inputs.forEach((input, k) => {
      if (input.lengths === null) {
        block.lines.push(`${gathered}[${offsets[k]}] = ${input.ids}[${input.offset}]!;`);
      } else {
        const length = `${input.lengths}[${input.lengthSlot}]!`;
        block.lines.push(`${lengthsName}[${k}] = ${this.use('copyBag')}(${input.ids}, ${input.offset}, ${length}, ${gathered}, ${offsets[k]}, ${input.width});`);
      }
    });
    block.lines.push(
      `${home.lengths}[${home.lengthSlot}] = ${this.use('crossBags')}(${gathered}, ${offsetsName}, ${lengthsName}, ${buckets}, ${home.ids}, ${home.offset}, ${home.width}, ${block.counters});`,
    );
  }

  /** Copies the weighted feature's ids and reads its weights column next to them. */
  private weighted(feature: Extract<FeatureIR, { kind: 'weighted' }>, home: IdsHome, block: Block, temporary: boolean): void {
    const source = this.ensureIds(feature.feature);
    if (source.lengths === null) {
      block.lines.push(`${home.ids}[${home.offset}] = ${source.ids}[${source.offset}]!;`);
    } else {
      const length = `${source.lengths}[${source.lengthSlot}]!`;
      block.lines.push(`${home.lengths}[${home.lengthSlot}] = ${this.use('copyBag')}(${source.ids}, ${source.offset}, ${length}, ${home.ids}, ${home.offset}, ${home.width});`);
    }
    if (temporary || home.weightOffset === null) return; // a temporary is only read for its ids
    const column = this.readFeatureColumn(block, feature.weights, 'w');
    this.requireType(feature, column, source.lengths !== null, ['int', 'float']);
    if (source.lengths === null) {
      block.lines.push(`out.weights[${home.weightOffset}] = w;`);
    } else {
      block.lines.push(`${this.use('bagWeights')}(w, ${home.lengths}[${home.lengthSlot}]!, out.weights, ${home.weightOffset}, ${home.width});`);
    }
  }

  // --- numeric features ------------------------------------------------------------------------

  private numeric(name: string, offset: number): void {
    const { feature, index } = this.feature(name);
    if (feature.kind !== 'numeric') throw new Error(`internal: IR numeric layout lists ${JSON.stringify(name)}, a ${feature.kind} feature`);
    if (feature.output.type !== 'dense' || feature.output.width !== 1) throw new Error(`internal: IR numeric feature ${JSON.stringify(name)} is not one dense value`);
    const block = new Block(`numeric[${offset}]: ${quoted(feature.name)} = ${describe(feature)}`, index);
    const column = this.readFeatureColumn(block, feature.column, 'v');
    this.requireType(feature, column, false, ['int', 'float']);
    let fromData = false;
    const stat = (field: 'min' | 'max' | 'mean' | 'std'): string => {
      const fixed = feature.stats[field];
      if (fixed !== undefined) return num(fixed);
      fromData = true;
      return `s.${field}`;
    };
    // The normalisation is written out here rather than called: a double passed to or returned
    // from a call that V8 does not inline into a large encodeRow is boxed on the heap, once per
    // row. runtime/transforms.ts has the same formulas as functions, and a test checks they agree.
    const lines: string[] = [];
    const clamped = (x: string, lo: string, hi: string): string => `${hi} > ${lo} ? Math.min(1, Math.max(0, (${x} - ${lo}) / (${hi} - ${lo}))) : 0`;
    const logged = (x: string, scale: string): string => `Math.log2(1 + ${scale}Math.max(0, ${x}))`;
    const target = `out.numeric[${offset}]`;
    switch (feature.norm) {
      case 'none':
        lines.push(`${target} = v;`);
        break;
      case 'log_count':
        lines.push(`${target} = ${logged('v', '')};`);
        break;
      case 'minmax': {
        const { min, max } = feature.stats;
        if (min !== undefined && max !== undefined) {
          // Both fixed: the guard and the range are decided here, with the same double arithmetic.
          const shifted = min === 0 ? 'v' : `(v - ${num(min)})`;
          lines.push(max > min ? `${target} = Math.min(1, Math.max(0, ${shifted} / ${num(max - min)}));` : `${target} = 0;`);
        } else {
          lines.push(`${target} = ${clamped('v', stat('min'), stat('max'))};`);
        }
        break;
      }
      case 'zscore': {
        const std = stat('std');
        const fixedStd = feature.stats.std;
        if (fixedStd !== undefined && !(fixedStd > 0)) lines.push(`${target} = 0;`);
        else if (fixedStd !== undefined) lines.push(`${target} = (v - ${stat('mean')}) / ${std};`);
        else lines.push(`${target} = ${std} > 0 ? (v - ${stat('mean')}) / ${std} : 0;`);
        break;
      }
      case 'log_count_minmax':
      case 'log_01scaled': {
        const scale = feature.norm === 'log_01scaled' ? '1000 * ' : '';
        lines.push(
          `const lo = ${logged(stat('min'), scale)};`,
          `const hi = ${logged(stat('max'), scale)};`,
          `const x = ${logged('v', scale)};`,
          `${target} = ${clamped('x', 'lo', 'hi')};`,
        );
        break;
      }
    }
    if (fromData) {
      block.lines.push(`const s = stats[${str(feature.name)}];`);
      this.statsUsed = true;
    }
    block.lines.push(...lines);
    this.blocks.push(block);
  }
}

function layoutHome(feature: FeatureIR, slot: IdsSlot): IdsHome {
  const bag = slot.lengthSlot !== null;
  const label = bag ? `ids[${slot.offset}..${slot.offset + slot.width}), lengths[${slot.lengthSlot}]` : `ids[${slot.offset}]`;
  const weights = slot.weightOffset === null ? '' : bag ? `, weights[${slot.weightOffset}..${slot.weightOffset + slot.width})` : `, weights[${slot.weightOffset}]`;
  if (slot.width < 1) throw new Error(`internal: IR layout gives ${JSON.stringify(feature.name)} width ${slot.width}`);
  return {
    ids: 'out.ids',
    offset: slot.offset,
    width: slot.width,
    lengths: bag ? 'out.lengths' : null,
    lengthSlot: slot.lengthSlot ?? 0,
    weightOffset: slot.weightOffset,
    label: label + weights,
  };
}

/** The feature in spec words, for the comment above its block. */
function describe(feature: FeatureIR): string {
  const output = feature.output;
  const buckets = output.type === 'categorical' ? output.buckets : 0;
  const maxLen = output.type === 'categorical' ? output.maxLen : 0;
  switch (feature.kind) {
    case 'numeric':
      return `numeric(${quoted(feature.column)}, norm: ${feature.norm})`;
    case 'bucketized': {
      const boundaries = feature.boundaries.length <= 12 ? oneLine(feature.boundaries) : `${feature.boundaries.length} values`;
      return `bucketized(${quoted(feature.column)}, boundaries: ${boundaries})`;
    }
    case 'hashed':
      return `hashed(${quoted(feature.column)}, buckets: ${buckets})`;
    case 'identity':
      return `identity(${quoted(feature.column)}, buckets: ${buckets}, default_id: ${feature.defaultId})`;
    case 'vocabulary':
      return `vocabulary(${quoted(feature.column)}, ${feature.values.length} values, oov_buckets: ${feature.oovBuckets})`;
    case 'multi_hot': {
      const m = feature.mapping;
      const by = m.by === 'vocabulary' ? `vocabulary of ${m.values.length} values, oov_buckets: ${m.oovBuckets}` : `${m.by}, buckets: ${buckets}`;
      return `multi_hot(${quoted(feature.column)}, max_len: ${maxLen}, by: ${by})`;
    }
    case 'crossed':
      return `crossed(${feature.features.map(quoted).join(', ')}, buckets: ${buckets}${output.type === 'categorical' && output.multivalent ? `, max_len: ${maxLen}` : ''})`;
    case 'weighted':
      return `weighted(${quoted(feature.feature)}, weights: ${quoted(feature.weights)})`;
    case 'embedding':
    case 'indicator':
      return `${feature.kind}(${quoted(feature.feature)})`;
  }
}

// ---------------------------------------------------------------------------------------------
// The module.

const FORMAT: FormatCodeSettings = {
  indentSize: 2,
  tabSize: 2,
  convertTabsToSpaces: true,
  newLineCharacter: '\n',
  ensureNewLineAtEndOfFile: true,
  insertSpaceAfterCommaDelimiter: true,
  insertSpaceAfterSemicolonInForStatements: true,
  insertSpaceBeforeAndAfterBinaryOperators: true,
  insertSpaceAfterKeywordsInControlFlowStatements: true,
  insertSpaceAfterFunctionKeywordForAnonymousFunctions: true,
  insertSpaceAfterOpeningAndBeforeClosingNonemptyBraces: true,
  insertSpaceAfterOpeningAndBeforeClosingEmptyBraces: false,
  insertSpaceAfterOpeningAndBeforeClosingNonemptyBrackets: false,
  insertSpaceAfterOpeningAndBeforeClosingNonemptyParenthesis: false,
  insertSpaceAfterTypeAssertion: false,
  placeOpenBraceOnNewLineForFunctions: false,
  placeOpenBraceOnNewLineForControlBlocks: false,
  semicolons: ts.SemicolonPreference.Insert,
};

function printModule(ir: ModelIR, encoder: EncoderWriter, body: string[]): string {
  const project = new Project({
    useInMemoryFileSystem: true,
    manipulationSettings: {
      indentationText: IndentationText.TwoSpaces,
      newLineKind: NewLineKind.LineFeed,
      quoteKind: QuoteKind.Double,
      useTrailingCommas: true,
    },
  });
  const file = project.createSourceFile('/model.ts', '', { overwrite: true });
  const needs = statsNeeded(ir);

  file.addImportDeclaration({
    leadingTrivia: [
      `// Generated by wndc from model ${quoted(ir.model)} (model IR version ${ir.irVersion}). Do not edit:`,
      '// change the spec and compile it again.',
      '',
    ].join('\n'),
    moduleSpecifier: 'wndc/runtime',
    namedImports: [...encoder.runtimeImports].sort(),
  });
  file.addImportDeclaration({ isTypeOnly: true, moduleSpecifier: 'wndc/runtime', namedImports: ['EncodeCounters', 'EncodedRow', 'ModelIR'] });

  file.addVariableStatement({
    isExported: true,
    declarationKind: VariableDeclarationKind.Const,
    docs: ['The model IR this module was generated from.'],
    declarations: [{ name: 'ir', type: 'ModelIR', initializer: IR_PLACEHOLDER }],
  });

  file.addInterface({
    isExported: true,
    name: 'RawRow',
    docs: ['One raw example: a property per input column. Columns with a default may be absent (or null).'],
    properties: ir.columns.map((column) => ({
      name: str(column.name),
      type: column.default === null ? columnType(column) : `${columnType(column)} | null`,
      hasQuestionToken: column.default !== null,
      isReadonly: true,
      docs: [`${columnTypeName(column)}${column.default === null ? ', required' : `, default ${inComment(JSON.stringify(column.default))}`}${roleOf(ir, column.name)}`],
    })),
  });

  if (needs.length === 0) {
    file.addStatements((writer) => {
      writer.newLine();
      writer.writeLine('/** The spec fixes every statistic its numeric features read, so there is nothing to compute. */');
      writer.write('export interface NumericStats {}');
    });
  } else {
    file.addInterface({
      isExported: true,
      name: 'NumericStats',
      docs: ['Statistics the spec leaves to the data, in raw column units: the data pipeline computes them before encoding.'],
      properties: needs.map((need) => ({
        name: str(need.feature),
        type: `{ ${need.fields.map((field) => `readonly ${field}: number`).join('; ')} }`,
        isReadonly: true,
        docs: [`${need.fields.join(', ')} of column ${quoted(need.column)}`],
      })),
    });
  }

  for (const constant of encoder.constants) {
    file.addVariableStatement({
      declarationKind: VariableDeclarationKind.Const,
      docs: [constant.doc],
      declarations: [{ name: constant.name, ...(constant.type === undefined ? {} : { type: constant.type }), initializer: constant.initializer }],
    });
  }

  file.addFunction({
    isExported: true,
    name: 'encodeRow',
    docs: ['Encodes one raw row into `out` at the offsets of `ir.layout`, overwriting every slot.'],
    parameters: [
      { name: 'row', type: 'RawRow' },
      { name: 'out', type: 'EncodedRow' },
      { name: encoder.statsUsed ? 'stats' : '_stats', type: 'NumericStats' },
      { name: 'counters', type: 'EncodeCounters' },
    ],
    returnType: 'void',
    statements: body.join('\n'),
  });

  file.addExportAssignment({ isExportEquals: false, expression: 'defineModel<RawRow, NumericStats>(ir, encodeRow)' });

  file.formatText(FORMAT);
  return spliceIr(file.getFullText(), literal(ir));
}

// ts-morph re-parses the whole file after each change, so the IR literal (megabytes with a large
// vocabulary) joins only at the end; literal() lays it out as the formatter would.
const IR_PLACEHOLDER = '__WNDC_IR_LITERAL__';
const IR_LINE = new RegExp(`^(export const ir: ModelIR = )${IR_PLACEHOLDER};$`, 'm');

function spliceIr(text: string, irLiteral: string): string {
  // Spec text never starts a line (newlines in it are escaped), so this matches our line only.
  if (text.match(new RegExp(IR_LINE, 'gm'))?.length !== 1) throw new Error('internal: the IR placeholder line is not unique');
  return text.replace(IR_LINE, (_, head: string) => `${head}${irLiteral};`);
}

function roleOf(ir: ModelIR, column: string): string {
  if (ir.roles.label === column) return ', the label';
  if (ir.roles.group === column) return ', the ranking group';
  if (ir.roles.weight === column) return ', the example weight';
  if (ir.roles.item === column) return ', the item id';
  return '';
}
