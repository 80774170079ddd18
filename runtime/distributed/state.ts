// Rank 0's model to every rank: its parameters and optimizer slots (freshly initialised, or
// restored from model_dir's latest checkpoint, which only rank 0 reads) and the training position.

import type { Engine, NamedTensor } from '../engine/engine.js';
import { broadcastBytes, CollectiveError, type Collective } from './collective.js';

/**
 * Broadcasts rank 0's engine state and `position` (any JSON value); every other rank loads the
 * state into its engine (built from the same spec) and gets rank 0's position back.
 */
export async function broadcastModel<P>(collective: Collective, engine: Engine, position: P): Promise<P> {
  const mine = await engine.state();
  const header = collective.rank === 0 ? new TextEncoder().encode(JSON.stringify({ position, tensors: mine.map((t) => [t.name, t.data.length]) })) : null;
  const received = JSON.parse(new TextDecoder().decode(await broadcastBytes(collective, header, 0))) as { position: P; tensors: [string, number][] };
  const expected = mine.map((t) => `${t.name}:${t.data.length}`).join(',');
  const found = received.tensors.map(([name, length]) => `${name}:${length}`).join(',');
  if (expected !== found) {
    // Every rank compiles the same spec, so this is a job started with different specs or wndc versions.
    throw new CollectiveError(`rank ${collective.rank}'s model differs from rank 0's (different spec files or wndc versions?): its tensors are not rank 0's`);
  }
  for (const tensor of mine) await collective.broadcast(tensor.data, 0);
  if (collective.rank !== 0) await engine.loadState(mine as NamedTensor[]);
  return received.position;
}
