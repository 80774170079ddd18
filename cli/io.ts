// What a command needs from the outside world, so tests can run commands in-process and read
// their output: results go to stdout, diagnostics and progress to stderr.

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { formatOfPath, type SourceFormat } from '../compiler/compile.js';
import type { Diagnostic } from '../compiler/diagnostics.js';
import { diagnosticToJson, renderDiagnostic, summarize } from '../compiler/render.js';

export interface CliIO {
  stdout(text: string): void;
  stderr(text: string): void;
  cwd: string;
  /** Colour diagnostics (a terminal, not CI, NO_COLOR unset). */
  color: boolean;
  /** Live progress bars (stderr is a terminal, not CI); absent or false: plain progress lines. */
  interactive?: boolean;
}

export const EXIT = { ok: 0, diagnostics: 1, usage: 2, failure: 3 } as const;

/** A user mistake in the command line or its files: printed as one clear line, never a stack trace. */
export class UsageError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT.usage,
  ) {
    super(message);
  }
}

/** A whole-number flag (digits only), at least `min`; `fallback` when the flag is absent. */
export function wholeNumberFlag(flag: string, value: string | number | undefined, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  const n = typeof value === 'number' ? value : /^\d+$/.test(value.trim()) ? Number(value) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`${flag} takes ${min === 0 ? 'a whole number' : 'a positive integer'}, not ${JSON.stringify(String(value))}`);
  return n;
}

/** The median; the mean of the middle two for an even count. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export interface SpecFile {
  /** As the user wrote it (used in diagnostics). */
  path: string;
  absolute: string;
  source: string;
  format: SourceFormat;
}

export function readSpec(path: string, io: CliIO): SpecFile {
  const format = formatOfPath(path);
  if (format === undefined) throw new UsageError(`cannot tell the format of ${JSON.stringify(path)}: name it *.wnd, *.yaml or *.yml`);
  const absolute = resolve(io.cwd, path);
  let source: string;
  try {
    source = readFileSync(absolute, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(code === 'ENOENT' ? `no such file: ${path}` : code === 'EISDIR' ? `${path} is a folder; give a model file` : `cannot read ${path}: ${(e as Error).message}`);
  }
  return { path, absolute, source, format };
}

export type DiagnosticFormat = 'text' | 'json';

export function parseDiagnosticFormat(value: string | undefined): DiagnosticFormat {
  if (value === undefined || value === 'text') return 'text';
  if (value === 'json') return 'json';
  throw new UsageError(`--format takes \`text\` or \`json\`, not ${JSON.stringify(value)}`);
}

/** Prints diagnostics: code frames and a summary line on stderr, or one JSON object on stdout. */
export function printDiagnostics(spec: SpecFile, diagnostics: readonly Diagnostic[], format: DiagnosticFormat, io: CliIO, extra: Record<string, unknown> = {}): void {
  if (format === 'json') {
    const all = diagnostics.map((d) => diagnosticToJson(d, spec.source));
    const out = { file: spec.path, errors: all.filter((d) => d.severity === 'error'), warnings: all.filter((d) => d.severity === 'warning'), ...extra };
    io.stdout(`${JSON.stringify(out, null, 2)}\n`);
    return;
  }
  for (const d of diagnostics) io.stderr(`${renderDiagnostic(d, spec.source, { color: io.color })}\n\n`);
  io.stderr(`${spec.path}: ${summarize(diagnostics)}\n`);
}
