// `wndc preprocess SPEC --data IN --out DIR [--valid IN2 | --valid-fraction f]`: raw files ->
// the spec's compiled transforms -> encoded shards in DIR/train (and DIR/valid), manifest last.

import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ModelIR } from '../compiler/ir.js';
import { DataError, type RawFormat, type RawSource } from '../runtime/data/contracts.js';
import { preprocess, TooManyBadRowsError, type EncodedSink, type PreprocessInputs, type PreprocessReport } from '../runtime/data/preprocess.js';
import { defaultThreads } from '../runtime/data/encode-pool.js';
import { DEFAULT_ROWS_PER_SHARD, ShardWriter } from '../runtime/data/shards.js';
import { openRawSource, type SourceOptions } from '../runtime/data/sources/open.js';
import { openSqlSource } from '../runtime/data/sources/sql.js';
import { compileSpecFile } from './commands.js';
import { EXIT, UsageError, wholeNumberFlag, type CliIO } from './io.js';
import { readVersion } from './version.js';

export interface PreprocessFlags {
  data?: string;
  /** A DuckDB query (or `@file` holding one) instead of --data. */
  sql?: string;
  validSql?: string;
  out?: string;
  valid?: string;
  validFraction?: string;
  format?: string;
  maxBadRows?: string;
  rowsPerShard?: string;
  /** Threads encoding rows (default: the available cores; 1 encodes on the main thread). */
  threads?: string;
  header?: boolean;
  columns?: string;
  delimiter?: string;
  listSeparator?: string;
}

const FORMATS: readonly RawFormat[] = ['csv', 'tsv', 'parquet', 'arrow', 'tfrecord'];

export function sourceOptions(flags: PreprocessFlags): SourceOptions {
  const options: SourceOptions = {};
  if (flags.format !== undefined) {
    if (!(FORMATS as readonly string[]).includes(flags.format)) throw new UsageError(`--format takes one of ${FORMATS.join(', ')}, not ${JSON.stringify(flags.format)}`);
    options.format = flags.format as RawFormat;
  }
  if (flags.header === false) options.header = false;
  if (flags.columns !== undefined) options.columns = flags.columns.split(',').map((c) => c.trim());
  if (flags.delimiter !== undefined) options.delimiter = flags.delimiter === '\\t' ? '\t' : flags.delimiter;
  if (flags.listSeparator !== undefined) options.listSeparator = flags.listSeparator;
  return options;
}

/** A shard folder as an EncodedSink: aborting removes every shard written so far. */
function shardSink(dir: string, ir: ModelIR, split: 'train' | 'valid', rowsPerShard: number): EncodedSink {
  const writer = ShardWriter.forModel(dir, ir, { split, rowsPerShard, createdBy: `wndc ${readVersion()} preprocess` });
  return {
    appendRows: (rows, from, to) => writer.appendRows(rows, from, to),
    finish: async (details) => writer.finish(details).rows,
    abort: async () => {
      for (const f of readdirSync(dir)) if (/^\.?part-\d+\.arrow(\.tmp)?$/.test(f)) rmSync(join(dir, f), { force: true });
    },
  };
}

/** Encodes `inputs` into dir/train, and into dir/valid when there is a validation source or fraction. */
export async function encodeToFolder(ir: ModelIR, inputs: PreprocessInputs, dir: string, rowsPerShard = DEFAULT_ROWS_PER_SHARD): Promise<PreprocessReport> {
  const withValid = inputs.valid !== undefined || (inputs.validFraction ?? 0) > 0;
  return preprocess(ir, inputs, {
    train: shardSink(join(dir, 'train'), ir, 'train', rowsPerShard),
    ...(withValid ? { valid: shardSink(join(dir, 'valid'), ir, 'valid', rowsPerShard) } : {}),
  });
}

