// Encoded shards (docs/shards.md): a folder of Arrow IPC files, one record batch each, plus a
// manifest written last. The writer appends EncodedRows into preallocated typed-array columns and
// hands them to Arrow without copying; the reader maps a shard's columns back to typed arrays that
// view the file's bytes.

import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Field, FixedSizeList, Float32, Float64, Int32, makeData, RecordBatch, Schema, Struct, Table, tableFromIPC, tableToIPC, type Data, type DataType } from 'apache-arrow';
import type { EncodedLayoutIR, ModelIR } from '../../compiler/ir.js';
import { writeFileAtomic } from '../../compiler/fs.js';
import type { EncodedRow } from '../compiled-model.js';
import type { EncodedColumns, ShardManifest } from './contracts.js';
import { specHash as hashOfSpec } from './spec-hash.js';

export const MANIFEST_FILE = 'manifest.json';
export const DEFAULT_ROWS_PER_SHARD = 262_144;
/** Schema metadata keys every shard file carries. */
export const META_MODEL = 'wndc.model';
export const META_SPEC_HASH = 'wndc.spec_hash';
export const META_FORMAT_VERSION = 'wndc.format_version';

const SHARD_NAME = /^part-(\d{5,})\.arrow$/;
const TEMP_NAME = /^\.part-\d{5,}\.arrow\.tmp$/;

export function shardFileName(index: number): string {
  return `part-${String(index).padStart(5, '0')}.arrow`;
}

/** A shard folder the user pointed at that cannot be read: the message says why and what to do. */
export class ShardError extends Error {}

/** What the columns of a shard set are: fixed per model. */
export interface ShardSchema {
  model: string;
  specHash: string;
  layout: EncodedLayoutIR;
  hasGroup: boolean;
  hasWeight: boolean;
}

export function shardSchemaOf(ir: ModelIR): ShardSchema {
  return { model: ir.model, specHash: hashOfSpec(ir), layout: ir.layout, hasGroup: ir.roles.group !== null, hasWeight: ir.roles.weight !== null };
}

type ColumnName = 'ids' | 'lengths' | 'weights' | 'numeric' | 'label' | 'group' | 'weight';
type ColumnKind = 'int32' | 'float32' | 'float64';
interface ColumnSpec {
  name: ColumnName;
  kind: ColumnKind;
  /** Values per row; null for a scalar (non-list) column. */
  width: number | null;
}

/** The columns present, in file order: vectors of width 0 and absent roles are left out. */
export function shardColumns(schema: Pick<ShardSchema, 'layout' | 'hasGroup' | 'hasWeight'>): ColumnSpec[] {
  const { layout } = schema;
  const columns: ColumnSpec[] = [{ name: 'ids', kind: 'int32', width: layout.idsWidth }];
  if (layout.lengthsWidth > 0) columns.push({ name: 'lengths', kind: 'int32', width: layout.lengthsWidth });
  if (layout.weightsWidth > 0) columns.push({ name: 'weights', kind: 'float32', width: layout.weightsWidth });
  if (layout.numericWidth > 0) columns.push({ name: 'numeric', kind: 'float32', width: layout.numericWidth });
  columns.push({ name: 'label', kind: 'float32', width: null });
  if (schema.hasGroup) columns.push({ name: 'group', kind: 'float64', width: null });
  if (schema.hasWeight) columns.push({ name: 'weight', kind: 'float32', width: null });
  return columns;
}

function arrowType(kind: ColumnKind): Int32 | Float32 | Float64 {
  return kind === 'int32' ? new Int32() : kind === 'float32' ? new Float32() : new Float64();
}

function arrowField(column: ColumnSpec): Field {
  const value = arrowType(column.kind);
  // The list's child is named `item`, as Arrow C++ and pyarrow name it.
  const type = column.width === null ? value : new FixedSizeList(column.width, new Field('item', value, false));
  return new Field(column.name, type, false);
}

type Values = Int32Array | Float32Array | Float64Array;

function arrowData(column: ColumnSpec, values: Values, rows: number): Data {
  const leafType = arrowType(column.kind);
  const leafLength = rows * (column.width ?? 1);
  const leaf = makeData({ type: leafType, length: leafLength, nullCount: 0, data: values.subarray(0, leafLength) } as never) as Data;
  if (column.width === null) return leaf;
  const type = new FixedSizeList(column.width, new Field('item', leafType, false));
  return makeData({ type, length: rows, nullCount: 0, child: leaf } as never) as Data;
}

/** Encoded rows as row-major columns, as preprocessing workers return them. */
export type EncodedRows = EncodedColumns;

