// The JSON Schema of the YAML form, generated from the language table (language.ts) so that the
// two can never disagree. Editors use the committed copy (dsl/wnd.schema.json, written by
// write-schema.ts) for completion and hover help; the YAML front end validates structure with it.
//
// Draft-07, because editors (yaml-language-server, VS Code) handle it best. `$ref` siblings are
// ignored in draft-07, so a described reference is written `{description, allOf: [{$ref}]}`.
// Calls and per-kind parameters are dispatched with `if`/`then` on `kind` rather than `oneOf`, so
// that a wrong key yields one error about that key, not one error per alternative.

import {
  BLOCK_PROPS,
  COLUMN_ROLES,
  COLUMN_TYPES,
  FAMILIES,
  NAME_PATTERN,
  type CallableSpec,
  type FamilyName,
  type JsonValue,
  type ParamSpec,
  type ParamType,
} from './language.js';
import type { BlockName } from './ast.js';

export type JsonSchema = { [key: string]: JsonValue };

/** The call definitions a schema refers to, by definition name, collected while generating it. */
type CallRefs = Map<string, { family: FamilyName; only?: readonly string[] }>;

export const SCHEMA_DRAFT = 'http://json-schema.org/draft-07/schema#';

const SECTION_DOCS: Readonly<Record<'model' | 'input' | 'features' | BlockName, string>> = {
  model: 'the model name: letters, digits and `_`, starting with a letter or `_`',
  input: 'the columns of one input row: `name: type`, or `name: {type, default, role}`',
  features: 'named transforms of the input columns: `name: {kind: ..., ...}`',
  wide: 'the wide (linear) part of the model',
  deep: 'the deep part of the model: a tower of dense layers over embeddings and numeric features',
  train: 'training settings',
  head: 'the output head',
};

const FAMILY_NOUNS: Readonly<Record<FamilyName, string>> = {
  feature: 'feature kind',
  optimizer: 'optimizer',
  initializer: 'initializer',
  decay: 'learning-rate decay',
};

/** `feature.hashed`: the definition name of one callee's parameter mapping. */
function callableDefinition(family: FamilyName, name: string): string {
  return `${family}.${name}`;
}

/** The definition name of a family's call, optionally restricted to some callees. */
function callDefinition(family: FamilyName, only?: readonly string[]): string {
  return only === undefined ? family : `${family}_${only.join('_or_')}`;
}

/** Callees that may be written as a bare name: those without required parameters. */
export function bareCallees(family: FamilyName, only?: readonly string[]): string[] {
  return FAMILIES[family].filter((c) => (only === undefined || only.includes(c.name)) && !c.params.some((p) => p.required)).map((c) => c.name);
}

/** The JSON types a value of `type` may take in YAML. */
function jsonTypes(type: ParamType): string[] {
  switch (type.kind) {
    case 'int':
      return ['integer'];
    case 'number':
      return ['number'];
    case 'bool':
      return ['boolean'];
    case 'string':
    case 'enum':
    case 'ref':
    case 'metric':
      return ['string'];
    case 'list':
      return ['array'];
    case 'call':
      return bareCallees(type.family, type.only).length > 0 ? ['string', 'object'] : ['object'];
    case 'oneOf':
      return [...new Set(type.options.flatMap(jsonTypes))];
    case 'size':
      return ['string', 'number'];
    case 'literal':
      return ['number', 'string', 'boolean'];
  }
}

const oneOrMany = (types: string[]): JsonValue => (types.length === 1 ? types[0]! : types);

