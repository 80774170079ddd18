import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { bareCallees, buildJsonSchema, SCHEMA_DRAFT } from '../dsl/schema.js';
import { SCHEMA_PATH, schemaText } from '../dsl/write-schema.js';
import { AJV_OPTIONS } from '../dsl/yaml/validate.js';
import { BLOCK_PROPS, FEATURE_KINDS } from '../dsl/language.js';

const quickstartYaml = readFileSync(new URL('./fixtures/quickstart.yaml', import.meta.url), 'utf8');

/** Compiles with the front end's options and fails on any strict-mode warning, not only on errors. */
function compile(schema: object) {
  const warnings: string[] = [];
  const logger = { log: () => {}, warn: (...args: unknown[]) => warnings.push(args.join(' ')), error: (...args: unknown[]) => warnings.push(args.join(' ')) };
  const validate = new Ajv({ ...AJV_OPTIONS, logger }).compile(schema);
  assert.deepEqual(warnings, []);
  return validate;
}

let generated: ReturnType<typeof compile> | undefined;
/** The generated schema, compiled once for the tests that validate documents with it. */
const validator = () => (generated ??= compile(buildJsonSchema()));

test('the committed dsl/wnd.schema.json is exactly what buildJsonSchema() generates', () => {
  const committed = readFileSync(SCHEMA_PATH, 'utf8');
  assert.equal(committed, `${JSON.stringify(buildJsonSchema(), null, 2)}\n`, 'run `node --import tsx dsl/write-schema.ts`');
  assert.equal(committed, schemaText());
});

test('ajv compiles the committed schema in strict mode without warnings', () => {
  const schema = JSON.parse(readFileSync(SCHEMA_PATH, 'utf8')) as { $schema: string };
  assert.equal(schema.$schema, SCHEMA_DRAFT);
  compile(schema);
});

test('the YAML form of the quickstart validates', () => {
  const validate = validator();
  const valid = validate(parse(quickstartYaml));
  assert.deepEqual(validate.errors ?? [], []);
  assert.equal(valid, true);
});

test('the top level takes only the known sections and requires `model`', () => {
  const schema = buildJsonSchema() as { properties: Record<string, unknown>; additionalProperties: unknown; required: unknown };
  assert.deepEqual(Object.keys(schema.properties), ['model', 'input', 'features', 'wide', 'deep', 'train', 'head']);
  assert.equal(schema.additionalProperties, false);
  assert.deepEqual(schema.required, ['model']);
});

test('block properties carry their docs, defaults and required keys from the language table', () => {
  const schema = buildJsonSchema() as { properties: Record<string, { properties: Record<string, { description: string; default?: unknown }>; required?: string[] }> };
  const deep = schema.properties['deep']!;
  assert.deepEqual(Object.keys(deep.properties), BLOCK_PROPS.deep.map((p) => p.name));
  assert.equal(deep.properties['hidden_units']!.description, 'width of each hidden layer');
  assert.equal(deep.properties['init']!.default, 'glorot_uniform');
  assert.deepEqual(deep.required, ['features', 'hidden_units', 'optimizer']);
  assert.equal(schema.properties['head']!.required, undefined);
});

test('each feature kind has its own parameter mapping with unknown keys rejected', () => {
  const schema = buildJsonSchema() as { definitions: Record<string, { properties: Record<string, { description?: string; const?: string }>; required?: string[]; additionalProperties?: boolean }> };
  for (const kind of FEATURE_KINDS) {
    const def = schema.definitions[`feature.${kind.name}`]!;
    assert.deepEqual(Object.keys(def.properties), ['kind', ...kind.params.map((p) => p.name)]);
    assert.equal(def.properties['kind']!.const, kind.name);
    assert.equal(def.additionalProperties, false);
  }
  assert.deepEqual(schema.definitions['feature.hashed']!.required, ['column', 'buckets']);
  assert.equal(schema.definitions['feature.hashed']!.properties['buckets']!.description, 'number of hash buckets');
});

test('a call may be a bare name only when its callee has no required parameters', () => {
  assert.deepEqual(bareCallees('initializer'), ['zeros', 'normal', 'truncated_normal', 'uniform', 'glorot_uniform', 'glorot_normal']);
  assert.deepEqual(bareCallees('decay'), ['none']);
  assert.deepEqual(bareCallees('optimizer'), []);
  const validate = validator();
  const deep = (extra: object) => ({ model: 'm', deep: { features: ['a'], hidden_units: [8], optimizer: { kind: 'adam', learning_rate: 0.1 }, ...extra } });
  assert.equal(validate(deep({ init: 'zeros' })), true);
  assert.equal(validate(deep({ init: 'constant' })), false);
  assert.equal(validate(deep({ init: { kind: 'constant', value: 1 } })), true);
  assert.equal(validate(deep({ optimizer: 'adam' })), false);
  assert.equal(validate(deep({ decay: 'none' })), true);
});

test('schema rejects what the YAML form cannot be: unknown keys, missing required keys, wrong shapes', () => {
  const validate = validator();
  const base = parse(quickstartYaml) as Record<string, Record<string, unknown>>;
  const withFeature = (feature: object) => ({ ...base, features: { ...base['features'], extra: feature } });
  assert.equal(validate(withFeature({ kind: 'hashed', column: 'user', buckets: 10 })), true);
  assert.equal(validate(withFeature({ kind: 'hashed', column: 'user', bucket: 10 })), false);
  assert.equal(validate(withFeature({ kind: 'hashed', column: 'user' })), false);
  assert.equal(validate(withFeature({ kind: 'hashed', column: 5, buckets: 10 })), false);
  assert.equal(validate({ ...base, input: { ...base['input'], x: 'list<int>' } }), true);
  assert.equal(validate({ ...base, input: { ...base['input'], x: { type: 'int', rol: 'label' } } }), false);
  assert.equal(validate({ ...base, wide: ['user_id'] }), false);
  assert.equal(validate({ ...base, inputs: {} }), false);
});
