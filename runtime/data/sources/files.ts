// Which files an input names: one file, a glob (`data/*.csv`, `logs/**/part-*.parquet`) or a
// directory, and in which format they are. Files are always read in the same order (sorted by
// path, code unit by code unit), whatever order the file system lists them in.

import { readdirSync, statSync } from 'node:fs';
import { join, sep } from 'node:path';
import { DataError, type RawFormat } from '../contracts.js';

/** File name endings of each format (compressed CSV/TSV is read through DuckDB). */
export const FORMAT_EXTENSIONS: Record<RawFormat, readonly string[]> = {
  csv: ['.csv', '.csv.gz'],
  tsv: ['.tsv', '.tsv.gz', '.tab'],
  parquet: ['.parquet', '.pq'],
  arrow: ['.arrow', '.arrows', '.feather', '.ipc'],
  tfrecord: ['.tfrecord', '.tfrecords'],
};

export function formatOfPath(path: string): RawFormat | null {
  const lower = path.toLowerCase();
  for (const [format, extensions] of Object.entries(FORMAT_EXTENSIONS) as [RawFormat, readonly string[]][]) {
    if (extensions.some((extension) => lower.endsWith(extension))) return format;
  }
  return null;
}

export interface ResolvedInput {
  files: string[];
  format: RawFormat;
}

/** The files of `input` and their format; a DataError (row 0) when there are none or it is unclear. */
export function resolveInput(input: string, format?: RawFormat): ResolvedInput {
  let files: string[];
  let what: string;
  if (hasGlob(input)) {
    // The pattern names the files: any extension goes when the format is given.
    files = expandGlob(input).filter((file) => !isHidden(file));
    what = 'the pattern matches';
  } else {
    const listed = filesOfPath(input);
    if (listed === null) throw new DataError({ file: input, row: 0 }, null, 'no such file or directory');
    // A directory may hold other files (_SUCCESS, README): keep those of a data format.
    files = listed.isDirectory ? listed.files.filter((file) => (format === undefined ? formatOfPath(file) !== null : formatOfPath(file) === format)) : listed.files;
    what = 'the directory holds';
  }
  if (files.length === 0) {
    const kinds = format === undefined ? `data files (${formatList()})` : `${format} files (${FORMAT_EXTENSIONS[format].join(', ')})`;
    throw new DataError({ file: input, row: 0 }, null, `${what} no ${kinds}`);
  }
  if (format !== undefined) return { files, format };
  const unknown = files.find((file) => formatOfPath(file) === null);
  if (unknown !== undefined) {
    throw new DataError({ file: unknown, row: 0 }, null, `cannot tell the format from the file name; name it with --format (${formatList()})`);
  }
  const formats = [...new Set(files.map((file) => formatOfPath(file)!))];
  if (formats.length > 1) throw new DataError({ file: input, row: 0 }, null, `the input mixes formats (${formats.join(', ')}); name one with --format`);
  return { files, format: formats[0]! };
}

function formatList(): string {
  return (Object.keys(FORMAT_EXTENSIONS) as RawFormat[]).map((format) => FORMAT_EXTENSIONS[format][0]).join(', ');
}

/** The sorted files under `path` (recursively for a directory); null when it does not exist. */
function filesOfPath(path: string): { files: string[]; isDirectory: boolean } | null {
  let stats;
  try {
    stats = statSync(path);
  } catch {
    return null;
  }
  if (!stats.isDirectory()) return { files: [path], isDirectory: false };
  const out: string[] = [];
  walk(path, out);
  return { files: out.sort(compareCodeUnits), isDirectory: true };
}

function walk(directory: string, out: string[]): void {
  for (const entry of readdirSync(directory, { withFileTypes: true })) {
    if (entry.name.startsWith('.') || entry.name.startsWith('_')) continue;
    const path = join(directory, entry.name);
    if (entry.isDirectory()) walk(path, out);
    else if (entry.isFile() || entry.isSymbolicLink()) out.push(path);
  }
}

function isHidden(file: string): boolean {
  const name = file.slice(file.lastIndexOf(sep) + 1);
  return name.startsWith('.') || name.startsWith('_');
}

export function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function hasGlob(input: string): boolean {
  return /[*?[]/.test(input);
}

/**
 * Expands `*` (any characters but `/`), `?` (one character), `[abc]` (a class) and `**` (any
 * number of directories). Node 20 has no fs.glob, so this small matcher walks the tree itself.
 */
export function expandGlob(pattern: string): string[] {
  const absolute = pattern.startsWith('/');
  const segments = pattern.split('/').filter((segment, i) => segment.length > 0 || i === 0);
  let bases: string[] = [absolute ? '/' : '.'];
  if (absolute || segments[0] === '') segments.shift();
  // Leading literal segments are a base directory, not something to match.
  let prefix = '';
  while (segments.length > 1 && !hasGlob(segments[0]!)) {
    const segment = segments.shift()!;
    prefix = prefix === '' ? segment : join(prefix, segment);
  }
  if (prefix !== '') bases = [absolute ? join('/', prefix) : prefix];
  const out: string[] = [];
  for (const base of bases) matchSegments(base, segments, out, !absolute && prefix === '');
  return [...new Set(out)].sort(compareCodeUnits);
}

function matchSegments(directory: string, segments: string[], out: string[], relativeToCwd: boolean): void {
  const [segment, ...rest] = segments;
  if (segment === undefined) return;
  const entries = safeReaddir(directory);
  const pathOf = (name: string) => (relativeToCwd && directory === '.' ? name : join(directory, name));
  if (segment === '**') {
    matchSegments(directory, rest, out, relativeToCwd);
    for (const entry of entries) {
      if (entry.isDirectory() && !entry.name.startsWith('.')) matchSegments(pathOf(entry.name), segments, out, false);
    }
    return;
  }
  const matcher = segmentRegExp(segment);
  for (const entry of entries) {
    if (!matcher.test(entry.name)) continue;
    if (entry.name.startsWith('.') && !segment.startsWith('.')) continue;
    const path = pathOf(entry.name);
    if (rest.length === 0) {
      if (entry.isFile() || entry.isSymbolicLink()) out.push(path);
    } else if (entry.isDirectory() || entry.isSymbolicLink()) {
      matchSegments(path, rest, out, false);
    }
  }
}

function safeReaddir(directory: string) {
  try {
    return readdirSync(directory, { withFileTypes: true });
  } catch {
    return [];
  }
}

function segmentRegExp(segment: string): RegExp {
  let source = '';
  for (let i = 0; i < segment.length; i++) {
    const c = segment[i]!;
    if (c === '*') source += '[^/]*';
    else if (c === '?') source += '[^/]';
    else if (c === '[') {
      const end = segment.indexOf(']', i + 1);
      if (end < 0) source += '\\[';
      else {
        const body = segment.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\');
        source += `[${body}]`;
        i = end;
      }
    } else source += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}
