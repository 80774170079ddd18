// wndc's programmatic API: compile a spec to diagnostics and IR, emit its TypeScript module.
export { compileSource, formatOfPath, parseSource, type CompileOptions, type CompileResult, type SourceFormat } from './compile.js';
export { CATALOG, type Diagnostic, type DiagnosticCode, type Severity } from './diagnostics.js';
export { renderDiagnostic, diagnosticToJson, summarize } from './render.js';
export { emitModule } from './emit.js';
export { inspectJson, inspectText } from './inspect.js';
export type * from './ir.js';
export type { ModelAst } from '../dsl/ast.js';
