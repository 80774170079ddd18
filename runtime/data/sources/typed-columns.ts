// The typed fast path of the DuckDB sources: which SQL reads each spec column. Values that are
// numbers already are cast by DuckDB on its own threads and copied in bulk; every other value is
// a fallback that JavaScript converts as before (convert.ts), so values and error messages are the
// same as converting each value alone.
//
// Text is never cast here: DuckDB's cast accepts more than the converter (blanks around the
// number, `_` between digits) and guarding against that costs DuckDB more CPU than parsing the
// bytes in JavaScript (block.ts parses plain decimal text from the bytes, in the workers). Typed
// values (Parquet numbers and lists of numbers) are cast to DOUBLE when the converter would take
// them as they are: any small integer; a BIGINT within ±2^53; a finite float (for an int column,
// an integral one within ±2^53). The rest is a fallback the converter handles as before.

import type { ColumnIR } from '../../../compiler/ir.js';
import type { ColumnKind } from './block.js';

/** How one spec column is read: its raw field, and for typed kinds the cast and the fallback. */
export interface ColumnPlan {
  kind: ColumnKind;
  /** The raw field, over the relation's columns. */
  source: string;
  /** number/list: the cast, over the raw field `s`. */
  typed?: (s: string) => string;
  /** number/list: the field to convert in JavaScript, over the cast `t` and the raw field `s`; NULL for none. */
  fallback?: (t: string, s: string) => string;
  fallbackMode?: 'value';
  /** text: parse plain numbers from the bytes (false: convert every field's string, the reference path). */
  fast?: boolean;
}

const SAFE = '9007199254740991';

/** A text field (CSV/TSV, or a VARCHAR column): converted in JavaScript, plain numbers from the bytes unless `fast` is false. */
export function textPlan(source: string, fast = true): ColumnPlan {
  return { kind: 'text', source, fast };
}

const SMALL_INT = /^(TINYINT|SMALLINT|INTEGER|UTINYINT|USMALLINT|UINTEGER|BOOLEAN)$/;
const BIG_INT = /^(BIGINT|UBIGINT)$/;
const FLOATING = /^(FLOAT|DOUBLE|DECIMAL(\(\d+,\s*\d+\))?)$/;

/** The cast of one typed value `x` of DuckDB type `type` to a number of `column.type`, or null when there is none. */
function valueScalar(type: string, column: ColumnIR, x: string): string | null {
  if (SMALL_INT.test(type)) return `CAST(${x} AS DOUBLE)`;
  if (BIG_INT.test(type)) return `CASE WHEN ${x} BETWEEN -${SAFE} AND ${SAFE} THEN CAST(${x} AS DOUBLE) END`;
  if (FLOATING.test(type)) {
    const d = `CAST(${x} AS DOUBLE)`;
    const integral = column.type === 'int' ? ` AND ${d} = trunc(${d}) AND abs(${d}) <= ${SAFE}` : '';
    return `CASE WHEN isfinite(${d})${integral} THEN ${d} END`;
  }
  return null;
}

/**
 * A column of a typed relation (Parquet, a query) of DuckDB type `type` read as `column`;
 * `source` is the expression the untyped path reads (numbers, text, lists of them).
 */
export function valuePlan(name: string, source: string, type: string, column: ColumnIR, typed = true): ColumnPlan {
  if (type === 'VARCHAR') return textPlan(name, typed);
  if (!typed || column.type === 'string') return { kind: 'values', source };
  if (!column.list) {
    if (valueScalar(type, column, 'x') === null) return { kind: 'values', source };
    return {
      kind: 'number',
      source,
      typed: (s) => valueScalar(type, column, s)!,
      fallback: (t, s) => `CASE WHEN ${t} IS NULL AND ${s} IS NOT NULL THEN ${s} END`,
      fallbackMode: 'value',
    };
  }
  const element = type.endsWith('[]') ? valueScalar(type.slice(0, -2), column, 'x') : null;
  if (element === null) return { kind: 'values', source };
  return {
    kind: 'list',
    source,
    typed: (s) => `list_transform(${s}, x -> ${element})`,
    fallback: (t, s) => `CASE WHEN ${s} IS NOT NULL AND list_aggregate(${t}, 'count') < len(${s}) THEN ${s} END`,
    fallbackMode: 'value',
  };
}

/**
 * The query reading `plans` from `relation`, then `extra` expressions (over the relation): the
 * raw fields first, then the casts, then per column its value(s) in block-builder order (typed
 * kinds: cast and fallback; others: the field).
 */
export function typedQuery(plans: readonly ColumnPlan[], relation: string, extra: readonly string[] = []): string {
  const raw = [...plans.map((p, j) => `${p.source} AS s${j}`), ...extra.map((e, k) => `${e} AS e${k}`)];
  const cast = plans.flatMap((p, j) => (p.typed === undefined ? [] : [`${p.typed(`s${j}`)} AS t${j}`]));
  const rawNames = [...plans.map((_, j) => `s${j}`), ...extra.map((_, k) => `e${k}`)];
  const out = [...plans.flatMap((p, j) => (p.typed === undefined ? [`s${j}`] : [`t${j}`, p.fallback!(`t${j}`, `s${j}`)])), ...extra.map((_, k) => `e${k}`)];
  const withCasts = `SELECT ${[...rawNames, ...cast].join(', ')} FROM (SELECT ${raw.join(', ')} FROM ${relation})`;
  return `SELECT ${out.join(', ')} FROM (${withCasts})`;
}
