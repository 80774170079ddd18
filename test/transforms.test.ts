import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  bagWeights,
  bucketize,
  copyBag,
  createCounters,
  crossBags,
  crossId,
  CROSS_SEED,
  hashBag,
  hashBucket,
  hashValue,
  identityBag,
  identityId,
  log01Scaled,
  logCount,
  logCountMinMax,
  minMax,
  murmur3Bytes,
  murmur3Int32s,
  murmur3String,
  textGroupId,
  Vocabulary,
  vocabularyBag,
  zScore,
  type FeatureCounters,
} from '../runtime/transforms.js';

function counters(): FeatureCounters {
  return createCounters(['f']).features[0]!;
}

function utf8(text: string): Uint8Array {
  return new TextEncoder().encode(text);
}

// Published MurmurHash3_x86_32 vectors (SMHasher-derived lists reproduced by many ports), checked
// against an independent implementation before being written here.
const PUBLISHED: readonly [string, number, number][] = [
  ['', 0, 0x00000000],
  ['', 1, 0x514e28b7],
  ['', 0xffffffff, 0x81f16f39],
  ['', 0xdeadbeef, 0x0de5c6a9],
  ['test', 0, 0xba6bd213],
  ['test', 0x9747b28c, 0x704b81dc],
  ['test', 0xdeadbeef, 0xaa22d41a],
  ['hello', 0, 0x248bfa47],
  ['Hello, world!', 0, 0xc0363e43],
  ['Hello, world!', 0x9747b28c, 0x24884cba],
  ['The quick brown fox jumps over the lazy dog', 0, 0x2e4ff723],
  ['The quick brown fox jumps over the lazy dog', 0x9747b28c, 0x2fa826cd],
  ['special characters açb↓c', 0, 0xbe83b140],
  ['Rýchla hnedá líška preskočila lenivého psa', 0, 0x678b9be9],
];

test('murmur3 gives the published MurmurHash3_x86_32 vectors, from strings and from bytes', () => {
  for (const [text, seed, expected] of PUBLISHED) {
    assert.equal(murmur3String(text, seed), expected, `${JSON.stringify(text)} seed ${seed}`);
    const bytes = utf8(text);
    assert.equal(murmur3Bytes(bytes, 0, bytes.length, seed), expected, `${JSON.stringify(text)} seed ${seed} as bytes`);
  }
});

test('murmur3Bytes hashes the slice it is given', () => {
  const bytes = utf8('xxhelloyy');
  assert.equal(murmur3Bytes(bytes, 2, 5, 0), 0x248bfa47);
});

test('strings are hashed as their UTF-8 bytes, lone surrogates as U+FFFD, long ones too', () => {
  const texts = [
    'a',
    'é',
    '↓',
    '😀',
    'a😀b',
    '\ud800',
    'x\udc00y',
    '\udbff\udfff',
    '\ud83d',
    'ü'.repeat(300),
    '😀'.repeat(200),
    'short again',
  ];
  for (const text of texts) {
    const bytes = utf8(text);
    assert.equal(murmur3String(text, 7), murmur3Bytes(bytes, 0, bytes.length, 7), JSON.stringify(text));
  }
});

test('a number hashes as its canonical text String(x), so "5" and 5 agree', () => {
  const numbers = [0, -0, 5, -12, 9, 10, 99, 100, 123456789, -987654321, 2 ** 31, -(2 ** 31) - 1, Number.MAX_SAFE_INTEGER, Number.MIN_SAFE_INTEGER, 0.5, -2.25, 1e21, 2 ** 60, NaN, Infinity];
  for (const n of numbers) assert.equal(hashValue(n), murmur3String(String(n)), String(n));
  assert.equal(hashValue(-0), murmur3String('0'));
  assert.equal(hashBucket(5, 100), hashBucket('5', 100));
});