/** The typed arrays of one shard, viewing the file's bytes; `group`/`weight` null when absent. */
export interface ShardData {
  rows: number;
  ids: Int32Array;
  lengths: Int32Array;
  weights: Float32Array;
  numeric: Float32Array;
  label: Float32Array;
  group: Float64Array | null;
  weight: Float32Array | null;
}

export interface ShardWriterOptions {
  split?: ShardManifest['split'];
  rowsPerShard?: number;
  /** Who wrote the shards, e.g. `wndc 0.1.0 preprocess`. */
  createdBy?: string;
}

/** Distinct groups remembered to decide `groupsContiguous` when rows are not sorted by group. */
const GROUP_MEMORY_LIMIT = 4_000_000;

/**
 * Writes encoded rows to a shard folder. Rows are appended one at a time; every `rowsPerShard`
 * rows a shard is written to a hidden temporary name, flushed to disk and renamed. `finish()`
 * writes the manifest, last: until then the folder is incomplete and readers refuse it.
 */
export class ShardWriter {
  private readonly columns: ColumnSpec[];
  private readonly arrowSchema: Schema;
  private readonly rowsPerShard: number;
  private readonly ids: Int32Array;
  private readonly lengths: Int32Array;
  private readonly weights: Float32Array;
  private readonly numeric: Float32Array;
  private readonly label: Float32Array;
  private readonly group: Float64Array;
  private readonly weight: Float32Array;
  private pending = 0;
  private totalRows = 0;
  private readonly written: ShardManifest['shards'] = [];
  private finished = false;
  // Group contiguity: rows of a group must form one run. Runs in ascending order prove it at any
  // size; otherwise run starts are remembered, up to a limit past which the answer is `false`.
  private lastGroup = Number.NaN;
  private ascending = true;
  private contiguous = true;
  private seenGroups: Set<number> | null = new Set();

  constructor(
    readonly dir: string,
    readonly schema: ShardSchema,
    private readonly options: ShardWriterOptions = {},
  ) {
    this.rowsPerShard = options.rowsPerShard ?? DEFAULT_ROWS_PER_SHARD;
    if (!Number.isInteger(this.rowsPerShard) || this.rowsPerShard < 1) throw new Error(`internal: rowsPerShard must be a positive integer, got ${this.rowsPerShard}`);
    this.columns = shardColumns(schema);
    const metadata = new Map([
      [META_MODEL, schema.model],
      [META_SPEC_HASH, schema.specHash],
      [META_FORMAT_VERSION, '1'],
    ]);
    this.arrowSchema = new Schema(this.columns.map(arrowField), metadata);
    const n = this.rowsPerShard;
    const { layout } = schema;
    this.ids = new Int32Array(n * layout.idsWidth);
    this.lengths = new Int32Array(n * layout.lengthsWidth);
    this.weights = new Float32Array(n * layout.weightsWidth);
    this.numeric = new Float32Array(n * layout.numericWidth);
    this.label = new Float32Array(n);
    this.group = new Float64Array(schema.hasGroup ? n : 0);
    this.weight = new Float32Array(schema.hasWeight ? n : 0);
    prepareFolder(dir);
  }

  static forModel(dir: string, ir: ModelIR, options: ShardWriterOptions = {}): ShardWriter {
    return new ShardWriter(dir, shardSchemaOf(ir), options);
  }

  get rows(): number {
    return this.totalRows + this.pending;
  }

  append(row: EncodedRow): void {
    if (this.finished) throw new Error('internal: append after finish');
    const { layout } = this.schema;
    const i = this.pending;
    // TypedArray.set copies without allocating; a row of the wrong widths is a bug upstream.
    if (row.ids.length !== layout.idsWidth || row.lengths.length !== layout.lengthsWidth || row.weights.length !== layout.weightsWidth || row.numeric.length !== layout.numericWidth) {
      throw new Error('internal: encoded row widths differ from the shard layout');
    }
    this.ids.set(row.ids, i * layout.idsWidth);
    if (layout.lengthsWidth > 0) this.lengths.set(row.lengths, i * layout.lengthsWidth);
    if (layout.weightsWidth > 0) this.weights.set(row.weights, i * layout.weightsWidth);
    if (layout.numericWidth > 0) this.numeric.set(row.numeric, i * layout.numericWidth);
    this.label[i] = row.label;
    if (this.schema.hasGroup) {
      this.group[i] = row.group;
      this.trackGroup(row.group);
    }
    if (this.schema.hasWeight) this.weight[i] = row.weight;
    this.pending = i + 1;
    if (this.pending === this.rowsPerShard) this.flush();
  }

