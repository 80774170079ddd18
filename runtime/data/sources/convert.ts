// Converting one raw field to what its IR column declares. Every source funnels its values
// through here, so CSV text, Parquet/Arrow values and TFRecord lists obey the same rules and a
// row read from any format gives the same RawRecord.

import type { ColumnIR } from '../../../compiler/ir.js';
import type { RawValue } from '../contracts.js';

/**
 * The result of a conversion: the value, or BAD with the reason in `problem`. Returning a
 * sentinel instead of throwing keeps the per-field hot path free of exceptions and allocations.
 */
export const BAD: unique symbol = Symbol('bad field');
export type Converted = RawValue | typeof BAD;

export class Converter {
  /** Why the last conversion returned BAD (what was expected and what was found). */
  problem = '';

  constructor(
    /** Separates list elements in text (`1|2|3`); JSON-style `[1,2,3]` is always accepted too. */
    readonly listSeparator = '|',
  ) {}

  /**
   * A text field (CSV/TSV, or a string column of a typed file). The empty string is a missing
   * value (null): the encoder applies the column's default and counts it.
   */
  text(text: string, column: ColumnIR): Converted {
    if (text.length === 0) return null;
    if (column.list) return this.textList(text, column);
    return this.scalarText(text, column, false);
  }

  /** A value read from a typed file (Parquet, Arrow, TFRecord): numbers, bigints, text, lists. */
  value(value: unknown, column: ColumnIR): Converted {
    if (value === null || value === undefined) return null;
    if (column.list) {
      if (typeof value === 'string') return this.text(value, column);
      if (!isListLike(value)) return this.fail(`expected a list of ${column.type}, found ${describe(value)}`);
      const out: (number | string | null)[] = new Array(value.length);
      for (let i = 0; i < value.length; i++) {
        const element = value[i];
        const converted = element === null || element === undefined ? null : this.scalarValue(element, column, true);
        if (converted === BAD) return BAD;
        out[i] = converted as number | string | null;
      }
      return out;
    }
    return this.scalarValue(value, column, false);
  }

  private scalarValue(value: unknown, column: ColumnIR, inList: boolean): Converted {
    switch (typeof value) {
      case 'string':
        if (value.length === 0) return column.type === 'string' ? (inList ? '' : null) : inList ? this.fail(this.expected(column, true, value)) : null;
        return this.scalarText(value, column, inList);
      case 'number':
        if (column.type === 'string') return numberText(value);
        if (!Number.isFinite(value)) return this.fail(this.expected(column, inList, numberText(value)));
        if (column.type === 'int' && !Number.isSafeInteger(value)) return this.fail(this.expected(column, inList, numberText(value)));
        return value;
      case 'bigint': {
        if (column.type === 'string') return value.toString();
        const n = Number(value);
        if (!Number.isSafeInteger(n)) return this.fail(`${column.type === 'int' ? 'expected an int' : 'expected a float'} within ±2^53, found \`${value}\``);
        return n;
      }
      case 'boolean':
        if (column.type === 'string') return value ? 'true' : 'false';
        return value ? 1 : 0;
      default:
        return this.fail(this.expected(column, inList, undefined, value));
    }
  }

  private scalarText(text: string, column: ColumnIR, inList: boolean): Converted {
    if (column.type === 'string') return text;
    if (column.type === 'int') {
      const n = parseDecimalInt(text);
      if (n !== null) return n;
      // Slow path: `2.0` and `1e3` are integral numbers written otherwise.
      const m = parseNumber(text);
      if (m !== null && Number.isSafeInteger(m)) return m;
      return this.fail(this.expected(column, inList, text));
    }
    const x = parseDecimalInt(text) ?? parseNumber(text);
    if (x !== null && Number.isFinite(x)) return x;
    return this.fail(this.expected(column, inList, text));
  }

  private textList(text: string, column: ColumnIR): Converted {
    let parts: unknown[];
    if (text.charCodeAt(0) === 91 /* [ */) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        return this.fail(`expected a list of ${column.type} (\`a${this.listSeparator}b\` or JSON \`[a, b]\`), found \`${text}\``);
      }
      if (!Array.isArray(parsed)) return this.fail(`expected a list of ${column.type}, found \`${text}\``);
      parts = parsed;
    } else {
      parts = text.split(this.listSeparator);
    }
    const out: (number | string | null)[] = new Array(parts.length);
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i];
      const converted = part === null ? null : this.scalarValue(part, column, true);
      if (converted === BAD) return BAD;
      out[i] = converted as number | string | null;
    }
    return out;
  }

  private expected(column: ColumnIR, inList: boolean, found: string | undefined, value?: unknown): string {
    const shown = found === undefined ? describe(value) : `\`${found}\``;
    const nonFinite = found !== undefined && NON_FINITE.test(found);
    const what = column.type === 'int' ? 'an int' : column.type === 'string' ? 'a string' : nonFinite ? 'a finite float' : 'a float';
    return inList ? `expected a list of ${column.type}, found element ${shown}` : `expected ${what}, found ${shown}`;
  }

  private fail(problem: string): typeof BAD {
    this.problem = problem;
    return BAD;
  }
}

/** `123`, `-7`, `+4`: the common case, parsed without building a number from a regular expression. */
function parseDecimalInt(text: string): number | null {
  const length = text.length;
  let i = 0;
  let sign = 1;
  const first = text.charCodeAt(0);
  if (first === 45 /* - */ || first === 43 /* + */) {
    if (length === 1) return null;
    if (first === 45) sign = -1;
    i = 1;
  }
  if (length - i > 15) return null; // may exceed 2^53: let the slow path decide
  let n = 0;
  for (; i < length; i++) {
    const digit = text.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return null;
    n = n * 10 + digit;
  }
  return sign * n;
}

const NON_FINITE = /^[+-]?(nan|inf|infinity)$/i;
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** A decimal number (no hex, no `Infinity`, no surrounding blanks); null when the text is not one. */
function parseNumber(text: string): number | null {
  return NUMBER.test(text) ? Number(text) : null;
}

function numberText(value: number): string {
  return Number.isNaN(value) ? 'NaN' : String(value);
}

function isListLike(value: unknown): value is ArrayLike<unknown> {
  return Array.isArray(value) || ArrayBuffer.isView(value);
}

function describe(value: unknown): string {
  if (typeof value === 'string') return `\`${value}\``;
  if (typeof value === 'number') return `\`${numberText(value)}\``;
  if (typeof value === 'bigint' || typeof value === 'boolean') return `\`${value}\``;
  if (isListLike(value)) return 'a list';
  return `a value of type ${typeof value}`;
}
