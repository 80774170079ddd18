// The spec hash: which model a set of shards was encoded for. Shards store it in their manifest
// and schema metadata; readers refuse shards whose hash differs from the model they train.

import { createHash } from 'node:crypto';
import type { ModelIR } from '../../compiler/ir.js';

/**
 * JSON with object keys sorted (by UTF-16 code units, as `Array.prototype.sort` does), no
 * whitespace, and `undefined` members left out, so equal values always give equal text whatever
 * order their keys were built in.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    const text = JSON.stringify(value);
    if (text === undefined) throw new Error(`internal: ${typeof value} has no JSON form`);
    return text;
  }
  if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
  const record = value as Record<string, unknown>;
  const members = Object.keys(record)
    .filter((key) => record[key] !== undefined)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key])}`);
  return `{${members.join(',')}}`;
}

/** Lowercase hex sha256 of the IR's canonical JSON (64 characters). */
export function specHash(ir: ModelIR): string {
  return createHash('sha256').update(canonicalJson(ir), 'utf8').digest('hex');
}
