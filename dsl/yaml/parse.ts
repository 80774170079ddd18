// The YAML front end: YAML text -> the wndc AST, the same tree the `.wnd` front end gives for the
// same model (up to spans). Reading (tree.ts), structure checks against the JSON Schema
// (validate.ts), building the AST (build.ts) and attaching comments (comments.ts) are separate steps.
// Never throws for user input: every problem is a diagnostic.

import type { ModelAst } from '../ast.js';
import { Reporter, type Diagnostic } from '../../compiler/diagnostics.js';
import { buildAst } from './build.js';
import { attachComments, collectComments } from './comments.js';
import { readYaml } from './tree.js';
import { validateStructure } from './validate.js';

export function parseYaml(source: string, file: string): { ast: ModelAst; diagnostics: Diagnostic[] } {
  const reporter = new Reporter(file);
  const { root, tokens, malformed } = readYaml(source, reporter);
  // After a syntax error the tree is a guess; checking its shape would mostly report the guess.
  if (!malformed) validateStructure(root ?? { kind: 'scalar', value: null, span: { start: 0, end: 0 } }, source, reporter);
  const { ast, entities } = buildAst(root, file, reporter);
  attachComments(source, collectComments(tokens), entities, ast);
  return { ast, diagnostics: ordered(reporter.diagnostics) };
}

/** Source order; one report per code and span (an aliased value is read once per use). */
function ordered(diagnostics: readonly Diagnostic[]): Diagnostic[] {
  const seen = new Set<string>();
  return diagnostics
    .filter((d) => {
      const key = `${d.code}:${d.span.start}:${d.span.end}:${d.message}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    })
    .map((d, i) => ({ d, i }))
    .sort((a, b) => a.d.span.start - b.d.span.start || a.d.span.end - b.d.span.end || a.i - b.i)
    .map(({ d }) => d);
}
