// Checkpoints: the safetensors layout byte for byte, round trips, keep-last-N, mismatch messages.

import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { CheckpointError, decodeCheckpoint, describeMismatch, encodeCheckpoint, listCheckpoints, loadLatestCheckpoint, saveCheckpoint, type CheckpointMeta } from '../runtime/checkpoint.js';

const meta: CheckpointMeta = { model: 'm', specHash: 'abc', step: 7, epoch: 1, epochRows: 512, wndcVersion: '0.1.0' };
const tensors = [
  { name: 'wide/bias', shape: [1], data: new Float32Array([0.5]) },
  { name: 'deep/layers/logit/kernel', shape: [2, 1], data: new Float32Array([1, -2]) },
];

test('the layout is safetensors: u64 header length, JSON header with offsets, little-endian f32 data', () => {
  const bytes = encodeCheckpoint(meta, tensors);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  assert.equal((8 + headerLength) % 8, 0, 'data starts 8-byte aligned');
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, unknown>;
  assert.deepEqual(header['wide/bias'], { dtype: 'F32', shape: [1], data_offsets: [0, 4] });
  assert.deepEqual(header['deep/layers/logit/kernel'], { dtype: 'F32', shape: [2, 1], data_offsets: [4, 12] });
  assert.deepEqual(header.__metadata__, { model: 'm', specHash: 'abc', step: '7', epoch: '1', epochRows: '512', wndcVersion: '0.1.0' });
  const data = bytes.subarray(8 + headerLength);
  assert.deepEqual([data.readFloatLE(0), data.readFloatLE(4), data.readFloatLE(8)], [0.5, 1, -2]);
  assert.equal(bytes.length, 8 + headerLength + 12);
});

test('decode(encode(x)) gives x back', () => {
  const back = decodeCheckpoint(encodeCheckpoint(meta, tensors), 'x');
  assert.deepEqual(back.meta, meta);
  assert.deepEqual(back.tensors, tensors);
});

test('save keeps the newest N, atomically, and load finds the latest', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wndc-ckpt-'));
  for (const step of [1, 20, 300, 4000]) saveCheckpoint(dir, { ...meta, step }, tensors, 2);
  assert.deepEqual(listCheckpoints(dir), ['ckpt-000000300.safetensors', 'ckpt-000004000.safetensors']);
  assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp')), []);
  assert.equal(loadLatestCheckpoint(dir)!.meta.step, 4000);
  assert.equal(loadLatestCheckpoint(join(dir, 'none')), undefined);
});

test('a damaged file is a clear error', () => {
  const dir = mkdtempSync(join(tmpdir(), 'wndc-ckpt-'));
  const path = saveCheckpoint(dir, meta, tensors, 1);
  const bytes = readFileSync(path);
  writeFileSync(path, bytes.subarray(0, bytes.length - 3));
  assert.throws(() => loadLatestCheckpoint(dir), (e: unknown) => e instanceof CheckpointError && /ckpt-000000007.safetensors is not a readable wndc checkpoint: tensor `deep\/layers\/logit\/kernel` has inconsistent offsets/.test((e as Error).message));
});

test('mismatches are named: missing, reshaped, unexpected', () => {
  const found = [
    { name: 'wide/bias', shape: [1], data: new Float32Array(1) },
    { name: 'deep/layers/logit/kernel', shape: [3, 1], data: new Float32Array(3) },
    { name: 'deep/old', shape: [2], data: new Float32Array(2) },
  ];
  const expected = [...tensors, { name: 'deep/new', shape: [4], data: new Float32Array(4) }];
  assert.deepEqual(describeMismatch(expected, found), [
    '`deep/layers/logit/kernel` is 3 x 1 in the checkpoint but 2 x 1 in the spec',
    '`deep/new` is missing from the checkpoint',
    '`deep/old` is in the checkpoint but not in the spec',
  ]);
  assert.deepEqual(describeMismatch(tensors, tensors), []);
});
