// `wndc bench-data SHARDS`: how fast batches come out of a shard folder. One warm-up epoch, then
// timed epochs; prints the median rows/s and MB/s, the machine and the shard layout.

import { cpus } from 'node:os';
import { BatchOptionError, BatchReader, DEFAULT_SHUFFLE_BLOCK } from '../runtime/data/batches.js';
import { openShards, ShardError, type ShardSet } from '../runtime/data/shards.js';
import { EXIT, median, UsageError, wholeNumberFlag, type CliIO } from './io.js';

export interface BenchDataOptions {
  batchSize?: string | number;
  /** Timed epochs (after one warm-up epoch). */
  epochs?: string | number;
  shuffle?: boolean;
  seed?: string | number;
  /** Rows per shuffled block (1 shuffles rows); the reader's default when absent. */
  shuffleBlock?: string | number;
}

/** Bytes of one encoded row in the shards (and in a batch). */
export function bytesPerRow(set: ShardSet): number {
  const l = set.manifest.layout;
  return 4 * (l.idsWidth + l.lengthsWidth + l.weightsWidth + l.numericWidth) + 4 + (set.hasGroup ? 8 : 0) + (set.hasWeight ? 4 : 0);
}

function layoutLine(set: ShardSet): string {
  const l = set.manifest.layout;
  const parts = [`ids ${l.idsWidth} x int32`];
  if (l.lengthsWidth > 0) parts.push(`lengths ${l.lengthsWidth} x int32`);
  if (l.weightsWidth > 0) parts.push(`weights ${l.weightsWidth} x float32`);
  if (l.numericWidth > 0) parts.push(`numeric ${l.numericWidth} x float32`);
  parts.push('label float32');
  if (set.hasGroup) parts.push('group float64');
  if (set.hasWeight) parts.push('weight float32');
  return `${parts.join(', ')} (${bytesPerRow(set)} bytes a row)`;
}

function millions(x: number): string {
  return `${(x / 1e6).toFixed(2)} M`;
}

export async function benchDataCommand(dir: string, opts: BenchDataOptions, io: CliIO): Promise<number> {
  const batchSize = wholeNumberFlag('--batch-size', opts.batchSize, 4096, 1);
  const epochs = wholeNumberFlag('--epochs', opts.epochs, 5, 1);
  const seed = wholeNumberFlag('--seed', opts.seed, 0, 0);
  const shuffle = opts.shuffle ?? true;
  const shuffleBlock = wholeNumberFlag('--shuffle-block', opts.shuffleBlock, DEFAULT_SHUFFLE_BLOCK, 1);
  let set: ShardSet;
  let reader: BatchReader;
  try {
    set = openShards(dir);
    reader = new BatchReader(set, { batchSize, shuffle, seed, shuffleBlock });
  } catch (e) {
    if (e instanceof ShardError) throw new UsageError(e.message, EXIT.failure);
    if (e instanceof BatchOptionError) throw new UsageError(e.message);
    throw e;
  }
  const m = set.manifest;
  const fileBytes = m.shards.reduce((sum, s) => sum + s.bytes, 0);
  const cpu = cpus();
  io.stdout(`shards: ${dir} (model \`${m.model}\`, ${m.rows} rows in ${m.shards.length} shards, ${(fileBytes / 1e6).toFixed(1)} MB)\n`);
  io.stdout(`layout: ${layoutLine(set)}\n`);
  io.stdout(`machine: ${cpu[0]?.model.trim() ?? 'unknown CPU'}, ${cpu.length} cores, node ${process.version}; one thread reads\n`);
  const blocks = reader.shuffleBlock === 1 ? 'rows' : `blocks of ${reader.shuffleBlock} rows`;
  const order = shuffle ? `shuffled ${blocks} (seed ${seed}, buffer ${reader.shuffleBuffer} rows)` : 'in file order';
  io.stdout(`batches: ${batchSize} rows, ${order}, ${reader.batchCount()} an epoch\n`);

  const wall: number[] = [];
  const cpuTime: number[] = [];
  let checksum = 0;
  for (let epoch = 0; epoch <= epochs; epoch++) {
    const cpuStart = process.cpuUsage();
    const start = process.hrtime.bigint();
    let rows = 0;
    for (const batch of reader.batches(epoch)) {
      rows += batch.size;
      // Touch the batch so no engine could skip the copy.
      checksum += batch.label[0] ?? 0;
    }
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    const used = process.cpuUsage(cpuStart);
    if (epoch === 0) continue; // warm-up: loads the shards and lets the JIT settle
    wall.push(rows / seconds);
    cpuTime.push(rows / ((used.user + used.system) / 1e6));
  }
  const rowsPerSecond = median(wall);
  const perRow = bytesPerRow(set);
  io.stdout(`passes: 1 warm-up + ${epochs} timed epochs (label checksum ${checksum})\n`);
  io.stdout(`rows/s: ${millions(rowsPerSecond)} (median; min ${millions(Math.min(...wall))}, max ${millions(Math.max(...wall))})\n`);
  io.stdout(`MB/s: ${((rowsPerSecond * perRow) / 1e6).toFixed(1)}\n`);
  // Per CPU second: what one uncontended core would do, when other processes share this one.
  io.stdout(`rows per CPU second: ${millions(median(cpuTime))}\n`);
  return EXIT.ok;
}
