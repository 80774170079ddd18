// Checks the structure of a YAML model against the generated JSON Schema (schema.ts) with ajv and
// turns ajv's errors into wndc diagnostics, better-ajv-errors style: each error is located through
// its instancePath back to the YAML node it is about, `if`/`then` bookkeeping errors are dropped,
// one diagnostic is given per real problem, and a misspelt key suggests the key it resembles.
//
// Only shape is reported here: unknown keys (WND2002), missing keys (WND2003) and wrong YAML shapes
// (WND2004). Value constraints in the schema (enums, ranges, name patterns) are there for editors;
// the checker reports them for both forms of the language, with the same wording.

import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { Span } from '../ast.js';
import { didYouMean, suggestNames, type Reporter } from '../../compiler/diagnostics.js';
import { NAME_PATTERN } from '../language.js';
import { buildJsonSchema, type JsonSchema } from '../schema.js';
import { describeNode, type YNode } from './tree.js';

/** The options the schema is compiled with; `allowUnionTypes` because a call may be a name or a mapping. */
export const AJV_OPTIONS = { allErrors: true, strict: true, allowUnionTypes: true, verbose: true } as const;

let validator: ValidateFunction | undefined;

/** The compiled schema, built once per process. */
export function schemaValidator(): ValidateFunction {
  validator ??= new Ajv(AJV_OPTIONS).compile(buildJsonSchema());
  return validator;
}

/** Where a value sits: enough to name it in a message and to find its span. */
interface Located {
  node: YNode;
  key?: string;
  keySpan?: Span;
  index?: number;
  parent?: Located;
}

const escapePointer = (segment: string): string => segment.replace(/~/g, '~0').replace(/\//g, '~1');

/** Plain JSON for ajv, and every JSON pointer's YAML node. Duplicate keys: the first one counts. */
function toData(loc: Located, pointer: string, index: Map<string, Located>): unknown {
  index.set(pointer, loc);
  const node = loc.node;
  switch (node.kind) {
    case 'scalar':
      return node.value;
    case 'seq':
      return node.items.map((item, i) => toData({ node: item, index: i, parent: loc }, `${pointer}/${i}`, index));
    case 'map': {
      // No prototype, so a key such as `__proto__` is data like any other.
      const object: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
      for (const e of node.entries) {
        if (e.duplicate) continue;
        object[e.key] = toData({ node: e.value, key: e.key, keySpan: e.keySpan, parent: loc }, `${pointer}/${escapePointer(e.key)}`, index);
      }
      return object;
    }
  }
}

function placeOf(loc: Located): string {
  if (loc.key !== undefined) return `\`${loc.key}\``;
  if (loc.index !== undefined) return `item ${loc.index + 1} of ${loc.parent === undefined ? 'a list' : placeOf(loc.parent)}`;
  return 'the top level';
}

const isRoot = (loc: Located): boolean => loc.key === undefined && loc.index === undefined;

const SIZE_PATTERN_MARK = '[KMGT]i?B|B';

function describeExpected(types: readonly string[], schema: JsonSchema): string {
  const pattern = typeof schema['pattern'] === 'string' ? schema['pattern'] : undefined;
  if (pattern?.includes(SIZE_PATTERN_MARK)) return 'a size (such as `16GiB`) or a number of bytes';
  // Strings the language writes bare: references, enum values, metrics, and callee names.
  const named = pattern !== undefined || types.includes('object') || Array.isArray(schema['enum']);
  const words = types.map((t) => {
    switch (t) {
      case 'object':
        return 'a mapping';
      case 'array':
        return 'a list';
      case 'integer':
        return 'an integer';
      case 'number':
        return 'a number';
      case 'boolean':
        return types.length === 1 ? '`true` or `false`' : '`true`/`false`';
      case 'string':
        return named ? 'a name' : 'a string';
      default:
        return t;
    }
  });
  return words.length <= 1 ? (words[0] ?? 'something else') : `${words.slice(0, -1).join(', ')} or ${words[words.length - 1]}`;
}

const listWords = (names: readonly string[]): string =>
  names.length <= 1 ? names.map((n) => `\`${n}\``).join('') : `${names.slice(0, -1).map((n) => `\`${n}\``).join(', ')} and \`${names[names.length - 1]}\``;

function propertiesOf(schema: unknown): JsonSchema {
  if (schema === null || typeof schema !== 'object') return {};
  const props = (schema as JsonSchema)['properties'];
  return props !== null && typeof props === 'object' && !Array.isArray(props) ? (props as JsonSchema) : {};
}

function descriptionOf(schema: unknown): string | undefined {
  if (schema === null || typeof schema !== 'object') return undefined;
  const d = (schema as JsonSchema)['description'];
  return typeof d === 'string' ? d : undefined;
}

/**
 * Where a missing key is reported: at the `kind` of a call (its callee, which is also where the
 * checker reports missing parameters), else at the key the mapping belongs to, else at the mapping.
 * The YAML AST builder gives a call without `kind` this span as its callee's.
 */
export function missingKeySpan(node: YNode, keySpan: Span | undefined): Span {
  if (node.kind === 'map') {
    const kind = node.entries.find((e) => e.key === 'kind' && !e.duplicate);
    if (kind !== undefined && kind.value.kind === 'scalar') return kind.value.span;
  }
  if (keySpan !== undefined) return keySpan;
  return node.span;
}

