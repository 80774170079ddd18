// Turns a model IR into its compiled, runnable module: the same TypeScript module `wndc compile`
// writes, transpiled to JavaScript and imported, so that preprocessing and training run exactly the
// straight-line transforms a user can read. Modules are cached by the IR's hash.

import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { writeFileAtomic } from '../compiler/fs.js';
import type { ModelIR } from '../compiler/ir.js';
import type { CompiledModel } from './compiled-model.js';
import { cacheRoot } from './cache.js';
import { specHash } from './data/spec-hash.js';

export type LoadedModel = CompiledModel<Record<string, unknown>, Record<string, Record<string, number>>>;

/** The runtime index the emitted module imports as `wndc/runtime`: a sibling of this file, built or source. */
function runtimeIndexUrl(): string {
  for (const name of ['index.js', 'index.ts']) {
    const url = new URL(`./${name}`, import.meta.url);
    if (existsSync(fileURLToPath(url))) return url.href;
  }
  throw new Error('internal: the wndc runtime index is missing next to load-model');
}

export function moduleCacheDir(): string {
  return join(cacheRoot(), 'modules');
}

/** Emits, transpiles and imports the module of `ir`; returns its default export. */
export async function loadCompiledModel(ir: ModelIR): Promise<LoadedModel> {
  const hash = specHash(ir);
  const dir = moduleCacheDir();
  const runtimeUrl = runtimeIndexUrl();
  // The runtime's location is part of the key: a module links to one runtime copy.
  const file = join(dir, `${ir.model}-${hash.slice(0, 16)}-${fnv1a(runtimeUrl)}.mjs`);
  if (!existsSync(file)) {
    const [{ emitModule }, { ts }] = await Promise.all([import('../compiler/emit.js'), import('ts-morph')]);
    const js = ts.transpileModule(emitModule(ir), { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
    const linked = js.replaceAll('from "wndc/runtime"', `from ${JSON.stringify(runtimeUrl)}`);
    if (linked.includes('"wndc/runtime"')) throw new Error('internal: the emitted module imports the runtime in an unexpected way');
    mkdirSync(dir, { recursive: true });
    writeFileAtomic(file, linked);
  }
  const module = (await import(pathToFileURL(file).href)) as { default: LoadedModel };
  return module.default;
}

/** A short stable hash of a text, for file names. */
function fnv1a(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}
