// Where wndc keeps what it can rebuild (compiled modules, synthetic data): WNDC_CACHE_DIR, else the
// system's temporary folder.

import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function cacheRoot(): string {
  return process.env.WNDC_CACHE_DIR ?? join(tmpdir(), 'wndc-cache');
}
