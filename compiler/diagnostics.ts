// The one catalog of wndc diagnostics. Codes are stable and ranged by phase:
//   WND1xxx  `.wnd` syntax            WND2xxx  YAML structure (JSON Schema)
//   WND3xxx  names and references     WND4xxx  types and values
//   WND5xxx  model-level checks       WND6xxx  warnings
// Every code is documented with a triggering example and its fix in docs/diagnostics.md; a test
// keeps the two in step. Checks never throw for user errors: they report through a Reporter and
// go on, so one run shows every error of a file.

import type { Span } from '../dsl/ast.js';

export type Severity = 'error' | 'warning';

export interface CatalogEntry {
  severity: Severity;
  title: string;
}

export const CATALOG = {
  // .wnd syntax
  WND1001: { severity: 'error', title: 'unexpected character' },
  WND1002: { severity: 'error', title: 'unterminated string' },
  WND1003: { severity: 'error', title: 'syntax error' },
  WND1004: { severity: 'error', title: 'unknown section' },
  WND1005: { severity: 'error', title: 'duplicate section' },
  WND1006: { severity: 'error', title: 'invalid number' },
  WND1007: { severity: 'error', title: 'too many positional arguments' },
  WND1008: { severity: 'error', title: 'missing model header' },
  // YAML structure
  WND2001: { severity: 'error', title: 'YAML syntax error' },
  WND2002: { severity: 'error', title: 'unknown key' },
  WND2003: { severity: 'error', title: 'missing key' },
  WND2004: { severity: 'error', title: 'wrong YAML shape' },
  WND2005: { severity: 'error', title: 'duplicate key' },
  // names and references
  WND3001: { severity: 'error', title: 'unknown column' },
  WND3002: { severity: 'error', title: 'unknown feature' },
  WND3003: { severity: 'error', title: 'duplicate column' },
  WND3004: { severity: 'error', title: 'duplicate feature' },
  WND3005: { severity: 'error', title: 'unknown feature kind' },
  WND3006: { severity: 'error', title: 'unknown parameter or property' },
  WND3007: { severity: 'error', title: 'missing required parameter' },
  WND3008: { severity: 'error', title: 'duplicate parameter' },
  WND3009: { severity: 'error', title: 'unknown type' },
  WND3010: { severity: 'error', title: 'unknown value' },
  WND3011: { severity: 'error', title: 'invalid name' },
  WND3012: { severity: 'error', title: 'feature listed twice' },
  // types and values
  WND4001: { severity: 'error', title: 'wrong column type for feature kind' },
  WND4002: { severity: 'error', title: 'list and single value mismatch' },
  WND4003: { severity: 'error', title: 'combiner on a single-valued feature' },
  WND4004: { severity: 'error', title: 'expected a positive integer' },
  WND4005: { severity: 'error', title: 'wrong value type' },
  WND4006: { severity: 'error', title: 'invalid optimizer hyperparameter' },
  WND4007: { severity: 'error', title: 'value out of range' },
  WND4008: { severity: 'error', title: 'boundaries not increasing' },
  WND4009: { severity: 'error', title: 'default does not match column type' },
  WND4010: { severity: 'error', title: 'feature cannot be used here' },
  WND4011: { severity: 'error', title: 'not a categorical feature' },
  WND4012: { severity: 'error', title: 'wrong type for column role' },
  WND4013: { severity: 'error', title: 'invalid vocabulary' },
  WND4014: { severity: 'error', title: 'vocabulary file unreadable' },
  WND4015: { severity: 'error', title: 'conflicting parameters' },
  WND4016: { severity: 'error', title: 'feature reads the label column' },
  // model-level
  WND5001: { severity: 'error', title: 'missing label column' },
  WND5002: { severity: 'error', title: 'role given twice' },
  WND5003: { severity: 'error', title: 'grouped metric without a group column' },
  WND5004: { severity: 'error', title: 'shared embedding dimensions differ' },
  WND5005: { severity: 'error', title: 'shared embedding bucket counts differ' },
  WND5006: { severity: 'error', title: 'tables exceed memory budget' },
  WND5007: { severity: 'error', title: 'missing section' },
  WND5008: { severity: 'error', title: 'cyclic feature definition' },
  WND5009: { severity: 'error', title: 'shared embedding initializers differ' },
  // warnings
  WND6001: { severity: 'warning', title: 'feature used by neither part' },
  WND6002: { severity: 'warning', title: 'unused column' },
  WND6003: { severity: 'warning', title: 'very wide indicator' },
} as const satisfies Record<string, CatalogEntry>;

