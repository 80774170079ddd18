// Validates values against the types the language table declares, and turns them into plain JSON
// with defaults filled in. Reports through the Reporter and returns undefined for an invalid value,
// so later checks simply skip what is already reported.

import type { Arg, CallValue, Span, Value } from '../../dsl/ast.js';
import { describeValue } from '../../dsl/ast.js';
import { callableOf } from '../../dsl/context.js';
import { FAMILIES, METRIC_NAMES, parseMetric, parseSize, type CallableSpec, type FamilyName, type JsonValue, type ParamSpec, type ParamType } from '../../dsl/language.js';
import { didYouMean, suggestNames, type DiagnosticCode, type Reporter } from '../diagnostics.js';

/** A call with its arguments resolved: `{ kind: 'ftrl', learning_rate: 0.2, ... }`. */
export type ResolvedCall = { kind: string } & { [param: string]: JsonValue };

const FAMILY_NOUN: Record<FamilyName, string> = {
  feature: 'feature kind',
  optimizer: 'optimizer',
  initializer: 'initializer',
  decay: 'learning-rate decay',
};

/** One call of each family, for help texts. */
const CALL_EXAMPLE: Record<FamilyName, string> = {
  feature: 'embedding(user_id, dim: 16)',
  optimizer: 'adagrad(learning_rate: 0.05)',
  initializer: 'truncated_normal(stddev: 0.02)',
  decay: 'exponential(rate: 0.96, steps: 1000)',
};

/** Where a value being resolved sits: its parameter (for help texts) and whether it is a list item. */
interface ValueContext {
  spec?: ParamSpec;
  item?: boolean;
}

export class ValueChecker {
  constructor(private readonly reporter: Reporter) {}

