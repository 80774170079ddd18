// The compiler's programmatic API. Results are data ({ diagnostics, ast?, ir? }), never exceptions
// for user errors; printing is the CLI's business.

import { readFileSync } from 'node:fs';
import { dirname, extname, resolve } from 'node:path';
import type { ModelAst } from '../dsl/ast.js';
import { parseWnd } from '../dsl/wnd/parse.js';
import { parseYaml } from '../dsl/yaml/parse.js';
import { checkModel } from './check/model.js';
import { dedupeDiagnostics, hasErrors, Reporter, type Diagnostic, type DiagnosticCode } from './diagnostics.js';
import type { ModelIR } from './ir.js';

export type SourceFormat = 'wnd' | 'yaml';

export function formatOfPath(path: string): SourceFormat | undefined {
  const ext = extname(path).toLowerCase();
  if (ext === '.wnd') return 'wnd';
  if (ext === '.yaml' || ext === '.yml') return 'yaml';
  return undefined;
}

export interface ParseResult {
  ast: ModelAst;
  diagnostics: Diagnostic[];
}

export function parseSource(source: string, file: string, format: SourceFormat): ParseResult {
  return format === 'wnd' ? parseWnd(source, file) : parseYaml(source, file);
}

export interface CompileOptions {
  /** Folder that relative paths in the spec (vocabulary files) are resolved against. */
  baseDir?: string;
  /** Reads a file for the spec; default: the file system. Returns undefined when unreadable. */
  readText?: (absolutePath: string) => string | undefined;
}

export interface CompileResult {
  diagnostics: Diagnostic[];
  ast: ModelAst;
  /** Present only when there are no errors. */
  ir?: ModelIR;
}

export function compileSource(source: string, file: string, format: SourceFormat, options: CompileOptions = {}): CompileResult {
  const parsed = parseSource(source, file, format);
  const reporter = new Reporter(file);
  const baseDir = options.baseDir ?? dirname(resolve(file));
  const read = options.readText ?? readTextOrUndefined;
  // A file that does not parse still gets its semantic checks, so one run shows every error; but
  // what recovery may have lost (a section, a parameter) is not reported as missing.
  const ir = checkModel(parsed.ast, reporter, { readText: (p) => read(resolve(baseDir, p)) });
  const syntaxBroken = hasErrors(parsed.diagnostics);
  const semantic = syntaxBroken ? reporter.diagnostics.filter((d) => d.severity === 'error' && !AFTER_SYNTAX_ERRORS_UNRELIABLE.has(d.code)) : reporter.diagnostics;
  const diagnostics = sortDiagnostics(dedupeDiagnostics([...parsed.diagnostics, ...semantic]));
  const result: CompileResult = { diagnostics, ast: parsed.ast };
  if (ir !== undefined && !hasErrors(diagnostics)) result.ir = ir;
  return result;
}

/** Checks about what is absent, which a syntax error's recovery can cause rather than the user. */
const AFTER_SYNTAX_ERRORS_UNRELIABLE: ReadonlySet<DiagnosticCode> = new Set(['WND3007', 'WND5001', 'WND5007']);

/** Errors before warnings, each in source order, so the first thing read is the first thing to fix. */
function sortDiagnostics(diagnostics: Diagnostic[]): Diagnostic[] {
  return diagnostics
    .map((d, i) => ({ d, i }))
    .sort((a, b) => (a.d.severity === b.d.severity ? 0 : a.d.severity === 'error' ? -1 : 1) || a.d.span.start - b.d.span.start || a.i - b.i)
    .map((x) => x.d);
}

export function readTextOrUndefined(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}