test('murmur3Int32s equals murmur3 over the little-endian int32 bytes', () => {
  const ids = Int32Array.from([3, 7, -1, 0x7fffffff, -0x80000000, 42]);
  const view = new DataView(new ArrayBuffer(ids.length * 4));
  ids.forEach((id, i) => view.setInt32(i * 4, id, true));
  const bytes = new Uint8Array(view.buffer);
  for (let n = 0; n <= ids.length; n++) {
    assert.equal(murmur3Int32s(ids, 0, n, CROSS_SEED), murmur3Bytes(bytes, 0, n * 4, CROSS_SEED), `${n} ids`);
  }
  assert.equal(murmur3Int32s(ids, 1, 2, CROSS_SEED), murmur3Bytes(bytes, 4, 8, CROSS_SEED));
  assert.equal(crossId(ids, 0, 2, 100000), murmur3Bytes(bytes, 0, 8, 0x9e3779b9) % 100000);
});

// ---------------------------------------------------------------------------------------------
// The worked examples of docs/hashing.md, parsed from the doc so that the two cannot drift.

interface Example {
  line: string;
  call: string;
  args: unknown[];
  expected: unknown;
}

/** JSON with hexadecimal integers outside strings. */
function parseJsonWithHex(text: string): unknown {
  const decimal = text.replace(/("(?:[^"\\]|\\.)*")|0x([0-9a-fA-F]+)/g, (_match, quoted: string | undefined, hex: string | undefined) =>
    quoted !== undefined ? quoted : String(parseInt(hex!, 16)),
  );
  return JSON.parse(decimal);
}

/** The line without its `# commentary` (a `#` outside a string literal). */
function withoutComment(line: string): string {
  let inString = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (inString && c === '\\') i++;
    else if (c === '"') inString = !inString;
    else if (!inString && c === '#') return line.slice(0, i).trimEnd();
  }
  return line.trimEnd();
}

function docExamples(): Example[] {
  const doc = readFileSync(new URL('../docs/hashing.md', import.meta.url), 'utf8');
  const block = /```examples\n([\s\S]*?)```/.exec(doc);
  assert.ok(block, 'docs/hashing.md has an ```examples block');
  return block[1]!
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const m = /^(\w+)\((.*)\) = (.+)$/.exec(withoutComment(line));
      assert.ok(m, `example line is \`call(args) = result\`: ${line}`);
      return { line, call: m[1]!, args: parseJsonWithHex(`[${m[2]}]`) as unknown[], expected: parseJsonWithHex(m[3]!) };
    });
}

function runExample(call: string, args: unknown[]): unknown {
  const c = counters();
  switch (call) {
    case 'murmur3':
      return murmur3String(args[0] as string, args[1] as number);
    case 'hashBucket':
      return hashBucket(args[0] as string | number, args[1] as number);
    case 'crossId': {
      const ids = Int32Array.from(args[0] as number[]);
      return crossId(ids, 0, ids.length, args[1] as number);
    }
    case 'crossBags': {
      const bags = args[0] as number[][];
      const maxLen = args[2] as number;
      const offsets: number[] = [];
      let width = 0;
      for (const bag of bags) {
        offsets.push(width);
        width += bag.length;
      }
      const out = new Int32Array(maxLen);
      const length = crossBags(Int32Array.from(bags.flat()), offsets, Int32Array.from(bags.map((b) => b.length)), args[1] as number, out, 0, maxLen, c);
      return [...out.subarray(0, length)];
    }
    case 'textGroupId':
      return textGroupId(args[0] as string);
    case 'identityId':
      return identityId(args[0] as number, args[1] as number, args[2] as number, c);
    case 'bucketize':
      return bucketize(args[0] as number, args[1] as number[]);
    case 'vocabularyId':
      return new Vocabulary(args[0] as (string | number)[], args[1] as number).id(args[2] as string | number, c);
    case 'minMax':
      return minMax(args[0] as number, args[1] as number, args[2] as number);
    case 'zScore':
      return zScore(args[0] as number, args[1] as number, args[2] as number);
    case 'logCount':
      return logCount(args[0] as number);
    case 'logCountMinMax':
      return logCountMinMax(args[0] as number, args[1] as number, args[2] as number);
    case 'log01Scaled':
      return log01Scaled(args[0] as number, args[1] as number, args[2] as number);
    default:
      throw new Error(`docs/hashing.md uses an unknown function: ${call}`);
  }
}

