// The spec hash: which encoding a set of shards holds. Shards store it in their manifest and schema
// metadata; readers refuse shards whose hash differs from the model they train. Only what decides
// the encoded values counts (columns, roles, features, layout): changing the tower, the optimizers
// or the training settings keeps the shards usable.

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

/** Lowercase hex sha256 (64 characters) of the canonical JSON of the IR's encoding: version, columns, roles, features, layout. */
export function specHash(ir: ModelIR): string {
  const encoding = { irVersion: ir.irVersion, columns: ir.columns, roles: ir.roles, features: ir.features, layout: ir.layout };
  return createHash('sha256').update(canonicalJson(encoding), 'utf8').digest('hex');
}
