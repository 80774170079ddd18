// Attaches YAML comments to the AST by position, so that `fmt` and `convert` never lose them.
//
// The `yaml` library's own attachment (`commentBefore`/`comment`) merges the comment after
// `input:` with the comment before its first column, so comments are taken from the library's
// token stream (with offsets) and attached here by these rules:
//   - a comment after code on its line is the trailing comment of the declaration, property,
//     section or model line that ends on that line (the one ending last; the innermost on a tie),
//     else of the one whose first line it is (`input:  # columns`);
//   - a comment on its own line is a leading comment of the next declaration, property or section
//     of the innermost section containing it (or of the next top-level entry);
//   - comments after the last entry are the model's trailing comments;
//   - a comment inside a value (a list item, a nested call) has no place of its own in the AST: it
//     becomes the trailing comment of the enclosing declaration or property when that is free, else
//     one of its leading comments. It moves, but is not lost.

import type { CST } from 'yaml';
import type { ModelAst, Trivia } from '../ast.js';
import { LineIndex } from '../../compiler/render.js';
import type { Entity } from './build.js';

export interface YamlComment {
  offset: number;
  /** Without `#`, one leading space stripped, trailing spaces dropped. */
  text: string;
}

export function commentText(raw: string): string {
  return raw.replace(/^#/, '').replace(/^ /, '').trimEnd();
}

/** Every comment, in source order, from the library's concrete syntax tree (tree.ts readYaml's tokens). */
export function collectComments(tokens: readonly CST.Token[]): YamlComment[] {
  const found: YamlComment[] = [];
  const walk = (x: unknown, depth: number): void => {
    if (depth > 200 || x === null || typeof x !== 'object') return;
    if (Array.isArray(x)) {
      for (const y of x) walk(y, depth + 1);
      return;
    }
    const token = x as { type?: unknown; offset?: unknown; source?: unknown };
    if (token.type === 'comment' && typeof token.offset === 'number' && typeof token.source === 'string') {
      found.push({ offset: token.offset, text: commentText(token.source) });
      return;
    }
    for (const value of Object.values(x)) walk(value, depth + 1);
  };
  walk(tokens, 0);
  const seen = new Set<number>();
  return found.filter((c) => !seen.has(c.offset) && seen.add(c.offset)).sort((a, b) => a.offset - b.offset);
}

interface Placed {
  entity: Entity;
  depth: number;
  firstLine: number;
  lastLine: number;
}

function addLeading(trivia: Trivia, text: string): void {
  (trivia.leadingComments ??= []).push(text);
}

function addTrailing(trivia: Trivia, text: string): void {
  if (trivia.trailingComment === undefined) trivia.trailingComment = text;
  else addLeading(trivia, text);
}

export function attachComments(source: string, comments: readonly YamlComment[], entities: readonly Entity[], ast: ModelAst): void {
  if (comments.length === 0) return;
  const lines = new LineIndex(source);
  const placed: Placed[] = [];
  const place = (list: readonly Entity[], depth: number): void => {
    for (const entity of list) {
      const { start, end } = entity.span;
      placed.push({ entity, depth, firstLine: lines.position(start).line, lastLine: lines.position(Math.max(start, end - 1)).line });
      place(entity.children, depth + 1);
    }
  };
  place(entities, 0);

  const innermostContaining = (offset: number): Placed | undefined => {
    let best: Placed | undefined;
    for (const p of placed) if (p.entity.span.start < offset && offset < p.entity.span.end && (best === undefined || p.depth > best.depth)) best = p;
    return best;
  };
  const leadingOfNext = (list: readonly Entity[], offset: number): Entity | undefined => list.find((e) => e.span.start > offset);

  const ownLine = (c: YamlComment): void => {
    const container = innermostContaining(c.offset);
    if (container === undefined) {
      const next = leadingOfNext(entities, c.offset);
      if (next !== undefined) addLeading(next.trivia, c.text);
      else (ast.trailingComments ??= []).push(c.text);
      return;
    }
    const next = leadingOfNext(container.entity.children, c.offset);
    if (next !== undefined) addLeading(next.trivia, c.text);
    else if (container.entity.children.length === 0) addTrailing(container.entity.trivia, c.text);
    else addLeading(container.entity.trivia, c.text);
  };

  for (const c of comments) {
    const line = lines.position(c.offset).line;
    const before = source.slice(c.offset - (lines.position(c.offset).column - 1), c.offset);
    if (before.trim().length === 0) {
      ownLine(c);
      continue;
    }
    let target: Placed | undefined;
    for (const p of placed) {
      if (p.lastLine !== line || p.entity.span.end > c.offset) continue;
      if (target === undefined || p.entity.span.end > target.entity.span.end || (p.entity.span.end === target.entity.span.end && p.depth > target.depth)) target = p;
    }
    if (target === undefined) {
      for (const p of placed) if (p.firstLine === line && p.entity.span.start < c.offset && (target === undefined || p.depth > target.depth)) target = p;
    }
    target ??= innermostContaining(c.offset);
    if (target !== undefined) addTrailing(target.entity.trivia, c.text);
    else ownLine(c);
  }
}