test('every worked example of docs/hashing.md holds', () => {
  const examples = docExamples();
  assert.ok(examples.length >= 40, `expected the full example list, found ${examples.length}`);
  for (const example of examples) assert.deepEqual(runExample(example.call, example.args), example.expected, example.line);
});

// ---------------------------------------------------------------------------------------------
// Single values and counters.

test('identity keeps integers in range and counts the rest', () => {
  const c = counters();
  assert.deepEqual([0, 23, 24, -1, 2.5, NaN].map((v) => identityId(v, 24, 5, c)), [0, 23, 5, 5, 5, 5]);
  assert.equal(c.outOfRange, 4);
  assert.deepEqual({ oov: c.oov, truncated: c.truncated, missing: c.missing }, { oov: 0, truncated: 0, missing: 0 });
});

test('bucketize counts the boundaries at or below the value', () => {
  const boundaries = [-5, 0, 2.5];
  assert.deepEqual([-10, -5, -4.9, 0, 2.4999, 2.5, 1e9, -Infinity, Infinity, NaN].map((v) => bucketize(v, boundaries)), [0, 1, 1, 2, 2, 3, 3, 0, 3, 3]);
  assert.equal(bucketize(3, [7]), 0);
  assert.equal(bucketize(7, [7]), 1);
});

test('a vocabulary maps by canonical text, first entry wins, misses hash into oov buckets and are counted', () => {
  const c = counters();
  const vocabulary = new Vocabulary(['a', 'b', 'a', 7, '', 'NaN', '-0', '08'], 3);
  assert.equal(vocabulary.size, 8);
  assert.equal(vocabulary.id('a', c), 0);
  assert.equal(vocabulary.id(7, c), 3);
  assert.equal(vocabulary.id('7', c), 3);
  assert.equal(vocabulary.id('', c), 4);
  assert.equal(vocabulary.id(NaN, c), 5);
  assert.equal(c.oov, 0);
  // "-0" and "08" are not the canonical text of a number, so the numbers 0 and 8 miss.
  assert.equal(vocabulary.id(0, c), 8 + (hashValue('0') % 3));
  assert.equal(vocabulary.id(8, c), 8 + (hashValue('8') % 3));
  assert.equal(vocabulary.id('zzz', c), 8 + (murmur3String('zzz') % 3));
  assert.equal(c.oov, 3);
});

// ---------------------------------------------------------------------------------------------
// Bags.

test('hashBag writes ids, pads with 0, returns the length and counts a truncated row once', () => {
  const c = counters();
  const out = new Int32Array(6).fill(-7);
  assert.equal(hashBag(['hello', 5], 1000, out, 1, 4, c), 2);
  assert.deepEqual([...out], [-7, 351, hashBucket('5', 1000), 0, 0, -7]);
  assert.equal(hashBag(['hello', 'hello', 'hello', 'hello', 'hello', 'x'], 1000, out, 1, 4, c), 4);
  assert.deepEqual([...out], [-7, 351, 351, 351, 351, -7]);
  assert.equal(c.truncated, 1);
  assert.equal(hashBag([], 1000, out, 1, 4, c), 0);
  assert.deepEqual([...out], [-7, 0, 0, 0, 0, -7]);
});

