// The `.wnd` tokens, in the one ordered list chevrotain's lexer tries first to last, and `lexWnd`,
// which turns source text into tokens and reports lexical problems (WND1001, WND1002, WND1006).
//
// Keywords are only `model`, `true` and `false`; section names (`input`, `deep`, ...) and `list`
// stay identifiers and the grammar decides by context, so a column may still be called `deep`.
// Malformed numbers and unterminated strings are real tokens in the number and string categories:
// the parser accepts them where a number or string may stand, so one typo gives one diagnostic.

import { createToken, EOF, Lexer, type IToken, type TokenType } from 'chevrotain';
import type { Span } from '../ast.js';
import type { Reporter } from '../../compiler/diagnostics.js';

// Categories the parser consumes; the concrete tokens below sort into them.
/** Any name: an identifier, or the `model` keyword where a name is expected (`model: int`). */
export const Name = createToken({ name: 'Name', pattern: Lexer.NA });
export const NumberLiteral = createToken({ name: 'NumberLiteral', pattern: Lexer.NA });
export const StringLiteral = createToken({ name: 'StringLiteral', pattern: Lexer.NA });
/** `:` or `=` between a name and what it declares; the visitor reports the wrong one of the two. */
export const Separator = createToken({ name: 'Separator', pattern: Lexer.NA });

export const WhiteSpace = createToken({ name: 'WhiteSpace', pattern: /[ \t\r\n\f\v\uFEFF]+/, group: Lexer.SKIPPED });
export const Comment = createToken({ name: 'Comment', pattern: /#[^\n\r]*/, group: 'comments' });

/** Any backslash escape is accepted here; `decodeString` checks that it is a JSON one. */
export const ClosedString = createToken({ name: 'ClosedString', pattern: /"(?:[^"\\\n\r]|\\[^\n\r])*"/, categories: [StringLiteral] });
/** A string that reaches the end of its line: from the quote to the end of the line. */
export const UnterminatedString = createToken({
  name: 'UnterminatedString',
  pattern: /"(?:[^"\\\n\r]|\\[^\n\r])*\\?/,
  categories: [StringLiteral],
});

export const Size = createToken({ name: 'Size', pattern: /\d+(?:\.\d+)?(?:[KMGT]i?B|B)(?![A-Za-z0-9_.])/ });
export const ValidNumber = createToken({
  name: 'ValidNumber',
  pattern: /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?(?![A-Za-z0-9_.])/,
  categories: [NumberLiteral],
});
/** `16G`, `1.5.2`, `0x10`, `.5`: something that starts like a number but is not one. */
export const MalformedNumber = createToken({ name: 'MalformedNumber', pattern: /-?(?:\d|\.\d)[A-Za-z0-9_.]*/, categories: [NumberLiteral] });

export const MetricRef = createToken({ name: 'MetricRef', pattern: /[A-Za-z_][A-Za-z0-9_]*@\d+/ });
export const Identifier = createToken({ name: 'Identifier', pattern: /[A-Za-z_][A-Za-z0-9_]*/, categories: [Name] });
export const Model = createToken({ name: 'Model', pattern: /model/, longer_alt: Identifier, categories: [Name] });
export const True = createToken({ name: 'True', pattern: /true/, longer_alt: Identifier });
export const False = createToken({ name: 'False', pattern: /false/, longer_alt: Identifier });

export const LCurly = createToken({ name: 'LCurly', pattern: /{/ });
export const RCurly = createToken({ name: 'RCurly', pattern: /}/ });
export const LParen = createToken({ name: 'LParen', pattern: /\(/ });
export const RParen = createToken({ name: 'RParen', pattern: /\)/ });
export const LBracket = createToken({ name: 'LBracket', pattern: /\[/ });
export const RBracket = createToken({ name: 'RBracket', pattern: /]/ });
export const LAngle = createToken({ name: 'LAngle', pattern: /</ });
export const RAngle = createToken({ name: 'RAngle', pattern: />/ });
export const Colon = createToken({ name: 'Colon', pattern: /:/, categories: [Separator] });
export const Equals = createToken({ name: 'Equals', pattern: /=/, categories: [Separator] });
export const Comma = createToken({ name: 'Comma', pattern: /,/ });
export const At = createToken({ name: 'At', pattern: /@/ });

/** Order matters: the first pattern that matches wins, so longer and more specific forms come first. */
export const allTokens: TokenType[] = [
  WhiteSpace,
  Comment,
  ClosedString,
  UnterminatedString,
  Size,
  ValidNumber,
  MalformedNumber,
  MetricRef,
  Model,
  True,
  False,
  Identifier,
  LCurly,
  RCurly,
  LParen,
  RParen,
  LBracket,
  RBracket,
  LAngle,
  RAngle,
  Colon,
  Equals,
  Comma,
  At,
  Name,
  NumberLiteral,
  StringLiteral,
  Separator,
];

const wndLexer = new Lexer(allTokens, { positionTracking: 'full', ensureOptimizations: true });

const TOKEN_LABELS: Readonly<Record<string, string>> = {
  Name: 'a name',
  Identifier: 'a name',
  NumberLiteral: 'a number',
  StringLiteral: 'a string',
  Size: 'a size',
  MetricRef: 'a metric',
  Model: '`model`',
  True: '`true`',
  False: '`false`',
  LCurly: '`{`',
  RCurly: '`}`',
  LParen: '`(`',
  RParen: '`)`',
  LBracket: '`[`',
  RBracket: '`]`',
  LAngle: '`<`',
  RAngle: '`>`',
  Colon: '`:`',
  Equals: '`=`',
  Comma: '`,`',
  At: '`@`',
  EOF: 'end of input',
};

