// Batches over a shard folder (docs/shards.md, "Batches"): seeded per-epoch shuffling of blocks of
// contiguous rows over a buffer of shards, fixed global batches split across ranks, and grouped
// evaluation batches that never split a group. Rows stay column-major in the shards' own arrays;
// a block is copied into the batch with one TypedArray.set per column.

import { totalmem } from 'node:os';
import type { Batch } from './contracts.js';
import { ShardError, type ShardSet } from './shards.js';
import { fmix32 } from '../mix.js';

export interface BatchReaderOptions {
  /** The global batch size B: each of `worldSize` ranks gets B / worldSize rows of every batch. */
  batchSize: number;
  /** Shuffle each epoch (training). Default: true, false when `grouped`. */
  shuffle?: boolean;
  seed?: number;
  /** The epoch `batches()` reads when given none. Default 0. */
  epoch?: number;
  /** Rows shuffled together. Default: every row when the shards fit in a quarter of RAM. */
  shuffleBuffer?: number;
  /**
   * Rows per shuffled block: the order shuffles blocks of this many contiguous rows of a shard,
   * not rows. 1 shuffles rows. Default DEFAULT_SHUFFLE_BLOCK.
   */
  shuffleBlock?: number;
  rank?: number;
  worldSize?: number;
  /** The last, partial batch: `keep` (default) or `drop`. Grouped batches keep it always. */
  lastBatch?: 'keep' | 'drop';
  /** Evaluation batches of whole groups, in file order (needs a group column). */
  grouped?: boolean;
}

/**
 * The default block (docs/shards.md, "Block size"): the smallest power of two that reads well over
 * 10 million Outbrain-shaped rows per CPU second; a 4096-row batch still draws from 64 places.
 */
export const DEFAULT_SHUFFLE_BLOCK = 64;

/** Options that cannot work with these shards; the message says which and why. */
export class BatchOptionError extends Error {}

// ---------------------------------------------------------------------------------------------
// The epoch's random numbers: documented so that any engine can reproduce the order.

/**
 * mulberry32 seeded with fmix32(seed ^ fmix32(epoch + 0x9e3779b9)), both taken as uint32.
 * `next()` is in [0, 1): the 32-bit output divided by 2^32.
 */
export function epochRandom(seed: number, epoch: number): () => number {
  let state = fmix32((seed >>> 0) ^ fmix32((epoch + 0x9e3779b9) >>> 0));
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Fisher-Yates from the end: for i = n-1 down to 1, swap a[i] and a[floor(next() * (i + 1))]. */
export function shuffleInPlace(a: Uint32Array, n: number, next: () => number): void {
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(next() * (i + 1));
    const t = a[i] as number;
    a[i] = a[j] as number;
    a[j] = t;
  }
}

// ---------------------------------------------------------------------------------------------
// Copying rows. Every column is seen as 32-bit words (Int32Array views; group has two a row), so
// float bits travel exactly and one copy routine serves all columns.

interface Widths {
  ids: number;
  lengths: number;
  weights: number;
  numeric: number;
  group: number;
  weight: number;
}

/** Int32Array views of a batch's or a shard's columns. */
interface WordColumns {
  ids: Int32Array;
  lengths: Int32Array;
  weights: Int32Array;
  numeric: Int32Array;
  label: Int32Array;
  group: Int32Array;
  weight: Int32Array;
}

function words(a: Int32Array | Float32Array | Float64Array | null): Int32Array {
  if (a === null) return new Int32Array(0);
  return a instanceof Int32Array ? a : new Int32Array(a.buffer, a.byteOffset, a.byteLength / 4);
}

function wordColumns(c: { ids: Int32Array; lengths: Int32Array; weights: Float32Array; numeric: Float32Array; label: Float32Array; group: Float64Array | null; weight: Float32Array | null }): WordColumns {
  return { ids: c.ids, lengths: c.lengths, weights: words(c.weights), numeric: words(c.numeric), label: words(c.label), group: words(c.group), weight: words(c.weight) };
}

/**
 * Runs shorter than this many words are copied in a loop: TypedArray.set needs a subarray view,
 * an allocation that costs more than copying a few words (a block's label, a batch's last rows).
 */
