// Checkpoints in the safetensors layout (https://huggingface.co/docs/safetensors): an 8-byte
// little-endian header length, a JSON header naming each tensor's dtype, shape and byte range, then
// the raw little-endian float32 data. Any safetensors reader can open a wndc checkpoint. Training
// state (step, epoch, spec hash) rides in the header's `__metadata__` (strings, as the format asks).
// Files are written atomically and only the newest `keep` are kept.

import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../compiler/fs.js';
import type { NamedTensor } from './engine/engine.js';

export interface CheckpointMeta {
  model: string;
  specHash: string;
  step: number;
  epoch: number;
  /** Rows of the current epoch already trained (resuming mid-epoch skips them). */
  epochRows: number;
  wndcVersion: string;
}

export interface Checkpoint {
  path: string;
  meta: CheckpointMeta;
  tensors: NamedTensor[];
}

const PREFIX = 'ckpt-';
const SUFFIX = '.safetensors';

export function checkpointName(step: number): string {
  return `${PREFIX}${String(step).padStart(9, '0')}${SUFFIX}`;
}

export function encodeCheckpoint(meta: CheckpointMeta, tensors: readonly NamedTensor[]): Buffer {
  const header: Record<string, unknown> = {
    __metadata__: Object.fromEntries(Object.entries(meta).map(([k, v]) => [k, String(v)])),
  };
  let offset = 0;
  for (const t of tensors) {
    const bytes = t.data.length * 4;
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  // The header is padded with spaces to a multiple of 8 so the data that follows stays aligned.
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const out = Buffer.alloc(8 + headerBytes.length + offset);
  out.writeBigUInt64LE(BigInt(headerBytes.length), 0);
  headerBytes.copy(out, 8);
  let at = 8 + headerBytes.length;
  for (const t of tensors) {
    // Little-endian on every platform Node runs on that wndc supports; written through a view to be explicit.
    const view = new DataView(out.buffer, out.byteOffset + at, t.data.length * 4);
    for (let i = 0; i < t.data.length; i++) view.setFloat32(i * 4, t.data[i]!, true);
    at += t.data.length * 4;
  }
  return out;
}

export class CheckpointError extends Error {}

export function decodeCheckpoint(bytes: Buffer, path: string): Checkpoint {
  const fail = (why: string): never => {
    throw new CheckpointError(`${path} is not a readable wndc checkpoint: ${why}`);
  };
  if (bytes.length < 8) fail('the file is shorter than its header');
  const headerLength = Number(bytes.readBigUInt64LE(0));
  if (headerLength > bytes.length - 8) fail('the header runs past the end of the file');
  let header: Record<string, { dtype?: string; shape?: number[]; data_offsets?: [number, number] } | Record<string, string>>;
  try {
    header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as typeof header;
  } catch {
    return fail('the header is not JSON');
  }
  const rawMeta = (header.__metadata__ ?? {}) as Record<string, string>;
  const meta: CheckpointMeta = {
    model: rawMeta.model ?? '',
    specHash: rawMeta.specHash ?? '',
    step: Number(rawMeta.step ?? NaN),
    epoch: Number(rawMeta.epoch ?? NaN),
    epochRows: Number(rawMeta.epochRows ?? 0),
    wndcVersion: rawMeta.wndcVersion ?? 'unknown',
  };
  if (!Number.isInteger(meta.step) || !Number.isInteger(meta.epoch)) fail('its metadata has no step or epoch');
  const dataStart = 8 + headerLength;
  const tensors: NamedTensor[] = [];
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const e = entry as { dtype?: string; shape?: number[]; data_offsets?: [number, number] };
    if (e.dtype !== 'F32' || !Array.isArray(e.shape) || !Array.isArray(e.data_offsets)) fail(`tensor \`${name}\` is not float32 with a shape and offsets`);
    const [begin, end] = e.data_offsets!;
    const count = e.shape!.reduce((a, b) => a * b, 1);
    if (end - begin !== count * 4 || dataStart + end > bytes.length) fail(`tensor \`${name}\` has inconsistent offsets`);
    const view = new DataView(bytes.buffer, bytes.byteOffset + dataStart + begin, end - begin);
    const data = new Float32Array(count);
    for (let i = 0; i < count; i++) data[i] = view.getFloat32(i * 4, true);
    tensors.push({ name, shape: e.shape!, data });
  }
  return { path, meta, tensors };
}

/** Writes `ckpt-<step>.safetensors` atomically into `dir`, then removes all but the newest `keep`. */
export function saveCheckpoint(dir: string, meta: CheckpointMeta, tensors: readonly NamedTensor[], keep: number): string {
  const path = join(dir, checkpointName(meta.step));
  writeFileAtomic(path, encodeCheckpoint(meta, tensors));
  const all = listCheckpoints(dir);
  for (const old of all.slice(0, Math.max(0, all.length - keep))) rmSync(join(dir, old), { force: true });
  return path;
}

/** Checkpoint file names in `dir`, oldest first. */
export function listCheckpoints(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((n) => n.startsWith(PREFIX) && n.endsWith(SUFFIX)).sort();
}

export function loadLatestCheckpoint(dir: string): Checkpoint | undefined {
  const names = listCheckpoints(dir);
  const latest = names[names.length - 1];
  if (latest === undefined) return undefined;
  const path = join(dir, latest);
  return decodeCheckpoint(readFileSync(path), path);
}

/**
 * What differs between a checkpoint and the model about to load it, in words a user can act on;
 * empty when they match.
 */
export function describeMismatch(expected: readonly NamedTensor[], found: readonly NamedTensor[]): string[] {
  const problems: string[] = [];
  const have = new Map(found.map((t) => [t.name, t]));
  const want = new Map(expected.map((t) => [t.name, t]));
  for (const t of expected) {
    const f = have.get(t.name);
    if (f === undefined) problems.push(`\`${t.name}\` is missing from the checkpoint`);
    else if (f.shape.join('x') !== t.shape.join('x')) problems.push(`\`${t.name}\` is ${f.shape.join(' x ')} in the checkpoint but ${t.shape.join(' x ')} in the spec`);
  }
  for (const f of found) if (!want.has(f.name)) problems.push(`\`${f.name}\` is in the checkpoint but not in the spec`);
  return problems;
}
