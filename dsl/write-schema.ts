// Writes dsl/wnd.schema.json, the JSON Schema editors use for `.yaml` models, from schema.ts.
// Run after changing the language table: `node --import tsx dsl/write-schema.ts`.
// test/schema.test.ts fails when the committed file and the generator disagree.

import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildJsonSchema } from './schema.js';

export const SCHEMA_PATH = fileURLToPath(new URL('./wnd.schema.json', import.meta.url));

/** The file's exact text: 2-space JSON and a final newline. */
export function schemaText(): string {
  return `${JSON.stringify(buildJsonSchema(), null, 2)}\n`;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(SCHEMA_PATH, schemaText());
  console.log(`wrote ${SCHEMA_PATH}`);
}