const SET_MIN_WORDS = 48;

/** Rows [from, from + n) of one column, `width` words a row, to row `at`. */
function copyWords(src: Int32Array, dst: Int32Array, from: number, n: number, at: number, width: number): void {
  const s = from * width;
  const d = at * width;
  const count = n * width;
  if (count >= SET_MIN_WORDS) {
    dst.set(src.subarray(s, s + count), d);
    return;
  }
  for (let k = 0; k < count; k++) dst[d + k] = src[s + k] as number;
}

function copyRows(src: WordColumns, from: number, n: number, out: WordColumns, at: number, w: Widths): void {
  copyWords(src.ids, out.ids, from, n, at, w.ids);
  if (w.lengths > 0) copyWords(src.lengths, out.lengths, from, n, at, w.lengths);
  if (w.weights > 0) copyWords(src.weights, out.weights, from, n, at, w.weights);
  if (w.numeric > 0) copyWords(src.numeric, out.numeric, from, n, at, w.numeric);
  copyWords(src.label, out.label, from, n, at, 1);
  if (w.group > 0) copyWords(src.group, out.group, from, n, at, w.group);
  if (w.weight > 0) copyWords(src.weight, out.weight, from, n, at, 1);
}

// Row shuffling (blocks of 1 row) copies every row from a random place. There a window is stored
// interleaved instead, one record of 32-bit words per row (ids, lengths, weights, numeric, label,
// group as two words, weight), so that a row is one run of adjacent cache lines and one page
// rather than one per column: measured twice as fast as gathering single rows from the columns.

function strideOf(w: Widths): number {
  return w.ids + w.lengths + w.weights + w.numeric + 1 + w.group + w.weight;
}

/** Writes the `rows` rows of `src` as records from record `at` of `rec`. */
function interleave(src: WordColumns, rows: number, rec: Int32Array, at: number, w: Widths): void {
  const stride = strideOf(w);
  let d = at * stride;
  for (let r = 0; r < rows; r++) {
    let s = r * w.ids;
    for (let k = 0; k < w.ids; k++) rec[d++] = src.ids[s + k] as number;
    s = r * w.lengths;
    for (let k = 0; k < w.lengths; k++) rec[d++] = src.lengths[s + k] as number;
    s = r * w.weights;
    for (let k = 0; k < w.weights; k++) rec[d++] = src.weights[s + k] as number;
    s = r * w.numeric;
    for (let k = 0; k < w.numeric; k++) rec[d++] = src.numeric[s + k] as number;
    rec[d++] = src.label[r] as number;
    s = r * w.group;
    for (let k = 0; k < w.group; k++) rec[d++] = src.group[s + k] as number;
    if (w.weight > 0) rec[d++] = src.weight[r] as number;
  }
}

/** Records `order[from .. from+n)` of `rec` into batch rows from `at`. */
function gatherRecords(rec: Int32Array, order: Uint32Array, from: number, n: number, out: WordColumns, at: number, w: Widths): void {
  const stride = strideOf(w);
  const { ids, lengths, weights, numeric, label, group, weight } = out;
  for (let i = 0; i < n; i++) {
    const row = at + i;
    let s = (order[from + i] as number) * stride;
    let d = row * w.ids;
    for (let k = 0; k < w.ids; k++) ids[d + k] = rec[s + k] as number;
    s += w.ids;
    d = row * w.lengths;
    for (let k = 0; k < w.lengths; k++) lengths[d + k] = rec[s + k] as number;
    s += w.lengths;
    d = row * w.weights;
    for (let k = 0; k < w.weights; k++) weights[d + k] = rec[s + k] as number;
    s += w.weights;
    d = row * w.numeric;
    for (let k = 0; k < w.numeric; k++) numeric[d + k] = rec[s + k] as number;
    s += w.numeric;
    label[row] = rec[s] as number;
    s += 1;
    if (w.group > 0) {
      group[2 * row] = rec[s] as number;
      group[2 * row + 1] = rec[s + 1] as number;
      s += 2;
    }
    if (w.weight > 0) weight[row] = rec[s] as number;
  }
}

// ---------------------------------------------------------------------------------------------