/** How a kind of token is named in messages: `` `:` ``, `a name`, `end of input`. */
export function tokenLabel(type: TokenType): string {
  return TOKEN_LABELS[type.name] ?? type.name;
}

/** How a token met in the source is named in messages: its text in backticks, or `end of input`. */
export function describeFound(token: IToken): string {
  if (token.tokenType === EOF || isVirtual(token)) return 'end of input';
  const text = token.image.length > 30 ? `${token.image.slice(0, 29)}…` : token.image;
  return `\`${text}\``;
}

/** Tokens the parser made up while recovering from an error have no place in the source. */
export function isVirtual(token: IToken): boolean {
  return token.isInsertedInRecovery === true || Number.isNaN(token.startOffset) || token.tokenType === EOF;
}

export function tokenSpan(token: IToken): Span {
  return { start: token.startOffset, end: token.startOffset + token.image.length };
}

export interface LexedWnd {
  tokens: IToken[];
  comments: IToken[];
}

/** Tokenises `source`, reporting unexpected characters, unterminated strings and invalid numbers. */
export function lexWnd(source: string, reporter: Reporter): LexedWnd {
  const result = wndLexer.tokenize(source);
  for (const error of result.errors) {
    const span = { start: error.offset, end: error.offset + error.length };
    const text = source.slice(span.start, span.end);
    const plural = [...text].length > 1;
    reporter.report('WND1001', span, `unexpected character${plural ? 's' : ''} ${showCharacters(text)}`, unexpectedHelp(text));
  }
  for (const token of result.tokens) {
    if (token.tokenType === UnterminatedString) {
      reporter.report('WND1002', tokenSpan(token), 'unterminated string', { help: 'add the closing `"`; a string ends on the line it starts' });
    } else if (token.tokenType === MalformedNumber) {
      reporter.report('WND1006', tokenSpan(token), `invalid number \`${token.image}\``, { help: malformedNumberHelp(token.image) });
    } else if (token.tokenType === ValidNumber) {
      checkNumber(token, reporter);
    }
  }
  return { tokens: result.tokens, comments: result.groups['comments'] ?? [] };
}

function checkNumber(token: IToken, reporter: Reporter): void {
  const value = Number(token.image);
  if (!Number.isFinite(value)) {
    reporter.report('WND1006', tokenSpan(token), `number \`${token.image}\` is too large`, { help: `numbers must lie within ±${Number.MAX_VALUE}` });
  } else if (/^-?\d+$/.test(token.image) && !Number.isSafeInteger(value)) {
    reporter.report('WND1006', tokenSpan(token), `integer \`${token.image}\` is too large to be represented exactly`, {
      help: `integers must lie within ±${Number.MAX_SAFE_INTEGER}`,
    });
  }
}

function malformedNumberHelp(text: string): string {
  if (/^-?\./.test(text)) return `write a digit before the decimal point: \`${text.replace('.', '0.')}\``;
  if (/^\d+(?:\.\d+)?[A-Za-z]+$/.test(text)) return 'sizes take one of the units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB, e.g. `16GiB`';
  return 'numbers are written like `42`, `-0.5` or `1e-7`';
}

function unexpectedHelp(text: string): { help?: string } {
  if (text.startsWith("'")) return { help: 'strings are written in double quotes: `"text"`' };
  if (text.startsWith(';')) return { help: 'declarations need no separator: write one per line' };
  return {};
}

/** The characters in backticks: printable ones as written, others (and the backtick) as `U+XXXX`; long runs cut. */
function showCharacters(text: string): string {
  const chars = [...text];
  const shown = chars.slice(0, 16).map((c) => {
    const code = c.codePointAt(0)!;
    const printable = c !== '`' && ((code >= 0x21 && code <= 0x7e) || (code > 0xa0 && /\S/u.test(c) && !(code >= 0xd800 && code <= 0xdfff)));
    return printable ? c : `U+${code.toString(16).toUpperCase().padStart(4, '0')}`;
  });
  return `\`${shown.join('')}${chars.length > 16 ? '…' : ''}\``;
}

/** The value of a string token (quotes removed, JSON escapes decoded) and the spans of invalid escapes. */
export function decodeString(token: IToken): { value: string; badEscapes: Span[] } {
  const image = token.image;
  const closed = token.tokenType === ClosedString;
  const body = image.slice(1, closed ? -1 : undefined);
  const badEscapes: Span[] = [];
  let value = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c !== '\\') {
      value += c;
      continue;
    }
    const next = body[i + 1];
    const simple = next === undefined ? undefined : SIMPLE_ESCAPES[next];
    if (simple !== undefined) {
      value += simple;
      i++;
    } else if (next === 'u' && /^[0-9a-fA-F]{4}$/.test(body.slice(i + 2, i + 6))) {
      value += String.fromCharCode(parseInt(body.slice(i + 2, i + 6), 16));
      i += 5;
    } else {
      const start = token.startOffset + 1 + i;
      const length = next === undefined ? 1 : 2;
      badEscapes.push({ start, end: start + length });
      if (next !== undefined) value += next;
      i++;
    }
  }
  return { value, badEscapes };
}

const SIMPLE_ESCAPES: Readonly<Record<string, string>> = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
