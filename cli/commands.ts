// The compiler's commands: check, compile, inspect, fmt, convert. Each reads its inputs, calls the
// programmatic API and prints; each returns its exit code.

import { basename, dirname, join, relative, resolve } from 'node:path';
import { compileSource, parseSource, type CompileResult, type SourceFormat } from '../compiler/compile.js';
import { hasErrors } from '../compiler/diagnostics.js';
import { writeFileAtomic } from '../compiler/fs.js';
import { inspectText, inspectJson } from '../compiler/inspect.js';
import type { ModelAst } from '../dsl/ast.js';
import type { ModelIR } from '../compiler/ir.js';
import { printWnd } from '../dsl/wnd/print.js';
import { printYaml } from '../dsl/yaml/print.js';
import { EXIT, parseDiagnosticFormat, printDiagnostics, readSpec, UsageError, type CliIO, type SpecFile } from './io.js';

export function compileSpec(spec: SpecFile): CompileResult {
  return compileSource(spec.source, spec.path, spec.format, { baseDir: dirname(spec.absolute) });
}

/** Reads and compiles a spec for a command that needs its IR; prints the diagnostics and returns undefined on errors. */
export function compileSpecFile(file: string, io: CliIO): ModelIR | undefined {
  const spec = readSpec(file, io);
  const result = compileSpec(spec);
  if (result.ir === undefined) printDiagnostics(spec, result.diagnostics, 'text', io);
  return result.ir;
}

export function checkCommand(file: string, opts: { format?: string }, io: CliIO): number {
  const format = parseDiagnosticFormat(opts.format);
  const spec = readSpec(file, io);
  const result = compileSpec(spec);
  printDiagnostics(spec, result.diagnostics, format, io);
  return hasErrors(result.diagnostics) ? EXIT.diagnostics : EXIT.ok;
}

export async function compileCommand(file: string, opts: { format?: string; outDir?: string }, io: CliIO): Promise<number> {
  const format = parseDiagnosticFormat(opts.format);
  const spec = readSpec(file, io);
  const result = compileSpec(spec);
  if (result.ir === undefined) {
    printDiagnostics(spec, result.diagnostics, format, io);
    return EXIT.diagnostics;
  }
  const outDir = opts.outDir === undefined ? dirname(spec.absolute) : resolve(io.cwd, opts.outDir);
  const modulePath = join(outDir, `${result.ir.model}.model.ts`);
  const irPath = join(outDir, `${result.ir.model}.ir.json`);
  // ts-morph (and the TypeScript compiler inside it) loads only when a module is emitted.
  const { emitModule } = await import('../compiler/emit.js');
  writeFileAtomic(modulePath, emitModule(result.ir));
  writeFileAtomic(irPath, `${JSON.stringify(result.ir, null, 2)}\n`);
  const written = [modulePath, irPath].map((p) => relative(io.cwd, p) || basename(p));
  printDiagnostics(spec, result.diagnostics, format, io, { written });
  if (format === 'text') io.stderr(`wrote ${written.join(', ')}\n`);
  return EXIT.ok;
}

export function inspectCommand(file: string, opts: { json?: boolean }, io: CliIO): number {
  const spec = readSpec(file, io);
  const result = compileSpec(spec);
  if (result.ir === undefined) {
    printDiagnostics(spec, result.diagnostics, 'text', io);
    return EXIT.diagnostics;
  }
  if (result.diagnostics.length > 0) printDiagnostics(spec, result.diagnostics, 'text', io);
  io.stdout(opts.json ? `${JSON.stringify(inspectJson(result.ir), null, 2)}\n` : inspectText(result.ir));
  return EXIT.ok;
}

/** Parses a spec for fmt/convert, which need a syntactically whole file but not a valid model. */
function parseForPrinting(spec: SpecFile, io: CliIO): ModelAst | undefined {
  const parsed = parseSource(spec.source, spec.path, spec.format);
  if (hasErrors(parsed.diagnostics)) {
    printDiagnostics(spec, parsed.diagnostics, 'text', io);
    io.stderr('fix the syntax errors above first: a file that does not parse cannot be formatted\n');
    return undefined;
  }
  return parsed.ast;
}

export function printAst(ast: ModelAst, format: SourceFormat): string {
  return format === 'wnd' ? printWnd(ast) : printYaml(ast);
}

export function fmtCommand(files: string[], opts: { check?: boolean; stdout?: boolean }, io: CliIO): number {
  let exit: number = EXIT.ok;
  for (const file of files) {
    const spec = readSpec(file, io);
    const ast = parseForPrinting(spec, io);
    if (ast === undefined) {
      exit = EXIT.diagnostics;
      continue;
    }
    const formatted = printAst(ast, spec.format);
    if (opts.stdout) {
      io.stdout(formatted);
    } else if (opts.check) {
      if (formatted !== spec.source) {
        io.stderr(`${spec.path}: not formatted (run \`wndc fmt ${spec.path}\`)\n`);
        exit = EXIT.diagnostics;
      }
    } else if (formatted !== spec.source) {
      writeFileAtomic(spec.absolute, formatted);
      io.stderr(`formatted ${spec.path}\n`);
    }
  }
  return exit;
}

export function convertCommand(file: string, opts: { to?: string; output?: string }, io: CliIO): number {
  const to = opts.to;
  if (to !== 'yaml' && to !== 'wnd') throw new UsageError(`--to takes \`yaml\` or \`wnd\`${to === undefined ? '' : `, not ${JSON.stringify(to)}`}`);
  const spec = readSpec(file, io);
  const ast = parseForPrinting(spec, io);
  if (ast === undefined) return EXIT.diagnostics;
  const text = printAst(ast, to);
  if (opts.output === undefined) {
    io.stdout(text);
  } else {
    writeFileAtomic(resolve(io.cwd, opts.output), text);
    io.stderr(`wrote ${opts.output}\n`);
  }
  return EXIT.ok;
}