  /**
   * Checks the arguments (or block properties) `args` against `params`: unknown names, duplicates,
   * missing required ones, and each value's type. Returns every parameter that is valid or has a
   * default; `where` names the owner in messages (`hashed`, `the deep block`).
   */
  resolveArgs(
    args: readonly Arg[],
    params: readonly ParamSpec[],
    where: string,
    ownerSpan: Span,
    family?: FamilyName,
    /** Parameters whose values the caller validates itself (still counted as given). */
    custom: ReadonlySet<string> = new Set(),
  ): Record<string, JsonValue> {
    const out: Record<string, JsonValue> = {};
    const seen = new Map<string, Arg>();
    /** Parameters an unknown name was probably meant to be: their absence is the same mistake. */
    const misspelt = new Set<string>();
    for (const arg of args) {
      const name = arg.name.name;
      const spec = params.find((p) => p.name === name);
      if (spec === undefined) {
        if (name.startsWith('$')) continue; // positional args of an unknown callee: the callee is reported
        for (const close of suggestNames(name, params.map((p) => p.name))) misspelt.add(close);
        this.reporter.report('WND3006', arg.name.span, `unknown ${family === undefined ? 'property' : 'parameter'} \`${name}\` for ${where}`, {
          help: didYouMean(name, params.map((p) => p.name)) ?? `known: ${params.map((p) => `\`${p.name}\``).join(', ') || 'none'}`,
        });
        continue;
      }
      const earlier = seen.get(name);
      if (earlier !== undefined) {
        this.reporter.report('WND3008', arg.name.span, `\`${name}\` is given twice for ${where}`, {
          help: 'remove one of them',
          related: [{ span: earlier.name.span, message: 'first given here' }],
        });
        continue;
      }
      seen.set(name, arg);
      if (custom.has(name)) continue;
      const value = this.resolve(arg.value, spec.type, name, family, { spec });
      if (value !== undefined) out[name] = value;
    }
    for (const spec of params) {
      if (seen.has(spec.name)) continue;
      if (spec.required && misspelt.has(spec.name)) continue;
      if (spec.required) {
        this.reporter.report('WND3007', ownerSpan, `${where} needs \`${spec.name}\``, { help: `add \`${spec.name}: ...\` (${spec.doc})` });
      } else if (spec.default !== undefined) {
        out[spec.name] = spec.type.kind === 'call' && typeof spec.default === 'string' ? { kind: spec.default } : spec.default;
      }
    }
    return out;
  }

  /** Resolves a call of `family`, or undefined (reported) when the callee is unknown. */
  resolveCall(call: CallValue, family: FamilyName, only?: readonly string[]): ResolvedCall | undefined {
    const callee = call.callee.name;
    const candidates = FAMILIES[family].filter((c) => only === undefined || only.includes(c.name));
    const spec: CallableSpec | undefined = candidates.find((c) => c.name === callee);
    if (spec === undefined) {
      const code: DiagnosticCode = family === 'feature' && only === undefined ? 'WND3005' : 'WND3010';
      const known = candidates.map((c) => c.name);
      const wrongPlace = only !== undefined && callableOf(family, callee) !== undefined;
      this.reporter.report(code, call.callee.span, wrongPlace ? `\`${callee}\` cannot be written here` : `unknown ${FAMILY_NOUN[family]} \`${callee}\``, {
        help: wrongPlace ? `only ${known.map((k) => `\`${k}(...)\``).join(' or ')} can be written inline here` : (didYouMean(callee, known) ?? `known: ${known.map((k) => `\`${k}\``).join(', ')}`),
      });
      return undefined;
    }
    const args = this.resolveArgs(call.args, spec.params, `\`${callee}\``, call.callee.span, family);
    return { kind: callee, ...args };
  }

  resolve(value: Value, type: ParamType, name: string, family?: FamilyName, context: ValueContext = {}): JsonValue | undefined {
    const wrong = (expected: string): undefined => {
      const where = context.item ? `items of \`${name}\`` : `\`${name}\``;
      const help = wrongTypeHelp(value, type);
      this.reporter.report('WND4005', value.span, `expected ${expected} for ${where}, found ${describeFound(value)}`, help === undefined ? {} : { help });
      return undefined;
    };
    switch (type.kind) {
      case 'int':
      case 'number': {
        if (value.type !== 'number') return wrong(type.kind === 'int' ? 'an integer' : 'a number');
        const n = value.value;
        if (type.kind === 'int' && !Number.isInteger(n)) {
          if (type.min === 1) return this.notPositiveInt(value, name, context);
          return wrong('an integer');
        }
        const problem = rangeProblem(n, type);
        if (problem !== undefined) {
          if (type.kind === 'int' && type.min === 1 && n < 1) return this.notPositiveInt(value, name, context);
          const code: DiagnosticCode = family === 'optimizer' ? 'WND4006' : 'WND4007';
          const subject = context.item ? `items of \`${name}\` must be` : `\`${name}\` must be`;
          const help = rangeHelp(name, context.spec);
          this.reporter.report(code, value.span, `${subject} ${problem}, found ${n}`, help === undefined ? {} : { help });
          return undefined;
        }
        return n;
      }
      case 'bool':
        return value.type === 'bool' ? value.value : wrong('`true` or `false`');
      case 'string':
        return value.type === 'text' ? value.value : wrong('a string');
      case 'literal':
        if (value.type === 'number' || value.type === 'bool' || value.type === 'text') return value.value;
        return wrong('a number, string or boolean');
      case 'enum': {
        if (value.type !== 'text') return wrong(`one of ${type.values.map((v) => `\`${v}\``).join(', ')}`);
        if (type.values.includes(value.value)) return value.value;
        this.reporter.report('WND3010', value.span, `unknown value ${describeFound(value)} for \`${name}\``, {
          help: didYouMean(value.value, type.values) ?? `expected one of ${type.values.map((v) => `\`${v}\``).join(', ')}`,
        });
        return undefined;
      }
      case 'ref':
        return value.type === 'text' ? value.value : wrong(`the name of a ${type.to === 'share' ? 'share group' : type.to}`);
      case 'list': {
        if (value.type !== 'list') return wrong('a list');
        if (type.minItems !== undefined && value.items.length < type.minItems) {
          this.reporter.report('WND4007', value.span, `\`${name}\` needs at least ${type.minItems} item${type.minItems === 1 ? '' : 's'}, found ${value.items.length}`, {
            help: context.spec === undefined ? 'add items to the list' : `\`${name}\` lists the ${docClause(context.spec)}`,
          });
          return undefined;
        }
        const items: JsonValue[] = [];
        let ok = true;
        for (const item of value.items) {
          const r = this.resolve(item, type.of, name, family, { ...context, item: true });
          if (r === undefined) ok = false;
          else items.push(r);
        }
        return ok ? items : undefined;
      }
      case 'call': {
        if (value.type === 'text') return this.resolveCall({ type: 'call', callee: { name: value.value, span: value.span }, args: [], span: value.span }, type.family, type.only);
        if (value.type !== 'call') return wrong(`${article(FAMILY_NOUN[type.family])} ${FAMILY_NOUN[type.family]}`);
        return this.resolveCall(value, type.family, type.only);
      }
      case 'oneOf': {
        const wantsCall = value.type === 'call';
        const option = type.options.find((o) => (wantsCall ? o.kind === 'call' : o.kind !== 'call')) ?? type.options[0]!;
        return this.resolve(value, option, name, family, context);
      }
      case 'size': {
        if (value.type === 'number' && value.value >= 0 && Number.isInteger(value.value)) return value.value;
        const bytes = value.type === 'text' ? parseSize(value.value) : undefined;
        return bytes ?? wrong('a size such as `16GiB` or `512MiB`');
      }
      case 'metric': {
        if (value.type !== 'text') return wrong('a metric such as `auc` or `map@12`');
        const m = parseMetric(value.value);
        if (m === undefined || !(METRIC_NAMES as readonly string[]).includes(m.name)) {
          this.reporter.report('WND3010', value.span, `unknown metric \`${value.value}\``, {
            help: didYouMean(m?.name ?? value.value, METRIC_NAMES) ?? 'expected `auc`, `logloss` or `map@k`',
          });
          return undefined;
        }
        if (m.name === 'map' && (m.k === undefined || m.k < 1)) {
          this.reporter.report('WND3010', value.span, '`map` needs a cutoff', { help: 'write `map@12` for mean average precision over the top 12 of each group' });
          return undefined;
        }
        if (m.name !== 'map' && m.k !== undefined) {
          this.reporter.report('WND3010', value.span, `\`${m.name}\` takes no cutoff`, { help: `write \`${m.name}\`` });
          return undefined;
        }
        return value.value;
      }
    }
  }

  private notPositiveInt(value: Value, name: string, context: ValueContext): undefined {
    const subject = context.item ? `items of \`${name}\` must be positive integers` : `\`${name}\` must be a positive integer`;
    const n = value.type === 'number' ? value.value : undefined;
    let help: string | undefined;
    if (n !== undefined && !Number.isInteger(n) && n >= 1) help = `write a whole number such as \`${Math.floor(n)}\``;
    else if (context.spec?.default !== undefined) help = `leave out \`${name}\` to use the default, \`${String(context.spec.default)}\``;
    else if (context.spec !== undefined) help = `\`${name}\` is the ${docClause(context.spec)}, 1 or more`;
    this.reporter.report('WND4004', value.span, `${subject}, found ${describeFound(value)}`, help === undefined ? {} : { help });
    return undefined;
  }
}

