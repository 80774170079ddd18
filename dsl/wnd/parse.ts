// `.wnd` source text -> AST and diagnostics: lexing (lexer.ts), parsing (parser.ts) and building
// the AST (visitor.ts). Never throws for anything in the source: every problem is a diagnostic and
// the AST is the best that could be made of the rest.

import { NotAllInputParsedException, tokenMatcher, type IRecognitionException, type IToken } from 'chevrotain';
import type { ModelAst, Span } from '../ast.js';
import { Reporter, type Diagnostic } from '../../compiler/diagnostics.js';
import type { FileCstChildren, FileCstNode } from './cst.js';
import { describeFound, isVirtual, LBracket, LCurly, LParen, lexWnd, Model, Name, RBracket, RCurly, RParen, tokenSpan } from './lexer.js';
import { wndParser } from './parser.js';
import { buildAst } from './visitor.js';

/** Deeper nesting than any model needs; the limit keeps a hostile file from exhausting the stack. */
export const MAX_NESTING = 64;

export function parseWnd(source: string, file: string): { ast: ModelAst; diagnostics: Diagnostic[] } {
  const reporter = new Reporter(file);
  const { tokens, comments } = lexWnd(source, reporter);
  const parsed = limitNesting(tokens, reporter);
  const { cst, errors } = parseTokens(parsed);
  reportSyntaxErrors(errors, source, reporter);
  const ast = buildAst(cst, { source, file, tokens: parsed, comments, reporter });
  const diagnostics = reporter.diagnostics.map((d, i) => ({ d, i })).sort((a, b) => a.d.span.start - b.d.span.start || a.i - b.i);
  return { ast, diagnostics: diagnostics.map(({ d }) => d) };
}

/**
 * Runs the parser over `tokens`. Where it gives up before the end (a stray token between sections)
 * it starts again at the next thing that looks like a section, so one stray `}` does not hide the
 * rest of the file; the pieces' sections are joined in source order.
 */
function parseTokens(tokens: IToken[]): { cst: FileCstNode; errors: IRecognitionException[] } {
  const children: Required<FileCstChildren> = { header: [], section: [] };
  const errors: IRecognitionException[] = [];
  let start = 0;
  for (;;) {
    wndParser.input = start === 0 ? tokens : tokens.slice(start);
    const piece = wndParser.file() as FileCstNode;
    children.header.push(...(piece.children.header ?? []));
    children.section.push(...(piece.children.section ?? []));
    errors.push(...wndParser.errors);
    const stop = wndParser.errors.find((e) => e instanceof NotAllInputParsedException);
    const at = stop === undefined ? -1 : tokens.indexOf(stop.token, start);
    const next = at < 0 ? undefined : nextSectionStart(tokens, at + 1);
    if (next === undefined) break;
    start = next;
  }
  return { cst: { name: 'file', children }, errors };
}

/** The index of the next `model` or `name {` at or after `from`. */
function nextSectionStart(tokens: readonly IToken[], from: number): number | undefined {
  for (let i = from; i < tokens.length; i++) {
    const token = tokens[i]!;
    if (token.tokenType === Model || (tokenMatcher(token, Name) && tokens[i + 1]?.tokenType === LCurly)) return i;
  }
  return undefined;
}

/**
 * Reports the parser's errors, one per line: after an error the parser skips ahead to a point it
 * can go on from, and what it meets on the way is fallout rather than news. An error found at the
 * start of a line but expected after the previous token (a missing `)`) also takes that token's line.
 */
function reportSyntaxErrors(errors: readonly IRecognitionException[], source: string, reporter: Reporter): void {
  const taken = new Set<number>();
  for (const error of errors) {
    const span = errorSpan(error.token, source);
    const previous = (error as { previousToken?: IToken }).previousToken;
    const lines = [lineStart(source, span.start)];
    if (previous !== undefined && !isVirtual(previous) && tokenSpan(previous).end <= span.start) lines.push(lineStart(source, tokenSpan(previous).end));
    if (lines.some((line) => taken.has(line))) continue;
    for (const line of lines) taken.add(line);
    reporter.report('WND1003', span, error.message);
  }
}

function lineStart(source: string, offset: number): number {
  return source.lastIndexOf('\n', offset - 1) + 1;
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
