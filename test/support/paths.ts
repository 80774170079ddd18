// Where things are, for tests.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/**
 * The shared small real datasets; tests that need them skip when the folder is absent.
 * WNDC_SHARED_DATA points elsewhere (on a GPU machine, a copy carried with the checkout).
 */
export const SHARED_DATA = process.env.WNDC_SHARED_DATA ?? join(REPO, '..', 'shared', 'data');