/** Validates the YAML tree against the schema; reports WND2002, WND2003 and WND2004. */
export function validateStructure(root: YNode, source: string, reporter: Reporter): void {
  const index = new Map<string, Located>();
  const data = toData({ node: root }, '', index);
  const validate = schemaValidator();
  if (validate(data)) return;
  const errors: ErrorObject[] = validate.errors ?? [];

  const typeErrors = new Map<string, ErrorObject>();
  const missing = new Map<string, { names: string[]; schema: unknown }>();
  const unknown: { path: string; key: string; schema: unknown }[] = [];
  for (const e of errors) {
    if (e.keyword === 'type') {
      if (!typeErrors.has(e.instancePath)) typeErrors.set(e.instancePath, e);
    } else if (e.keyword === 'required') {
      const name = String(e.params['missingProperty']);
      const entry = missing.get(e.instancePath) ?? { names: [], schema: e.parentSchema };
      if (!entry.names.includes(name)) entry.names.push(name);
      missing.set(e.instancePath, entry);
    } else if (e.keyword === 'additionalProperties') {
      unknown.push({ path: e.instancePath, key: String(e.params['additionalProperty']), schema: e.parentSchema });
    }
    // `if`, `enum`, `const`, `minimum`, `pattern`...: bookkeeping or value checks left to the checker.
  }

  for (const [path, e] of typeErrors) {
    const loc = index.get(path);
    if (loc === undefined) continue;
    const types = Array.isArray(e.params['type']) ? (e.params['type'] as string[]) : [String(e.params['type'])];
    const schema = (e.parentSchema ?? {}) as JsonSchema;
    const expected = describeExpected(types, schema);
    const found = describeNode(loc.node);
    const message = isRoot(loc) ? `expected ${expected} at the top level, found ${found}` : `expected ${expected} for ${placeOf(loc)}, found ${found}`;
    reporter.report('WND2004', loc.node.span, message, typeHelp(types, schema, loc, source));
  }

  for (const u of unknown) {
    const loc = index.get(`${u.path}/${escapePointer(u.key)}`);
    const parent = index.get(u.path);
    if (loc?.keySpan === undefined || parent === undefined) continue;
    const allowed = Object.keys(propertiesOf(u.schema));
    const present = new Set(parent.node.kind === 'map' ? parent.node.entries.map((e) => e.key) : []);
    const help = unknownKeyHelp(u.key, allowed, present);
    const where = isRoot(parent) ? 'at the top level' : `in ${placeOf(parent)}`;
    reporter.report('WND2002', loc.keySpan, `unknown key \`${u.key}\` ${where}`, help === undefined ? {} : { help });
  }

  for (const [path, m] of missing) {
    const loc = index.get(path);
    if (loc === undefined) continue;
    // A misspelt key is one problem: the unknown key's "did you mean" already names the missing one.
    const misspelt = new Set(unknown.filter((u) => u.path === path).flatMap((u) => suggestNames(u.key, m.names)));
    const names = m.names.filter((n) => !misspelt.has(n));
    if (names.length === 0) continue;
    const where = isRoot(loc) ? 'at the top level' : `in ${placeOf(loc)}`;
    // The top-level mapping is the whole file: point at its start rather than underline it all.
    const span = isRoot(loc) ? { start: loc.node.span.start, end: loc.node.span.start } : missingKeySpan(loc.node, loc.keySpan);
    const help = missingKeyHelp(names, loc.node, propertiesOf(m.schema));
    reporter.report('WND2003', span, `missing ${names.length === 1 ? 'key' : 'keys'} ${listWords(names)} ${where}`, { help });
  }
}

function missingKeyHelp(names: readonly string[], node: YNode, props: JsonSchema): string {
  // `{kind:ftrl}` reads as one key `kind:ftrl` in YAML, so `kind` is missing.
  const glued = node.kind === 'map' ? node.entries.find((e) => names.some((n) => e.key.startsWith(`${n}:`))) : undefined;
  if (glued !== undefined) return `put a space after the colon: \`${glued.key.replace(':', ': ')}\``;
  if (names.length > 1) return `add ${names.map((n) => `\`${n}: ...\``).join(' and ')}`;
  const doc = descriptionOf(props[names[0]!]);
  return `add \`${names[0]}: ...\`${doc === undefined ? '' : ` (${doc})`}`;
}

function unknownKeyHelp(key: string, allowed: readonly string[], present: ReadonlySet<string>): string | undefined {
  const candidates = allowed.filter((a) => !present.has(a));
  const suggestion = didYouMean(key, candidates);
  if (suggestion !== undefined) return suggestion;
  // `{kind:ftrl}` reads as one key `kind:ftrl` in YAML.
  const colon = key.indexOf(':');
  if (colon > 0 && allowed.includes(key.slice(0, colon))) return `put a space after the colon: \`${key.slice(0, colon)}: ${key.slice(colon + 1)}\``;
  if (allowed.length === 0) return undefined;
  return `expected one of ${allowed.map((a) => `\`${a}\``).join(', ')}`;
}

function typeHelp(types: readonly string[], schema: JsonSchema, loc: Located, source: string): { help?: string } {
  const node = loc.node;
  if (node.kind === 'scalar' && node.value === null && loc.key !== undefined) return { help: `write a value after \`${loc.key}:\`` };
  const text = source.slice(node.span.start, node.span.end);
  if (types.includes('array') && node.kind === 'scalar' && !text.includes('\n')) return { help: `write a list: \`[${text}]\`` };
  const kind = propertiesOf(schema)['kind'];
  if (types.includes('object') && kind !== undefined && node.kind === 'scalar' && typeof node.value === 'string' && NAME_PATTERN.test(node.value)) {
    return { help: `write a mapping with the parameters: \`{kind: ${node.value}, ...}\`` };
  }
  return {};
}