export async function preprocessCommand(file: string, flags: PreprocessFlags, io: CliIO): Promise<number> {
  if ((flags.data === undefined) === (flags.sql === undefined)) throw new UsageError('preprocess needs either --data (the raw file, glob or folder to read) or --sql (a DuckDB query)');
  if (flags.valid !== undefined && flags.validSql !== undefined) throw new UsageError('give either --valid or --valid-sql, not both');
  if (flags.out === undefined) throw new UsageError('preprocess needs --out: the folder the shards go to');
  if ((flags.valid !== undefined || flags.validSql !== undefined) && flags.validFraction !== undefined) throw new UsageError('give either --valid or --valid-fraction, not both');
  const fraction = flags.validFraction === undefined ? undefined : Number(flags.validFraction);
  if (fraction !== undefined && !(fraction > 0 && fraction < 1)) throw new UsageError(`--valid-fraction takes a number between 0 and 1, not ${JSON.stringify(flags.validFraction)}`);
  const maxBadRows = wholeNumberFlag('--max-bad-rows', flags.maxBadRows, 0, 0);
  const rowsPerShard = wholeNumberFlag('--rows-per-shard', flags.rowsPerShard, DEFAULT_ROWS_PER_SHARD, 1);
  const threads = wholeNumberFlag('--threads', flags.threads, defaultThreads(), 1);
  const options = sourceOptions(flags);

  const ir = compileSpecFile(file, io);
  if (ir === undefined) return EXIT.diagnostics;
  const out = resolve(io.cwd, flags.out);
  const sources: RawSource[] = [];
  try {
    const open = async (data: string | undefined, sql: string | undefined) =>
      sql !== undefined ? openSqlSource(readQuery(sql, io), ir, options) : data !== undefined ? openRawSource(resolve(io.cwd, data), ir, options) : undefined;
    const train = (await open(flags.data, flags.sql))!;
    sources.push(train);
    const valid = await open(flags.valid, flags.validSql);
    if (valid !== undefined) sources.push(valid);
    const started = Date.now();
    const report = await encodeToFolder(
      ir,
      { train, ...(valid !== undefined ? { valid } : {}), ...(fraction !== undefined ? { validFraction: fraction } : {}), maxBadRows, threads },
      out,
      rowsPerShard,
    );
    printReport(report, out, valid !== undefined || fraction !== undefined, (Date.now() - started) / 1000, io);
    return EXIT.ok;
  } catch (e) {
    if (e instanceof DataError || e instanceof TooManyBadRowsError) {
      io.stderr(`wndc: bad data: ${e.message}\n`);
      if (e instanceof DataError && maxBadRows === 0) io.stderr('(use --max-bad-rows N to skip and count up to N such rows)\n');
      return EXIT.failure;
    }
    throw e;
  } finally {
    await Promise.all(sources.map((s) => s.close()));
  }
}

/** `--sql "SELECT ..."`, or `--sql @query.sql` to read the query from a file. */
function readQuery(value: string, io: CliIO): string {
  if (!value.startsWith('@')) return value;
  const path = resolve(io.cwd, value.slice(1));
  try {
    return readFileSync(path, 'utf8');
  } catch {
    throw new UsageError(`cannot read the query file ${value.slice(1)}`);
  }
}

function printReport(report: PreprocessReport, out: string, withValid: boolean, seconds: number, io: CliIO): void {
  const rows = report.trainRows + report.validRows;
  io.stderr(`encoded ${rows.toLocaleString('en-US')} rows in ${seconds.toFixed(1)} s (${Math.round(rows / Math.max(seconds, 1e-9)).toLocaleString('en-US')} rows/s)\n`);
  io.stdout(`train: ${report.trainRows.toLocaleString('en-US')} rows -> ${join(out, 'train')}\n`);
  if (withValid) io.stdout(`valid: ${report.validRows.toLocaleString('en-US')} rows -> ${join(out, 'valid')}\n`);
  if (report.badRows > 0) {
    io.stderr(`skipped ${report.badRows} bad row${report.badRows === 1 ? '' : 's'}, e.g.:\n${report.badRowSamples.map((s) => `  ${s}`).join('\n')}\n`);
  }
  for (const [feature, counts] of Object.entries(report.counters)) {
    io.stderr(`  ${feature}: ${Object.entries(counts).map(([k, v]) => `${v.toLocaleString('en-US')} ${k}`).join(', ')}\n`);
  }
}
