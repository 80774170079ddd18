// fmix32, MurmurHash3's finaliser: spreads the bits of a 32-bit integer. Shared by the seeded
// generators (batch shuffling, synthetic data) so they stay reproducible from their documentation.

export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