/** Shards whose rows are read together; positions [start, end) of the epoch order. */
interface Window {
  /** In ascending index order: the order its blocks are numbered in. */
  shards: number[];
  start: number;
  end: number;
  /** Blocks of the window (what its shuffle draws for). */
  blocks: number;
}

export class BatchReader {
  readonly batchSize: number;
  readonly rank: number;
  readonly worldSize: number;
  /** Rows per rank of a full batch: batchSize / worldSize. */
  readonly rowsPerRank: number;
  readonly shuffle: boolean;
  readonly grouped: boolean;
  readonly shuffleBuffer: number;
  readonly shuffleBlock: number;
  private readonly seed: number;
  private readonly defaultEpoch: number;
  private readonly lastBatch: 'keep' | 'drop';
  /** Whether every row fits in the shuffle buffer: then loaded rows are kept across epochs. */
  private readonly fits: boolean;
  /** Row shuffling (blocks of 1): windows are held as interleaved records. */
  private readonly rowRecords: boolean;
  private readonly widths: Widths;
  private readonly batch: Batch;
  private out: WordColumns;
  private capacity = 0;

  // The epoch being read.
  private windows: Window[] = [];
  private windowIndex = 0;
  private rng: (() => number) | null = null;
  /** The window whose blocks are laid out below; windows are entered in increasing order. */
  private enteredWindow = -1;

  // The entered window: its shards' columns by slot (ascending shard index), and its blocks in
  // epoch order: block p holds window positions [blockStart[p], blockStart[p + 1]), which are
  // the rows from row `blockRow[p]` of slot `blockSlot[p]` on.
  private loadedKey = '';
  private sources: WordColumns[] = [];
  /** Row shuffling: the window's rows as records; `order` is then the window's row order. */
  private records = new Int32Array(0);
  private blockCount = 0;
  private blockSlot = new Uint32Array(0);
  private blockRow = new Uint32Array(0);
  private blockStart = new Float64Array(1);
  private order = new Uint32Array(0);
  private readonly shardCache = new Map<number, WordColumns>();
  /** Grouped mode: the position where each batch starts, then the end. */
  private groupStarts: Float64Array | null = null;