test('identityBag and vocabularyBag map each kept element with the single-value rules', () => {
  const c = counters();
  const out = new Int32Array(3);
  assert.equal(identityBag([4, 99, 1, 2], 10, 9, out, 0, 3, c), 3);
  assert.deepEqual([...out], [4, 9, 1]);
  assert.deepEqual({ outOfRange: c.outOfRange, truncated: c.truncated }, { outOfRange: 1, truncated: 1 });
  const vocabulary = new Vocabulary(['paris', 'tokyo', 'lima'], 2);
  assert.equal(vocabularyBag(['lima', 'rome'], vocabulary, out, 0, 3, c), 2);
  assert.deepEqual([...out], [2, 4, 0]);
  assert.equal(c.oov, 1);
});

test('copyBag copies and pads; bagWeights fills missing weights with 1 and padding with 0', () => {
  const source = Int32Array.from([9, 8, 7, 6]);
  const out = new Int32Array(4).fill(-1);
  assert.equal(copyBag(source, 1, 2, out, 1, 3), 2);
  assert.deepEqual([...out], [-1, 8, 7, 0]);
  const weights = new Float32Array(5).fill(-1);
  bagWeights([0.5, 2], 3, weights, 1, 4);
  assert.deepEqual([...weights], [-1, 0.5, 2, 1, 0]);
});

test('crossBags walks the product with the first input outermost', () => {
  const c = counters();
  const out = new Int32Array(6);
  // inputs: [1, 2] and [5, 6, 7] gathered as 1 2 5 6 7
  const length = crossBags(Int32Array.from([1, 2, 5, 6, 7]), [0, 2], Int32Array.from([2, 3]), 1000, out, 0, 6, c);
  assert.equal(length, 6);
  const pairs = [[1, 5], [1, 6], [1, 7], [2, 5], [2, 6], [2, 7]];
  assert.deepEqual([...out], pairs.map((pair) => crossId(Int32Array.from(pair), 0, 2, 1000)));
  assert.equal(c.truncated, 0);
  // three inputs, one single-valued in the middle
  const three = new Int32Array(4);
  crossBags(Int32Array.from([1, 2, 9, 5, 6]), [0, 2, 3], Int32Array.from([2, 1, 2]), 1000, three, 0, 4, c);
  const triples = [[1, 9, 5], [1, 9, 6], [2, 9, 5], [2, 9, 6]];
  assert.deepEqual([...three], triples.map((t) => crossId(Int32Array.from(t), 0, 3, 1000)));
  // arity beyond the scratch's first size
  const wide = Int32Array.from({ length: 12 }, (_, i) => i);
  const one = new Int32Array(1);
  crossBags(wide, [...wide.keys()], new Int32Array(12).fill(1), 1000, one, 0, 1, c);
  assert.equal(one[0], crossId(wide, 0, 12, 1000));
});

// ---------------------------------------------------------------------------------------------
// Normalisations.

test('normalisations follow their formulas at the edges', () => {
  assert.equal(minMax(2.5, 0, 10), 0.25);
  assert.equal(minMax(3, 5, 2), 0);
  assert.ok(Number.isNaN(minMax(NaN, 0, 1)));
  assert.equal(zScore(1, 5, 2), -2);
  assert.equal(logCount(0), 0);
  assert.equal(logCount(7), 3);
  assert.equal(logCountMinMax(100, 0, 15), 1);
  assert.equal(logCountMinMax(-3, 0, 15), 0);
  assert.equal(log01Scaled(0, 0, 0.015), 0);
  assert.equal(log01Scaled(0.007, 0.001, 0.015), 2 / 3); // (log2(8) - log2(2)) / (log2(16) - log2(2))
});

test('counters start at zero with one entry per feature', () => {
  assert.deepEqual(createCounters(['a', '__proto__']), {
    rows: 0,
    roleDefaults: 0,
    features: [
      { feature: 'a', outOfRange: 0, oov: 0, truncated: 0, missing: 0 },
      { feature: '__proto__', outOfRange: 0, oov: 0, truncated: 0, missing: 0 },
    ],
  });
});
