// Where a value sits decides what it means: the expected type of a property, of a call's argument,
// of a list item. Front ends use this to name positional arguments, printers to decide quoting,
// the checker to validate. All of it is read from the language table.

import type { Arg, Ident, Span, Value } from './ast.js';
import { BLOCK_PROPS, FAMILIES, type CallableSpec, type FamilyName, type ParamSpec, type ParamType } from './language.js';

export type BlockKey = keyof typeof BLOCK_PROPS;

export function blockParam(block: BlockKey, key: string): ParamSpec | undefined {
  return BLOCK_PROPS[block].find((p) => p.name === key);
}

export function callableOf(family: FamilyName, name: string): CallableSpec | undefined {
  return FAMILIES[family].find((c) => c.name === name);
}

export function argParam(callable: CallableSpec, name: string): ParamSpec | undefined {
  return callable.params.find((p) => p.name === name);
}

/** The family a call written where `type` is expected belongs to, if calls are allowed there. */
export function callFamily(type: ParamType | undefined, callee?: string): FamilyName | undefined {
  if (type === undefined) return undefined;
  if (type.kind === 'call') return type.family;
  if (type.kind === 'oneOf') {
    const calls = type.options.filter((o): o is Extract<ParamType, { kind: 'call' }> => o.kind === 'call');
    const match = calls.find((c) => callee === undefined || c.only === undefined || c.only.includes(callee));
    return (match ?? calls[0])?.family;
  }
  return undefined;
}

/** The expected type of a list's items, or of a non-list value when `type` is a list of one thing. */
export function itemType(type: ParamType | undefined): ParamType | undefined {
  return type?.kind === 'list' ? type.of : undefined;
}

/** The expected type of argument `name` of `callee` in `family`. */
export function argType(family: FamilyName | undefined, callee: string, name: string): ParamType | undefined {
  if (family === undefined) return undefined;
  const c = callableOf(family, callee);
  return c === undefined ? undefined : argParam(c, name)?.type;
}

export interface PositionalArg {
  value: Value;
  span: Span;
}

export interface NamingProblem {
  kind: 'too-many';
  span: Span;
  callee: string;
  max: number;
}

/**
 * Names positional arguments from the callee's signature: each `positional: 'one'` parameter takes
 * the next one, a `positional: 'rest'` parameter takes the remaining ones as a list. Returns the
 * named arguments (positional first, in order) and any problem. Unknown callees keep their
 * positional arguments under the names `$1`, `$2`, ... (the checker reports the callee).
 */
export function namePositional(
  family: FamilyName | undefined,
  callee: Ident,
  positional: PositionalArg[],
  named: Arg[],
): { args: Arg[]; problem?: NamingProblem } {
  const callable = family === undefined ? undefined : callableOf(family, callee.name);
  if (callable === undefined) {
    return { args: [...positional.map((p, i) => ({ name: { name: `$${i + 1}`, span: p.span }, value: p.value })), ...named] };
  }
  const args: Arg[] = [];
  const slots = callable.params.filter((p) => p.positional !== undefined);
  let i = 0;
  for (const slot of slots) {
    if (i >= positional.length) break;
    if (slot.positional === 'rest') {
      const rest = positional.slice(i);
      const span = { start: rest[0]!.span.start, end: rest[rest.length - 1]!.span.end };
      args.push({ name: { name: slot.name, span }, value: { type: 'list', items: rest.map((r) => r.value), span } });
      i = positional.length;
    } else {
      const p = positional[i]!;
      args.push({ name: { name: slot.name, span: p.span }, value: p.value });
      i++;
    }
  }
  args.push(...named);
  if (i < positional.length) {
    const extra = positional[i]!;
    return { args, problem: { kind: 'too-many', span: extra.span, callee: callee.name, max: slots.length } };
  }
  return { args };
}

/** True when a text value is written bare (an identifier-like name, enum, metric or size) rather than quoted. */
export function isBareText(type: ParamType | undefined, text: string): boolean {
  if (!/^[A-Za-z_][A-Za-z0-9_]*(@[0-9]+)?$/.test(text) && !/^[0-9]+(\.[0-9]+)?([KMGT]i?B|B)$/.test(text)) return false;
  if (type === undefined) return /^[A-Za-z_][A-Za-z0-9_]*$/.test(text) && text !== 'true' && text !== 'false';
  switch (type.kind) {
    case 'ref':
    case 'enum':
    case 'metric':
    case 'size':
    case 'call':
      return text !== 'true' && text !== 'false';
    case 'oneOf':
      return type.options.some((o) => isBareText(o, text));
    default:
      return false;
  }
}