/** A value as a message names it: a bare name in backticks, anything else as written (strings quoted). */
function describeFound(value: Value): string {
  if (value.type === 'text' && /^[A-Za-z_][A-Za-z0-9_]*(@[0-9]+)?$/.test(value.value)) return `\`${value.value}\``;
  return describeValue(value);
}

/** The first clause of a parameter's doc line: `number of hash buckets`. */
function docClause(spec: ParamSpec): string {
  return spec.doc.split(/;| \(/)[0]!.trim();
}

function rangeHelp(name: string, spec: ParamSpec | undefined): string | undefined {
  if (spec === undefined) return undefined;
  if (spec.default !== undefined) return `\`${name}\` is the ${docClause(spec)}; leave it out to use the default, \`${String(spec.default)}\``;
  return `\`${name}\` is the ${docClause(spec)}`;
}

/** How to write a value of the expected type, where the value written suggests it. */
function wrongTypeHelp(value: Value, type: ParamType): string | undefined {
  const bare = value.type === 'text' ? value.value : value.type === 'number' || value.type === 'bool' ? String(value.value) : undefined;
  switch (type.kind) {
    case 'int':
    case 'number':
      if (value.type === 'text' && value.value.trim() !== '' && Number.isFinite(Number(value.value))) return `remove the quotes: \`${value.value.trim()}\``;
      if (type.kind === 'int' && value.type === 'number') return `write a whole number such as \`${Math.floor(value.value)}\``;
      return undefined;
    case 'bool':
      return value.type === 'text' && /^(true|false)$/i.test(value.value) ? `remove the quotes: \`${value.value.toLowerCase()}\`` : 'write `true` or `false`';
    case 'string':
      return bare === undefined ? undefined : `quote it: \`${JSON.stringify(bare)}\``;
    case 'list':
      if (value.type === 'call') return `write a list: \`[${value.callee.name}(...)]\``;
      return bare === undefined ? undefined : `write a list: \`[${bare}]\``;
    case 'call':
      return `write a call such as \`${CALL_EXAMPLE[type.family]}\``;
    case 'size':
      return 'write a number with one of the units B, KB, MB, GB, TB, KiB, MiB, GiB, TiB, e.g. `16GiB`';
    default:
      return undefined;
  }
}

function article(noun: string): string {
  return /^[aeiou]/.test(noun) ? 'an' : 'a';
}

function rangeProblem(n: number, type: { min?: number; max?: number; exclusiveMin?: boolean; exclusiveMax?: boolean }): string | undefined {
  const lowOk = type.min === undefined || (type.exclusiveMin ? n > type.min : n >= type.min);
  const highOk = type.max === undefined || (type.exclusiveMax ? n < type.max : n <= type.max);
  if (lowOk && highOk) return undefined;
  const low = type.min === undefined ? undefined : `${type.exclusiveMin ? '>' : '>='} ${type.min}`;
  const high = type.max === undefined ? undefined : `${type.exclusiveMax ? '<' : '<='} ${type.max}`;
  if (low !== undefined && high !== undefined) return `${low} and ${high}`;
  return (low ?? high)!;
}

/** The AST value of argument `name` of a call, for spans in semantic diagnostics. */
export function argValue(args: readonly Arg[], name: string): Value | undefined {
  return args.find((a) => a.name.name === name)?.value;
}
