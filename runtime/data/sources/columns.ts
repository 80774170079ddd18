// Matching the spec's input columns to a file's columns by name. Every column the spec declares
// must be in the file (a default fills missing *fields*, not a missing column, so a misspelt
// header is caught instead of silently reading defaults); columns the spec does not declare are
// ignored.

import type { ColumnIR, ModelIR } from '../../../compiler/ir.js';
import { didYouMean } from '../../../compiler/diagnostics.js';
import { DataError } from '../contracts.js';

export interface BoundColumn {
  column: ColumnIR;
  /** Position of the column in the file. */
  index: number;
}

/** The spec's columns with their positions in `fileColumns`; a DataError names the first one missing. */
export function bindColumns(file: string, fileColumns: readonly string[], ir: ModelIR): BoundColumn[] {
  const positions = new Map<string, number>();
  fileColumns.forEach((name, index) => {
    if (!positions.has(name)) positions.set(name, index);
  });
  const bound: BoundColumn[] = [];
  const missing: string[] = [];
  for (const column of ir.columns) {
    const index = positions.get(column.name);
    if (index === undefined) missing.push(column.name);
    else bound.push({ column, index });
  }
  if (missing.length > 0) throw missingColumnError(file, missing, fileColumns);
  return bound;
}

export function missingColumnError(file: string, missing: readonly string[], fileColumns: readonly string[]): DataError {
  const first = missing[0]!;
  const hint = didYouMean(first, fileColumns);
  let problem = hint === undefined ? `missing from the file, whose columns are ${listNames(fileColumns)}` : `missing from the file; ${hint}`;
  if (missing.length > 1) problem += ` (${missing.length - 1} more of the spec's columns are missing: ${listNames(missing.slice(1))})`;
  return new DataError({ file, row: 0 }, first, problem);
}

function listNames(names: readonly string[], limit = 8): string {
  if (names.length === 0) return 'none';
  const shown = names.slice(0, limit).map((name) => `\`${name}\``).join(', ');
  return names.length > limit ? `${shown} and ${names.length - limit} more` : shown;
}