  constructor(
    readonly shards: ShardSet,
    options: BatchReaderOptions,
  ) {
    const worldSize = options.worldSize ?? 1;
    const rank = options.rank ?? 0;
    if (!Number.isInteger(worldSize) || worldSize < 1) throw new BatchOptionError(`world size must be a positive integer, got ${worldSize}`);
    if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) throw new BatchOptionError(`rank must be an integer in [0, ${worldSize}), got ${rank}`);
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1) throw new BatchOptionError(`batch size must be a positive integer, got ${options.batchSize}`);
    if (options.batchSize % worldSize !== 0) {
      throw new BatchOptionError(`batch size ${options.batchSize} is not a multiple of the world size ${worldSize}; every rank gets batch size / world size rows`);
    }
    this.batchSize = options.batchSize;
    this.rank = rank;
    this.worldSize = worldSize;
    this.rowsPerRank = options.batchSize / worldSize;
    this.grouped = options.grouped ?? false;
    this.shuffle = options.shuffle ?? !this.grouped;
    this.seed = options.seed ?? 0;
    this.defaultEpoch = options.epoch ?? 0;
    this.lastBatch = options.lastBatch ?? 'keep';
    if (this.grouped) {
      if (this.shuffle) throw new BatchOptionError('grouped evaluation batches are read in file order: do not shuffle them');
      if (!shards.hasGroup) throw new BatchOptionError(`model \`${shards.manifest.model}\` has no group column, so its rows cannot be read in groups`);
      if (!shards.manifest.groupsContiguous) {
        throw new BatchOptionError(`${shards.dir}: the rows of a group are not contiguous in these shards, so grouped batches cannot be read; write the rows sorted by group`);
      }
    }
    const shuffleBuffer = options.shuffleBuffer ?? defaultShuffleBuffer(shards);
    if (!Number.isInteger(shuffleBuffer) || shuffleBuffer < 1) throw new BatchOptionError(`shuffle buffer must be a positive number of rows, got ${shuffleBuffer}`);
    const shuffleBlock = options.shuffleBlock ?? DEFAULT_SHUFFLE_BLOCK;
    if (!Number.isInteger(shuffleBlock) || shuffleBlock < 1 || shuffleBlock > 0xffffffff) {
      throw new BatchOptionError(`shuffle block must be a positive number of rows, got ${shuffleBlock}`);
    }
    this.shuffleBuffer = shuffleBuffer;
    this.shuffleBlock = shuffleBlock;
    this.fits = shuffleBuffer >= shards.rows;
    this.rowRecords = this.shuffle && shuffleBlock === 1;
    const layout = shards.manifest.layout;
    this.widths = {
      ids: layout.idsWidth,
      lengths: layout.lengthsWidth,
      weights: layout.weightsWidth,
      numeric: layout.numericWidth,
      group: shards.hasGroup ? 2 : 0,
      weight: shards.hasWeight ? 1 : 0,
    };
    this.batch = this.allocateBatch(this.rowsPerRank);
    this.out = wordColumns(this.batch);
  }

  /** Batches this rank reads in one epoch (every rank reads the same number). */
  batchCount(): number {
    const rows = this.shards.rows;
    if (this.grouped) {
      const total = this.groupBatchStarts().length - 1;
      return Math.floor(total / this.worldSize) + (this.rank < total % this.worldSize ? 1 : 0);
    }
    const full = Math.floor(rows / this.batchSize);
    return this.lastBatch === 'keep' && rows % this.batchSize > 0 ? full + 1 : full;
  }

  /**
   * The batches of one epoch for this rank. The same Batch object is yielded every time, refilled:
   * copy what must outlive the next step.
   */
  *batches(epoch: number = this.defaultEpoch): Generator<Batch, void, undefined> {
    this.planEpoch(epoch);
    if (this.grouped) {
      const starts = this.groupBatchStarts();
      // Sized once for the largest batch (a group larger than the batch size), not grown later.
      let largest = 0;
      for (let b = 1; b < starts.length; b++) largest = Math.max(largest, (starts[b] as number) - (starts[b - 1] as number));
      this.ensureCapacity(largest);
      for (let b = this.rank; b + 1 < starts.length; b += this.worldSize) {
        this.fill(starts[b] as number, starts[b + 1] as number);
        yield this.batch;
      }
      return;
    }
    const rows = this.shards.rows;
    const full = Math.floor(rows / this.batchSize);
    const r = this.rank;
    const w = this.worldSize;
    for (let b = 0; b < full; b++) {
      const base = b * this.batchSize;
      this.fill(base + r * this.rowsPerRank, base + (r + 1) * this.rowsPerRank);
      yield this.batch;
    }
    const rest = rows - full * this.batchSize;
    if (rest > 0 && this.lastBatch === 'keep') {
      // The partial batch is split like the full ones; a rank may get no rows of it.
      const base = full * this.batchSize;
      this.fill(base + Math.floor((r * rest) / w), base + Math.floor(((r + 1) * rest) / w));
      yield this.batch;
    }
  }

  /** Blocks of a shard of `rows` rows: the last may be shorter. */
  private blocksOf(rows: number): number {
    return this.shuffle ? Math.ceil(rows / this.shuffleBlock) : Math.min(rows, 1);
  }

  /** The epoch's windows (docs/shards.md, "Epoch order"): shard order, then shards taken together. */
  private planEpoch(epoch: number): void {
    const set = this.shards;
    const count = set.shardCount;
    const rowsOf = (s: number): number => set.manifest.shards[s]?.rows ?? 0;
    this.rng = this.shuffle ? epochRandom(this.seed, epoch) : null;
    this.windows = [];
    this.windowIndex = 0;
    this.enteredWindow = -1;
    const push = (shards: number[], start: number): number => {
      shards.sort((a, b) => a - b);
      let rows = 0;
      let blocks = 0;
      for (const s of shards) {
        rows += rowsOf(s);
        blocks += this.blocksOf(rowsOf(s));
      }
      this.windows.push({ shards, start, end: start + rows, blocks });
      return start + rows;
    };
    if (this.shuffle && this.fits) {
      push([...Array(count).keys()], 0);
      return;
    }
    const shardOrder = new Uint32Array(count).map((_, i) => i);
    if (this.rng !== null) shuffleInPlace(shardOrder, count, this.rng);
    let position = 0;
    let current: number[] = [];
    let currentRows = 0;
    for (const s of shardOrder) {
      const rows = rowsOf(s);
      if (current.length > 0 && (!this.shuffle || currentRows + rows > this.shuffleBuffer)) {
        position = push(current, position);
        current = [];
        currentRows = 0;
      }
      current.push(s);
      currentRows += rows;
    }
    if (current.length > 0) push(current, position);
  }

  /** Copies epoch positions [start, end) into the batch; ranges arrive in increasing order. */
  private fill(start: number, end: number): void {
    const n = end - start;
    this.ensureCapacity(n);
    this.batch.size = n;
    let at = 0;
    let position = start;
    while (position < end) {
      while ((this.windows[this.windowIndex]?.end ?? Infinity) <= position) this.windowIndex++;
      const window = this.windows[this.windowIndex];
      if (window === undefined) throw new Error(`internal: position ${position} past the epoch`);
      this.enterWindow(this.windowIndex);
      const stop = Math.min(end, window.end) - window.start;
      let local = position - window.start;
      if (this.rowRecords) {
        gatherRecords(this.records, this.order, local, stop - local, this.out, at, this.widths);
        at += stop - local;
        position = window.start + stop;
        continue;
      }
      const blockStart = this.blockStart;
      let p = this.blockAt(local);
      while (local < stop) {
        const first = blockStart[p] as number;
        const take = Math.min(stop, blockStart[p + 1] as number) - local;
        const src = this.sources[this.blockSlot[p] as number] as WordColumns;
        copyRows(src, (this.blockRow[p] as number) + local - first, take, this.out, at, this.widths);
        at += take;
        local += take;
        p++;
      }
      position = window.start + stop;
    }
  }

  /** The block of the entered window holding window position `local`: binary search. */
  private blockAt(local: number): number {
    let lo = 0;
    let hi = this.blockCount - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((this.blockStart[mid] as number) <= local) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Loads window `index` if it is not in memory and lays out its blocks in epoch order. */
  private enterWindow(index: number): void {
    if (this.enteredWindow === index) return;
    const window = this.windows[index];
    if (window === undefined) throw new Error('internal: no such window');
    const key = window.shards.join(',');
    if (key !== this.loadedKey) {
      this.sources = []; // lets the last window's shards be freed while these load
      if (this.rowRecords) this.loadRecords(window);
      else this.sources = window.shards.map((s) => this.shardColumns(s));
      this.loadedKey = key;
    }
    // Windows this rank has no rows in draw their shuffles too, so every rank draws alike.
    if (this.rng !== null) {
      for (let skipped = this.enteredWindow + 1; skipped < index; skipped++) {
        const w = this.windows[skipped];
        if (w !== undefined) for (let i = w.blocks - 1; i > 0; i--) this.rng();
      }
    }
    if (this.rowRecords) {
      const n = window.blocks;
      if (this.order.length < n) this.order = new Uint32Array(n);
      for (let i = 0; i < n; i++) this.order[i] = i;
      shuffleInPlace(this.order, n, this.rng as () => number);
    } else {
      this.layOutBlocks(window);
    }
    this.enteredWindow = index;
  }

  /** Numbers the window's blocks (shards ascending, then rows), shuffles them, and lays them out. */
  private layOutBlocks(window: Window): void {
    const m = window.blocks;
    if (this.order.length < m) {
      this.order = new Uint32Array(m);
      this.blockSlot = new Uint32Array(m);
      this.blockRow = new Uint32Array(m);
      this.blockStart = new Float64Array(m + 1);
    }
    const order = this.order;
    for (let i = 0; i < m; i++) order[i] = i;
    if (this.rng !== null) shuffleInPlace(order, m, this.rng);
    // The first block number of each slot, then m.
    const rows = window.shards.map((s) => this.shards.manifest.shards[s]?.rows ?? 0);
    const firstBlock = new Float64Array(rows.length + 1);
    rows.forEach((r, k) => (firstBlock[k + 1] = (firstBlock[k] as number) + this.blocksOf(r)));
    // Unshuffled, a shard is one block.
    const size = this.shuffle ? this.shuffleBlock : Infinity;
    let position = 0;
    for (let p = 0; p < m; p++) {
      const block = order[p] as number;
      let slot = 0;
      let hi = rows.length - 1;
      while (slot < hi) {
        const mid = (slot + hi + 1) >>> 1;
        if ((firstBlock[mid] as number) <= block) slot = mid;
        else hi = mid - 1;
      }
      const row = this.shuffle ? (block - (firstBlock[slot] as number)) * size : 0;
      this.blockSlot[p] = slot;
      this.blockRow[p] = row;
      this.blockStart[p] = position;
      position += Math.min(size, (rows[slot] as number) - row);
    }
    this.blockStart[m] = position;
    this.blockCount = m;
  }

  /** One shard's columns as words, from the file's bytes; kept while every row fits. */
  private shardColumns(index: number): WordColumns {
    const cached = this.shardCache.get(index);
    if (cached !== undefined) return cached;
    const columns = wordColumns(this.shards.load(index));
    if (this.fits) this.shardCache.set(index, columns);
    return columns;
  }

  /** Row shuffling: a window's rows as records, shards in ascending index order. */
  private loadRecords(window: Window): void {
    const needed = (window.end - window.start) * strideOf(this.widths);
    if (this.records.length < needed) {
      this.records = new Int32Array(0);
      this.records = new Int32Array(needed);
    }
    let at = 0;
    for (const s of window.shards) {
      const shard = this.shards.load(s);
      interleave(wordColumns(shard), shard.rows, this.records, at, this.widths);
      at += shard.rows;
    }
  }

  /** Grows the batch's arrays (same Batch object) to hold `rows` rows. */
  private ensureCapacity(rows: number): void {
    if (rows <= this.capacity) return;
    Object.assign(this.batch, this.allocateBatch(rows));
    this.out = wordColumns(this.batch);
  }

  private allocateBatch(rows: number): Batch {
    this.capacity = rows;
    const w = this.widths;
    const weight = new Float32Array(rows);
    // Without a weight column every example weighs 1, as EncodedRow says.
    if (w.weight === 0) weight.fill(1);
    return {
      size: 0,
      ids: new Int32Array(rows * w.ids),
      lengths: new Int32Array(rows * w.lengths),
      weights: new Float32Array(rows * w.weights),
      numeric: new Float32Array(rows * w.numeric),
      label: new Float32Array(rows),
      group: new Float64Array(rows),
      weight,
    };
  }

  /**
   * Grouped mode: greedy batches of whole groups in file order, each at most `rowsPerRank` rows
   * unless one group alone is larger (it gets a batch of its own). Computed once per reader.
   */
  private groupBatchStarts(): Float64Array {
    if (this.groupStarts !== null) return this.groupStarts;
    const set = this.shards;
    const cap = this.rowsPerRank;
    const starts: number[] = [0];
    let batchStart = 0;
    let groupStart = 0;
    let previous = Number.NaN;
    let position = 0;
    for (let s = 0; s < set.shardCount; s++) {
      const group = set.load(s).group;
      if (group === null) throw new ShardError(`${set.dir}: shard ${s} has no group column`);
      for (let i = 0; i < group.length; i++, position++) {
        const g = group[i] as number;
        if (position > 0 && g !== previous) groupStart = position;
        previous = g;
        // The group that started at groupStart does not fit after the batch's earlier groups.
        if (position + 1 - batchStart > cap && groupStart > batchStart) {
          starts.push(groupStart);
          batchStart = groupStart;
        }
      }
    }
    if (set.rows > batchStart) starts.push(set.rows);
    this.groupStarts = Float64Array.from(starts);
    return this.groupStarts;
  }
}

/** Every row when the shards fit in a quarter of RAM, else as many rows as do. */
function defaultShuffleBuffer(set: ShardSet): number {
  const bytes = set.manifest.shards.reduce((sum, s) => sum + s.bytes, 0);
  const budget = totalmem() / 4;
  if (bytes <= budget || set.rows === 0) return Math.max(1, set.rows);
  return Math.max(1, Math.floor((budget / bytes) * set.rows));
}
