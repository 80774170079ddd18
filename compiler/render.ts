// Turns diagnostics into text for people (rustc-style code frames) or JSON for machines.
// Diagnostics store byte offsets; line and column are computed here, only when printing.

import type { Span } from '../dsl/ast.js';
import type { Diagnostic } from './diagnostics.js';

export interface Position {
  /** 1-based. */
  line: number;
  /** 1-based, in UTF-16 code units. */
  column: number;
}

export class LineIndex {
  private readonly starts: number[] = [0];

  constructor(readonly text: string) {
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) this.starts.push(i + 1);
  }

  position(offset: number): Position {
    const clamped = Math.max(0, Math.min(offset, this.text.length));
    let lo = 0;
    let hi = this.starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= clamped) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, column: clamped - this.starts[lo]! + 1 };
  }

  lineText(line: number): string {
    const start = this.starts[line - 1] ?? this.text.length;
    const next = this.starts[line];
    const end = next === undefined ? this.text.length : next - 1;
    return this.text.slice(start, end).replace(/\r$/, '');
  }

  get lineCount(): number {
    return this.starts.length;
  }
}

export interface RenderOptions {
  color?: boolean;
}

const paint = (on: boolean, code: string, s: string): string => (on ? `\x1b[${code}m${s}\x1b[0m` : s);

/**
 * error[WND3001]: unknown column `ad_idd`
 *   --> examples/outbrain/outbrain.wnd:12:20
 *    |
 * 12 |   ad_id = hashed(ad_idd, buckets: 250000)
 *    |                  ^^^^^^
 *    = help: did you mean `ad_id`?
 */
export function renderDiagnostic(d: Diagnostic, source: string, options: RenderOptions = {}): string {
  const color = options.color ?? false;
  const index = new LineIndex(source);
  const head = paint(color, d.severity === 'error' ? '1;31' : '1;33', `${d.severity}[${d.code}]`);
  const lines = [`${head}${paint(color, '1', `: ${d.message}`)}`];
  const start = index.position(d.span.start);
  const frame = codeFrame(index, d.span, color, d.severity === 'error' ? '1;31' : '1;33');
  // Arrow and notes line up with the frame's `|`, whose column depends on the widest line number.
  const pad = ' '.repeat(frame.gutter);
  lines.push(`${pad}--> ${d.file}:${start.line}:${start.column}`);
  lines.push(...frame.lines);
  for (const r of d.related ?? []) {
    const p = index.position(r.span.start);
    lines.push(`${pad} = note: ${r.message} (${d.file}:${p.line}:${p.column})`);
  }
  if (d.help !== undefined) lines.push(`${pad} = ${paint(color, '1;36', 'help')}: ${d.help}`);
  return lines.join('\n');
}

function codeFrame(index: LineIndex, span: Span, color: boolean, markColor: string): { lines: string[]; gutter: number } {
  const start = index.position(span.start);
  const end = index.position(Math.max(span.start, span.end - 1));
  const lastLine = Math.min(end.line, start.line + 3);
  const gutter = String(lastLine).length;
  const bar = `${' '.repeat(gutter)} |`;
  const out = [bar];
  for (let line = start.line; line <= lastLine; line++) {
    const text = index.lineText(line);
    out.push(`${String(line).padStart(gutter)} | ${text}`);
    const from = line === start.line ? start.column - 1 : 0;
    const to = line === end.line ? Math.max(end.column, from + 1) : Math.max(text.length, from + 1);
    const width = span.end > span.start ? to - from : 1;
    out.push(`${bar} ${' '.repeat(from)}${paint(color, markColor, '^'.repeat(Math.max(1, width)))}`);
  }
  return { lines: out, gutter };
}

/** The machine form: what `--format json` prints, one object per diagnostic. */
export function diagnosticToJson(d: Diagnostic, source: string): Record<string, unknown> {
  const index = new LineIndex(source);
  const start = index.position(d.span.start);
  const end = index.position(d.span.end);
  return {
    code: d.code,
    severity: d.severity,
    message: d.message,
    file: d.file,
    start: d.span.start,
    length: d.span.end - d.span.start,
    line: start.line,
    column: start.column,
    endLine: end.line,
    endColumn: end.column,
    ...(d.help !== undefined ? { help: d.help } : {}),
    ...(d.related !== undefined
      ? { related: d.related.map((r) => ({ message: r.message, start: r.span.start, length: r.span.end - r.span.start, ...index.position(r.span.start) })) }
      : {}),
  };
}

/** `2 errors, 1 warning` */
export function summarize(diagnostics: readonly Diagnostic[]): string {
  const errors = diagnostics.filter((d) => d.severity === 'error').length;
  const warnings = diagnostics.length - errors;
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  return `${plural(errors, 'error')}, ${plural(warnings, 'warning')}`;
}