export type DiagnosticCode = keyof typeof CATALOG;

export interface RelatedLocation {
  span: Span;
  message: string;
}

export interface Diagnostic {
  code: DiagnosticCode;
  severity: Severity;
  /** Lowercase, no trailing period, names in backticks (rustc style). */
  message: string;
  file: string;
  span: Span;
  /** A suggested fix, printed as `help: ...`. */
  help?: string;
  related?: RelatedLocation[];
}

export interface ReportOptions {
  help?: string;
  related?: RelatedLocation[];
}

/** The acceptor every phase reports through. */
export class Reporter {
  readonly diagnostics: Diagnostic[] = [];

  constructor(readonly file: string) {}

  report(code: DiagnosticCode, span: Span, message: string, options: ReportOptions = {}): void {
    const d: Diagnostic = { code, severity: CATALOG[code].severity, message, file: this.file, span };
    if (options.help !== undefined) d.help = options.help;
    if (options.related !== undefined && options.related.length > 0) d.related = options.related;
    this.diagnostics.push(d);
  }

  get errorCount(): number {
    return this.diagnostics.filter((d) => d.severity === 'error').length;
  }
}

export function hasErrors(diagnostics: readonly Diagnostic[]): boolean {
  return diagnostics.some((d) => d.severity === 'error');
}

/**
 * Keeps the first error reported at any one span: the YAML schema and the checker can both notice
 * the same misspelt key, and the user should read about it once.
 */
export function dedupeDiagnostics(diagnostics: readonly Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  const out: Diagnostic[] = [];
  for (const d of diagnostics) {
    const key = `${d.severity}:${d.span.start}:${d.span.end}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(d);
  }
  return out;
}

/** Up to four known names close to `name`, closest first (Elm's "these names seem close"). */
export function suggestNames(name: string, candidates: Iterable<string>, max = 4): string[] {
  const scored: { candidate: string; distance: number }[] = [];
  const lower = name.toLowerCase();
  for (const candidate of candidates) {
    const distance = editDistance(lower, candidate.toLowerCase());
    const limit = Math.max(1, Math.floor(Math.max(name.length, candidate.length) / 3));
    if (distance <= limit || (lower.length >= 3 && candidate.toLowerCase().startsWith(lower))) scored.push({ candidate, distance });
  }
  scored.sort((a, b) => a.distance - b.distance || a.candidate.localeCompare(b.candidate));
  return [...new Set(scored.map((s) => s.candidate))].slice(0, max);
}

/** `did you mean `x`?` help text, or undefined when nothing is close. */
export function didYouMean(name: string, candidates: Iterable<string>): string | undefined {
  const close = suggestNames(name, candidates);
  if (close.length === 0) return undefined;
  if (close.length === 1) return `did you mean \`${close[0]}\`?`;
  return `did you mean one of ${close.map((c) => `\`${c}\``).join(', ')}?`;
}

/** Damerau-Levenshtein distance (optimal string alignment): a swapped pair of letters costs 1. */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[] = new Array(rows * cols).fill(0);
  for (let i = 0; i < rows; i++) d[i * cols] = i;
  for (let j = 0; j < cols; j++) d[j] = j;
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[(i - 1) * cols + j]! + 1, d[i * cols + j - 1]! + 1, d[(i - 1) * cols + j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[(i - 2) * cols + j - 2]! + 1);
      d[i * cols + j] = best;
    }
  }
  return d[rows * cols - 1]!;
}
