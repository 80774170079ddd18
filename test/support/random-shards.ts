// Random Outbrain-shaped encoded rows written through ShardWriter, for shard and batch tests and
// the data benchmark (the `synth` command makes realistic data; this only needs the shapes).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ModelIR } from '../../compiler/ir.js';
import { createEncodedRow } from '../../runtime/compiled-model.js';
import { ShardWriter, shardSchemaOf, type ShardSchema, type ShardWriterOptions } from '../../runtime/data/shards.js';
import type { ShardManifest } from '../../runtime/data/contracts.js';
import { REPO } from './paths.js';
import { seededRandom } from './random.js';

/** The Outbrain example's IR (idsWidth 40, lengthsWidth 6, numericWidth 32, group display_id). */
export function outbrainIr(): ModelIR {
  return JSON.parse(readFileSync(join(REPO, 'test', 'golden', 'outbrain.ir.json'), 'utf8')) as ModelIR;
}

export interface RandomShardsOptions extends ShardWriterOptions {
  rows: number;
  seed?: number;
  /** Overrides the schema derived from the IR (e.g. to add a weight column). */
  schema?: ShardSchema;
  /** Group sizes are drawn from [2, maxGroup]; one row of each group is clicked. */
  maxGroup?: number;
}

/**
 * Writes `rows` random rows: display groups of 2 to 12 rows numbered from 1 with one click each,
 * multi-hot lists of random length padded with zeros, numerics in [0, 1), weights in (0, 1].
 */
export function writeRandomShards(dir: string, ir: ModelIR, options: RandomShardsOptions): ShardManifest {
  const schema = options.schema ?? shardSchemaOf(ir);
  const writer = new ShardWriter(dir, schema, options);
  const random = seededRandom(options.seed ?? 1);
  const row = createEncodedRow(schema.layout);
  const maxGroup = options.maxGroup ?? 12;
  let group = 0;
  let left = 0;
  let clicked = 0;
  for (let n = 0; n < options.rows; n++) {
    if (left === 0) {
      group += 1;
      left = 2 + Math.floor(random() * (maxGroup - 1));
      clicked = Math.floor(random() * left);
    }
    for (const slot of schema.layout.ids) {
      const count = slot.lengthSlot === null ? slot.width : Math.floor(random() * (slot.width + 1));
      if (slot.lengthSlot !== null) row.lengths[slot.lengthSlot] = count;
      for (let k = 0; k < slot.width; k++) {
        row.ids[slot.offset + k] = k < count ? Math.floor(random() * 100_000) : 0;
        if (slot.weightOffset !== null) row.weights[slot.weightOffset + k] = k < count ? 1 - random() : 0;
      }
    }
    for (let k = 0; k < row.numeric.length; k++) row.numeric[k] = random();
    left -= 1;
    row.label = left === clicked ? 1 : 0;
    row.group = group;
    row.weight = 1 - random();
    writer.append(row);
  }
  return writer.finish();
}