  /**
   * Appends rows [from, to) of row-major encoded columns (the layout's widths; `group` and
   * `weight` read only when the schema has them): one `set` per column and shard.
   */
  appendRows(rows: EncodedRows, from: number, to: number): void {
    if (this.finished) throw new Error('internal: append after finish');
    const { layout } = this.schema;
    let at = from;
    while (at < to) {
      const i = this.pending;
      const n = Math.min(to - at, this.rowsPerShard - i);
      const copy = (target: Values, source: Values, width: number) => {
        if (width > 0) target.set(source.subarray(at * width, (at + n) * width), i * width);
      };
      copy(this.ids, rows.ids, layout.idsWidth);
      copy(this.lengths, rows.lengths, layout.lengthsWidth);
      copy(this.weights, rows.weights, layout.weightsWidth);
      copy(this.numeric, rows.numeric, layout.numericWidth);
      copy(this.label, rows.label, 1);
      if (this.schema.hasGroup) {
        copy(this.group, rows.group, 1);
        for (let k = at; k < at + n; k++) this.trackGroup(rows.group[k]!);
      }
      if (this.schema.hasWeight) copy(this.weight, rows.weight, 1);
      this.pending = i + n;
      at += n;
      if (this.pending === this.rowsPerShard) this.flush();
    }
  }

  private trackGroup(group: number): void {
    if (group === this.lastGroup) return;
    if (!(group > this.lastGroup) && !Number.isNaN(this.lastGroup)) this.ascending = false;
    this.lastGroup = group;
    if (this.seenGroups === null) {
      if (!this.ascending) this.contiguous = false;
      return;
    }
    if (this.seenGroups.has(group)) this.contiguous = false;
    else if (this.seenGroups.size < GROUP_MEMORY_LIMIT) this.seenGroups.add(group);
    else {
      this.seenGroups = null;
      if (!this.ascending) this.contiguous = false;
    }
  }

  /** Writes the pending rows as the next shard, if any. */
  private flush(): void {
    const rows = this.pending;
    if (rows === 0) return;
    const values: Record<ColumnName, Values> = {
      ids: this.ids,
      lengths: this.lengths,
      weights: this.weights,
      numeric: this.numeric,
      label: this.label,
      group: this.group,
      weight: this.weight,
    };
    const children = this.columns.map((c) => arrowData(c, values[c.name], rows));
    const struct = makeData({ type: new Struct(this.arrowSchema.fields), length: rows, nullCount: 0, children });
    const batch = new RecordBatch(this.arrowSchema, struct);
    const bytes = tableToIPC(new Table(this.arrowSchema, [batch]) as Table, 'file');
    const file = shardFileName(this.written.length);
    const buffers = bufferOffsets(bytes, this.columns);
    writeDurably(this.dir, file, bytes);
    this.written.push({ file, rows, bytes: bytes.length, buffers });
    this.totalRows += rows;
    this.pending = 0;
  }

  /**
   * Writes the last shard and then the manifest, atomically. `stats` and `counters` are what the
   * encoding used and counted (preprocess knows them only at the end).
   */
  finish(extra: { stats?: ShardManifest['stats']; counters?: ShardManifest['counters'] } = {}): ShardManifest {
    if (this.finished) throw new Error('internal: finish called twice');
    this.flush();
    this.finished = true;
    const manifest: ShardManifest = {
      format: 'wndc-shards',
      version: 1,
      model: this.schema.model,
      specHash: this.schema.specHash,
      layout: this.schema.layout,
      stats: extra.stats ?? {},
      split: this.options.split ?? 'train',
      rows: this.totalRows,
      shards: this.written,
      groupsContiguous: this.schema.hasGroup ? this.contiguous : true,
      counters: extra.counters ?? {},
      createdBy: this.options.createdBy ?? 'wndc',
    };
    writeFileAtomic(join(this.dir, MANIFEST_FILE), `${JSON.stringify(manifest, null, 2)}\n`);
    return manifest;
  }
}

/**
 * Makes `dir` ready for a new shard set: the old manifest goes first (so the folder reads as
 * incomplete from then on), then old shards and temporaries. Other files are left alone.
 */
function prepareFolder(dir: string): void {
  mkdirSync(dir, { recursive: true });
  rmSync(join(dir, MANIFEST_FILE), { force: true });
  for (const name of readdirSync(dir)) {
    if (SHARD_NAME.test(name) || TEMP_NAME.test(name)) rmSync(join(dir, name), { force: true });
  }
}

