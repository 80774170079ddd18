// `wndc synth SPEC --rows N --out DIR`: synthetic raw rows for a spec (runtime/data/synth.ts),
// written as CSV or Parquet, with the ground truth's reference scores on stderr.

import { mkdirSync } from 'node:fs';
import { basename, join, relative, resolve } from 'node:path';
import { mapK, synthSource, writeCsv, writeParquet } from '../runtime/data/synth.js';
import { compileSpecFile } from './commands.js';
import { EXIT, UsageError, type CliIO } from './io.js';
import { encodeToFolder } from './preprocess.js';

export interface SynthCommandOptions {
  rows?: string | number;
  out?: string;
  /** Default: the spec's `train.seed`. */
  seed?: string | number;
  /** csv (default), parquet, or shards (encoded, ready to train: OUT/train and with a fraction OUT/valid). */
  format?: string;
  /** Shards only: the share of groups split off into OUT/valid. */
  validFraction?: string;
}

export const SYNTH_FORMATS = ['csv', 'parquet', 'shards'] as const;
export type SynthFormat = (typeof SYNTH_FORMATS)[number];

/** A whole number from a flag: digits only (underscores allowed as separators), within [min, 2^53). */
function wholeNumber(flag: string, value: string | number, min: number): number {
  const text = String(value).replace(/_/g, '');
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`${flag} takes a whole number${min > 0 ? ` of at least ${min}` : ''}, not ${JSON.stringify(String(value))}`);
  return n;
}

export function parseSynthFormat(value: string | undefined): SynthFormat {
  if (value === undefined) return 'csv';
  if ((SYNTH_FORMATS as readonly string[]).includes(value)) return value as SynthFormat;
  throw new UsageError(`--format takes ${SYNTH_FORMATS.map((f) => `\`${f}\``).join(' or ')}, not ${JSON.stringify(value)}`);
}

export async function synthCommand(file: string, opts: SynthCommandOptions, io: CliIO): Promise<number> {
  if (opts.rows === undefined) throw new UsageError('--rows is required: how many rows to synthesize');
  if (opts.out === undefined) throw new UsageError('--out is required: the folder to write the rows to');
  const rows = wholeNumber('--rows', opts.rows, 1);
  const format = parseSynthFormat(opts.format);
  const ir = compileSpecFile(file, io);
  if (ir === undefined) return EXIT.diagnostics;
  const seed = opts.seed === undefined ? ir.train.seed : wholeNumber('--seed', opts.seed, 0);
  const outDir = resolve(io.cwd, opts.out);
  mkdirSync(outDir, { recursive: true });
  const started = performance.now();
  const source = synthSource(ir, { rows, seed });
  if (format === 'shards') {
    const fraction = opts.validFraction === undefined ? 0 : Number(opts.validFraction);
    if (!(fraction >= 0 && fraction < 1)) throw new UsageError(`--valid-fraction takes a number in [0, 1), not ${JSON.stringify(opts.validFraction)}`);
    const report = await encodeToFolder(ir, { train: source, validFraction: fraction, maxBadRows: 0 }, outDir);
    const seconds = (performance.now() - started) / 1000;
    io.stderr(`wrote ${relative(io.cwd, outDir) || '.'}: ${report.trainRows} train rows${fraction > 0 ? `, ${report.validRows} validation rows` : ''} in ${seconds.toFixed(1)} s (seed ${seed})\n`);
  } else {
    if (opts.validFraction !== undefined) throw new UsageError('--valid-fraction applies to --format shards only');
    const path = join(outDir, `${ir.model}.${format}`);
    const written = format === 'csv' ? await writeCsv(source, ir.columns, path) : await writeParquet(source, ir.columns, path);
    const seconds = (performance.now() - started) / 1000;
    const shown = relative(io.cwd, path) || basename(path);
    io.stderr(`wrote ${shown}: ${written.rows} rows, ${megabytes(written.bytes)} MB in ${seconds.toFixed(1)} s (seed ${seed})\n`);
  }
  const report = source.tally.report(mapK(ir));
  const map = report.map === null ? '' : `, map@${report.map.k} ${report.map.truth.toFixed(3)} (chance ${report.map.chance.toFixed(3)})`;
  io.stderr(`ground truth on the first ${report.rows} rows: auc ${report.auc.toFixed(3)} (chance 0.500)${map}, click rate ${report.clickRate.toFixed(3)}\n`);
  return EXIT.ok;
}

function megabytes(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}