/** The schema of a value of `type`; `calls` collects the call definitions it refers to. */
function valueSchema(type: ParamType, calls: CallRefs): JsonSchema {
  switch (type.kind) {
    case 'int':
    case 'number': {
      const s: JsonSchema = { type: type.kind === 'int' ? 'integer' : 'number' };
      const exclusiveMin = type.kind === 'number' && type.exclusiveMin === true;
      const exclusiveMax = type.kind === 'number' && type.exclusiveMax === true;
      if (type.min !== undefined) s[exclusiveMin ? 'exclusiveMinimum' : 'minimum'] = type.min;
      if (type.max !== undefined) s[exclusiveMax ? 'exclusiveMaximum' : 'maximum'] = type.max;
      return s;
    }
    case 'bool':
      return { type: 'boolean' };
    case 'string':
      return { type: 'string' };
    case 'enum':
      return { type: 'string', enum: [...type.values] };
    case 'ref':
      return { type: 'string', pattern: NAME_PATTERN.source };
    case 'metric':
      return { type: 'string', pattern: '^[a-z_]+(@[0-9]+)?$' };
    case 'size':
      return { type: ['string', 'number'], pattern: '^[0-9]+(\\.[0-9]+)?([KMGT]i?B|B)$', minimum: 0 };
    case 'literal':
      return { type: ['number', 'string', 'boolean'] };
    case 'list': {
      const s: JsonSchema = { type: 'array', items: valueSchema(type.of, calls) };
      if (type.minItems !== undefined) s['minItems'] = type.minItems;
      return s;
    }
    case 'call': {
      const name = callDefinition(type.family, type.only);
      calls.set(name, type.only === undefined ? { family: type.family } : { family: type.family, only: type.only });
      return { $ref: `#/definitions/${name}` };
    }
    case 'oneOf': {
      // Dispatch on the YAML shape: the first option that accepts a JSON type owns it (a name in
      // `deep.features` is a feature reference, a mapping an inline call).
      const claimed = new Set<string>();
      const branches: JsonSchema[] = [];
      for (const option of type.options) {
        const own = jsonTypes(option).filter((t) => !claimed.has(t));
        if (own.length === 0) continue;
        own.forEach((t) => claimed.add(t));
        branches.push({ if: { type: oneOrMany(own) }, then: valueSchema(option, calls) });
      }
      return { type: oneOrMany([...claimed]), allOf: branches };
    }
  }
}

/** A property or argument: its value schema with the doc and default for hover help. */
function paramSchema(param: ParamSpec, calls: CallRefs): JsonSchema {
  const value = valueSchema(param.type, calls);
  const described: JsonSchema = '$ref' in value ? { allOf: [value] } : value;
  const s: JsonSchema = { description: param.doc, ...described };
  if (param.default !== undefined) s['default'] = param.default;
  return s;
}

/** `{kind: hashed, column: ..., buckets: ...}`: one callee's mapping, unknown keys rejected. */
function calleeSchema(family: FamilyName, callee: CallableSpec, calls: CallRefs): JsonSchema {
  const properties: JsonSchema = { kind: { const: callee.name, description: callee.doc } };
  for (const p of callee.params) properties[p.name] = paramSchema(p, calls);
  const required = callee.params.filter((p) => p.required).map((p) => p.name);
  return {
    description: `${FAMILY_NOUNS[family]} \`${callee.name}\`: ${callee.doc}`,
    type: 'object',
    properties,
    ...(required.length > 0 ? { required } : {}),
    additionalProperties: false,
  };
}

/**
 * A call of `family`: `{kind, ...params}` checked against the callee named by `kind`, or a bare
 * callee name where the callee has no required parameters. Unknown kinds match no branch; the
 * checker reports them with suggestions.
 */
function callSchema(family: FamilyName, only: readonly string[] | undefined): JsonSchema {
  const callees = FAMILIES[family].filter((c) => only === undefined || only.includes(c.name));
  const names = callees.map((c) => c.name);
  const bare = bareCallees(family, only);
  const s: JsonSchema = {
    description: `a ${FAMILY_NOUNS[family]}: \`{kind: ${names[0] ?? 'name'}, ...}\`${bare.length > 0 ? ', or a bare name when it needs no parameters' : ''}`,
    type: bare.length > 0 ? ['string', 'object'] : 'object',
  };
  if (bare.length > 0) {
    s['if'] = { type: 'string' };
    s['then'] = { enum: bare };
  }
  s['properties'] = { kind: { type: 'string', enum: names, description: `the ${FAMILY_NOUNS[family]}: ${names.join(', ')}` } };
  s['required'] = ['kind'];
  s['allOf'] = callees.map((c) => ({
    if: { type: 'object', properties: { kind: { const: c.name } }, required: ['kind'] },
    then: { $ref: `#/definitions/${callableDefinition(family, c.name)}` },
  }));
  return s;
}