/** Writes `.name.tmp`, fsyncs it, renames it to `name` and fsyncs the folder. */
function writeDurably(dir: string, name: string, bytes: Uint8Array): void {
  const tmp = join(dir, `.${name}.tmp`);
  const fd = openSync(tmp, 'w');
  try {
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, join(dir, name));
  try {
    const dirFd = openSync(dir, 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
  } catch {
    // Some file systems cannot fsync a folder; the rename is then as durable as they make it.
  }
}

/** Where each column's values start in the file, read back from what Arrow wrote. */
function bufferOffsets(bytes: Uint8Array, columns: ColumnSpec[]): Record<string, { offset: number; bytes: number }> {
  const table = tableFromIPC(bytes);
  const out: Record<string, { offset: number; bytes: number }> = {};
  const rows = table.numRows;
  for (const column of columns) {
    const values = leafValues(table, column.name);
    const width = column.width ?? 1;
    out[column.name] = { offset: values.byteOffset - bytes.byteOffset, bytes: rows * width * values.BYTES_PER_ELEMENT };
  }
  return out;
}

function leafValues(table: Table, name: string): Values {
  const data = table.getChild(name)?.data[0] as Data<DataType> | undefined;
  if (data === undefined) throw new Error(`internal: no column ${name}`);
  const leaf = data.children.length > 0 ? data.children[0] : data;
  return leaf?.values as Values;
}

// ---------------------------------------------------------------------------------------------
// Reading

/** An opened shard folder: its validated manifest and a loader of shards. */
export class ShardSet {
  readonly hasGroup: boolean;
  readonly hasWeight: boolean;
  /** The first global row of each shard, and the total at the end. */
  readonly rowStarts: Float64Array;
  private readonly columns: ColumnSpec[];

  constructor(
    readonly dir: string,
    readonly manifest: ShardManifest,
    hasGroup: boolean,
    hasWeight: boolean,
  ) {
    this.hasGroup = hasGroup;
    this.hasWeight = hasWeight;
    this.columns = shardColumns({ layout: manifest.layout, hasGroup, hasWeight });
    this.rowStarts = new Float64Array(manifest.shards.length + 1);
    manifest.shards.forEach((s, i) => {
      this.rowStarts[i + 1] = (this.rowStarts[i] ?? 0) + s.rows;
    });
  }

  get rows(): number {
    return this.manifest.rows;
  }

  get shardCount(): number {
    return this.manifest.shards.length;
  }

  /** Reads shard `index` into memory; the arrays view the file's bytes (no copy). */
  load(index: number): ShardData {
    const entry = this.manifest.shards[index];
    if (entry === undefined) throw new Error(`internal: shard ${index} of ${this.shardCount}`);
    const path = join(this.dir, entry.file);
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch (e) {
      throw new ShardError(`${path}: cannot read the shard (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); the shard folder is damaged, run preprocess again`);
    }
    if (bytes.length !== entry.bytes) throw new ShardError(`${path}: ${bytes.length} bytes, the manifest says ${entry.bytes}; the shard folder is damaged, run preprocess again`);
    let table: Table;
    try {
      table = tableFromIPC(bytes);
    } catch (e) {
      throw new ShardError(`${path}: not an Arrow IPC file (${(e as Error).message})`);
    }
    const meta = table.schema.metadata;
    if (meta.get(META_SPEC_HASH) !== this.manifest.specHash) {
      throw new ShardError(`${path}: encoded for spec hash ${meta.get(META_SPEC_HASH) ?? '(none)'}, the manifest says ${this.manifest.specHash}`);
    }
    if (table.batches.length !== 1 || table.numRows !== entry.rows) {
      throw new ShardError(`${path}: expected one record batch of ${entry.rows} rows, found ${table.batches.length} batches and ${table.numRows} rows`);
    }
    const names = table.schema.fields.map((f) => f.name).join(', ');
    const expected = this.columns.map((c) => c.name).join(', ');
    if (names !== expected) throw new ShardError(`${path}: columns ${names}, expected ${expected}`);
    const arrays: Partial<Record<ColumnName, Values>> = {};
    for (const column of this.columns) {
      const field = table.schema.fields.find((f) => f.name === column.name);
      const type = field?.type as DataType;
      const listSize = (type as FixedSizeList).listSize;
      if (column.width !== null && listSize !== column.width) {
        throw new ShardError(`${path}: column \`${column.name}\` has ${listSize} values per row, the manifest layout says ${column.width}`);
      }
      const data = table.getChild(column.name)?.data[0] as Data<DataType>;
      if (data.nullCount > 0) throw new ShardError(`${path}: column \`${column.name}\` has ${data.nullCount} nulls; shards have none`);
      const values = leafValues(table, column.name);
      const kind = values instanceof Int32Array ? 'int32' : values instanceof Float32Array ? 'float32' : values instanceof Float64Array ? 'float64' : 'other';
      if (kind !== column.kind) throw new ShardError(`${path}: column \`${column.name}\` holds ${kind} values, expected ${column.kind}`);
      // Arrow pads buffers to 8 bytes; the rows end before the padding.
      arrays[column.name] = values.subarray(0, entry.rows * (column.width ?? 1));
    }
    return {
      rows: entry.rows,
      ids: arrays.ids as Int32Array,
      lengths: (arrays.lengths as Int32Array | undefined) ?? new Int32Array(0),
      weights: (arrays.weights as Float32Array | undefined) ?? new Float32Array(0),
      numeric: (arrays.numeric as Float32Array | undefined) ?? new Float32Array(0),
      label: arrays.label as Float32Array,
      group: (arrays.group as Float64Array | undefined) ?? null,
      weight: (arrays.weight as Float32Array | undefined) ?? null,
    };
  }
}

/**
 * Opens a shard folder: reads and checks the manifest, and the first shard's schema for which
 * role columns exist. With `expected.specHash`, shards encoded for another spec are refused.
 */
export function openShards(dir: string, expected: { specHash?: string } = {}): ShardSet {
  const manifest = readManifest(dir);
  if (expected.specHash !== undefined && expected.specHash !== manifest.specHash) {
    throw new ShardError(
      `${dir}: these shards were encoded for another spec of model \`${manifest.model}\` (spec hash ${manifest.specHash}, this spec has ${expected.specHash}); run preprocess again with this spec`,
    );
  }
  const roles = manifest.shards[0]?.buffers;
  let hasGroup = roles !== undefined && 'group' in roles;
  let hasWeight = roles !== undefined && 'weight' in roles;
  if (roles === undefined && manifest.shards.length > 0) {
    // A manifest without buffer offsets: the first shard's schema says which columns exist.
    const first = manifest.shards[0];
    if (first !== undefined) {
      const table = tableFromIPC(readFileSync(join(dir, first.file)));
      hasGroup = table.schema.fields.some((f) => f.name === 'group');
      hasWeight = table.schema.fields.some((f) => f.name === 'weight');
    }
  }
  return new ShardSet(dir, manifest, hasGroup, hasWeight);
}

/** Reads and validates `dir/manifest.json`; a folder without one is refused with the reason. */
export function readManifest(dir: string): ShardManifest {
  if (!existsSync(dir)) throw new ShardError(`${dir}: no such folder`);
  if (!statSync(dir).isDirectory()) throw new ShardError(`${dir}: not a folder; give the folder preprocess wrote`);
  const path = join(dir, MANIFEST_FILE);
  if (!existsSync(path)) {
    const names = readdirSync(dir);
    if (names.some((n) => SHARD_NAME.test(n) || TEMP_NAME.test(n))) {
      throw new ShardError(`${dir}: incomplete shard folder: it has shards but no ${MANIFEST_FILE}, so the writer did not finish; run preprocess again`);
    }
    throw new ShardError(`${dir}: not a shard folder: no ${MANIFEST_FILE}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new ShardError(`${path}: not valid JSON (${(e as Error).message})`);
  }
  const m = parsed as Partial<ShardManifest>;
  if (typeof m !== 'object' || m === null || m.format !== 'wndc-shards') throw new ShardError(`${path}: not a wndc shard manifest (\`format\` is not "wndc-shards")`);
  if (m.version !== 1) throw new ShardError(`${path}: shard format version ${String(m.version)}, this wndc reads version 1`);
  const layout = m.layout;
  const widthsOk = layout !== undefined && [layout.idsWidth, layout.lengthsWidth, layout.weightsWidth, layout.numericWidth].every((w) => Number.isInteger(w) && w >= 0);
  if (!widthsOk || typeof m.specHash !== 'string' || typeof m.model !== 'string' || !Array.isArray(m.shards) || typeof m.rows !== 'number') {
    throw new ShardError(`${path}: the manifest lacks \`model\`, \`specHash\`, \`layout\`, \`rows\` or \`shards\``);
  }
  const total = m.shards.reduce((sum, s) => sum + s.rows, 0);
  if (total !== m.rows) throw new ShardError(`${path}: the shards hold ${total} rows, \`rows\` says ${m.rows}`);
  return m as ShardManifest;
}
