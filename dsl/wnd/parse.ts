// `.wnd` source text -> AST and diagnostics: lexing (lexer.ts), parsing (parser.ts) and building
// the AST (visitor.ts). Never throws for anything in the source: every problem is a diagnostic and
// the AST is the best that could be made of the rest.

import type { IRecognitionException, IToken } from 'chevrotain';
import type { ModelAst, Span } from '../ast.js';
import { Reporter, type Diagnostic } from '../../compiler/diagnostics.js';
import { describeFound, isVirtual, LBracket, LCurly, LParen, lexWnd, RBracket, RCurly, RParen, tokenSpan } from './lexer.js';
import { wndParser } from './parser.js';
import { buildAst } from './visitor.js';

/** Deeper nesting than any model needs; the limit keeps a hostile file from exhausting the stack. */
export const MAX_NESTING = 64;

export function parseWnd(source: string, file: string): { ast: ModelAst; diagnostics: Diagnostic[] } {
  const reporter = new Reporter(file);
  const { tokens, comments } = lexWnd(source, reporter);
  const parsed = limitNesting(tokens, reporter);
  wndParser.input = parsed;
  const cst = wndParser.file();
  reportSyntaxErrors(wndParser.errors, source, reporter);
  const ast = buildAst(cst, { source, file, tokens: parsed, comments, reporter });
  const diagnostics = reporter.diagnostics.map((d, i) => ({ d, i })).sort((a, b) => a.d.span.start - b.d.span.start || a.i - b.i);
  return { ast, diagnostics: diagnostics.map(({ d }) => d) };
}

/**
 * Reports the parser's errors, one per line: after an error the parser skips ahead to a point it
 * can go on from, and what it meets on the way, on the same line, is fallout rather than news.
 */
function reportSyntaxErrors(errors: readonly IRecognitionException[], source: string, reporter: Reporter): void {
  let lastLineStart = -1;
  for (const error of errors) {
    const span = errorSpan(error.token, source);
    const lineStart = source.lastIndexOf('\n', span.start - 1) + 1;
    if (lineStart === lastLineStart) continue;
    lastLineStart = lineStart;
    reporter.report('WND1003', span, error.message);
  }
}

/** The offending token; at the end of the input (or for a token made up in recovery) an empty span at the end. */
function errorSpan(token: IToken, source: string): Span {
  if (isVirtual(token)) return { start: source.length, end: source.length };
  return tokenSpan(token);
}

/** Cuts the token stream where brackets nest deeper than MAX_NESTING, reporting it. */
function limitNesting(tokens: IToken[], reporter: Reporter): IToken[] {
  let depth = 0;
  for (let i = 0; i < tokens.length; i++) {
    const type = tokens[i]!.tokenType;
    if (type === LCurly || type === LBracket || type === LParen) depth++;
    else if (type === RCurly || type === RBracket || type === RParen) depth = Math.max(0, depth - 1);
    if (depth > MAX_NESTING) {
      const token = tokens[i]!;
      reporter.report('WND1003', tokenSpan(token), `${describeFound(token)} nests deeper than ${MAX_NESTING} levels`, {
        help: 'the rest of the file is not read; flatten the nesting',
      });
      return tokens.slice(0, i);
    }
  }
  return tokens;
}