function columnSchema(): JsonSchema {
  const literal: JsonSchema = { type: ['number', 'string', 'boolean'] };
  return {
    description: 'an input column: its type (`int`, `list<string>`...), or `{type, default, role}`',
    type: ['string', 'object'],
    if: { type: 'string' },
    then: { enum: [...COLUMN_TYPES] },
    properties: {
      type: { description: 'the column type', type: 'string', enum: [...COLUMN_TYPES] },
      default: {
        description: 'the value used when a row lacks the column (`[]` for list columns)',
        type: ['number', 'string', 'boolean', 'array'],
        items: literal,
      },
      role: { description: 'label: the click target; group: the request for ranking metrics; weight: the example weight; item: the id printed with each prediction', type: 'string', enum: [...COLUMN_ROLES] },
    },
    required: ['type'],
    additionalProperties: false,
  };
}

function blockSchema(block: BlockName, calls: CallRefs): JsonSchema {
  const properties: JsonSchema = {};
  for (const p of BLOCK_PROPS[block]) properties[p.name] = paramSchema(p, calls);
  const required = BLOCK_PROPS[block].filter((p) => p.required).map((p) => p.name);
  return {
    description: SECTION_DOCS[block],
    type: 'object',
    properties,
    ...(required.length > 0 ? { required } : {}),
    additionalProperties: false,
  };
}

/** The JSON Schema (draft-07) of a `.yaml` model. */
export function buildJsonSchema(): JsonSchema {
  const calls: CallRefs = new Map();
  calls.set('feature', { family: 'feature' });
  const blocks: JsonSchema = {};
  for (const block of ['wide', 'deep', 'train', 'head'] as const) blocks[block] = blockSchema(block, calls);

  // Call definitions may refer to further calls (an embedding's `init`): close over them.
  const definitions: JsonSchema = { column: columnSchema() };
  const callees: JsonSchema = {};
  const done = new Set<string>();
  for (let pending = [...calls.keys()]; pending.length > 0; pending = [...calls.keys()].filter((k) => !done.has(k))) {
    for (const name of pending) {
      done.add(name);
      const { family, only } = calls.get(name)!;
      definitions[name] = callSchema(family, only);
      for (const c of FAMILIES[family]) {
        const key = callableDefinition(family, c.name);
        if (!(key in callees)) callees[key] = calleeSchema(family, c, calls);
      }
    }
  }
  const sortedDefinitions: JsonSchema = {};
  for (const key of Object.keys(definitions).sort()) sortedDefinitions[key] = definitions[key]!;
  for (const key of Object.keys(callees).sort()) sortedDefinitions[key] = callees[key]!;

  return {
    $schema: SCHEMA_DRAFT,
    title: 'wndc model (YAML form)',
    description: 'A Wide & Deep recommender model for wndc. Generated from dsl/language.ts by dsl/write-schema.ts; do not edit.',
    type: 'object',
    properties: {
      model: { description: SECTION_DOCS.model, type: 'string', pattern: NAME_PATTERN.source },
      input: { description: SECTION_DOCS.input, type: 'object', additionalProperties: { $ref: '#/definitions/column' } },
      features: { description: SECTION_DOCS.features, type: 'object', additionalProperties: { $ref: '#/definitions/feature' } },
      ...blocks,
    },
    required: ['model'],
    additionalProperties: false,
    definitions: sortedDefinitions,
  };
}
