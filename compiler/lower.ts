// Lowering: a checked model becomes the IR. Here the tables are laid out, the encoded-row layout
// fixed and every size computed, without running anything.

import { columnIR, rolesIR, type CheckedColumns, type ColumnInfo } from './check/columns.js';
import { isView, type FeatureInfo } from './check/features.js';
import type { DeepIR, DenseLayerIR, EncodedLayoutIR, FeatureIR, HeadIR, InitializerIR, ModelIR, OptimizerIR, ScheduleIR, SizesIR, TableIR, TrainIR, WideIR } from './ir.js';
import { IR_VERSION } from './ir.js';

export interface CheckedModel {
  name: string;
  columns: ColumnInfo[];
  roles: CheckedColumns['roles'];
  features: FeatureInfo[];
  wide?: { features: string[]; optimizer: OptimizerIR; schedule: ScheduleIR };
  deep?: Omit<DeepIR, 'inputs' | 'inputWidth' | 'layers'> & { inputs: string[] };
  train: TrainIR;
  head: HeadIR;
}

const NO_SCHEDULE: ScheduleIR = { warmupSteps: 0, warmupEpochs: 0, decay: { kind: 'none' } };

/** Optimizer state per trained value, in fp32 slots. */
export function optimizerSlots(o: OptimizerIR): number {
  switch (o.kind) {
    case 'ftrl':
    case 'adam':
      return 2;
    case 'proximal_adagrad':
    case 'adagrad':
      return 1;
    case 'sgd':
      return o.momentum > 0 ? 1 : 0;
  }
}

export function lowerModel(m: CheckedModel): ModelIR {
  const features = m.features.map((f) => f.ir!).filter((ir) => ir !== undefined);
  const byName = new Map(features.map((f) => [f.name, f]));
  const ordered = topologicalOrder(features, byName);
  const tables: TableIR[] = [];

  const wide = lowerWide(m, byName, tables);
  const deep = lowerDeep(m, byName, tables);
  const ir: Omit<ModelIR, 'sizes'> = {
    irVersion: IR_VERSION,
    model: m.name,
    columns: m.columns.map(columnIR),
    roles: rolesIR(m.roles),
    features: ordered,
    tables,
    wide,
    deep,
    head: m.head,
    train: m.train,
    layout: layoutOf(ordered),
  };
  return { ...ir, sizes: sizesOf(ir, byName) };
}

/** Features ordered so that every feature follows the features it reads (declaration order otherwise). */
function topologicalOrder(features: FeatureIR[], byName: Map<string, FeatureIR>): FeatureIR[] {
  const out: FeatureIR[] = [];
  const done = new Set<string>();
  const visit = (f: FeatureIR) => {
    if (done.has(f.name)) return;
    done.add(f.name);
    for (const dep of dependencies(f)) visit(byName.get(dep)!);
    out.push(f);
  };
  features.forEach(visit);
  return out;
}

export function dependencies(f: FeatureIR): string[] {
  if (f.kind === 'crossed') return f.features;
  if ('feature' in f) return [f.feature];
  return [];
}

function lowerWide(m: CheckedModel, byName: Map<string, FeatureIR>, tables: TableIR[]): WideIR {
  const w = m.wide;
  const optimizer: OptimizerIR = w?.optimizer ?? { kind: 'sgd', learningRate: 0, momentum: 0, nesterov: false };
  const names = w?.features ?? [];
  const categorical = names.filter((n) => byName.get(n)!.output.type === 'categorical');
  const numericFeatures = names.filter((n) => byName.get(n)!.output.type === 'dense');
  const slots = optimizerSlots(optimizer);
  const wideTables = categorical.map((name) => {
    const out = byName.get(name)!.output as { buckets: number };
    return pushTable(tables, { name: `wide/features/${name}`, part: 'wide', rows: out.buckets, dim: 1, features: [name], init: { kind: 'zeros' } }, slots);
  });
  if (numericFeatures.length > 0) {
    wideTables.push(pushTable(tables, { name: 'wide/numeric', part: 'wide', rows: numericFeatures.length, dim: 1, features: numericFeatures, init: { kind: 'zeros' } }, slots));
  }
  return { features: names, combiner: 'sum', optimizer, schedule: w?.schedule ?? NO_SCHEDULE, tables: wideTables, numericFeatures };
}

function pushTable(tables: TableIR[], t: Omit<TableIR, 'parameters' | 'bytes'>, slots: number): string {
  const parameters = t.rows * t.dim;
  tables.push({ ...t, parameters, bytes: parameters * 4 * (1 + slots) });
  return t.name;
}

function lowerDeep(m: CheckedModel, byName: Map<string, FeatureIR>, tables: TableIR[]): DeepIR {
  const d = m.deep;
  const optimizer: OptimizerIR = d?.optimizer ?? { kind: 'sgd', learningRate: 0, momentum: 0, nesterov: false };
  const slots = optimizerSlots(optimizer);
  // Every embedding the tower reads gets a table; embeddings of one share group get one table together.
  const read = new Set(d?.inputs ?? []);
  const shareTable = new Map<string, TableIR>();
  for (const info of m.features) {
    const ir = info.ir;
    if (ir?.kind !== 'embedding' || !read.has(ir.name)) continue;
    const src = byName.get(ir.feature)!.output as { buckets: number };
    const init = info.init as InitializerIR;
    if (info.share !== undefined) {
      const existing = shareTable.get(info.share);
      if (existing !== undefined) {
        existing.features.push(ir.name);
        ir.table = existing.name;
        continue;
      }
    }
    const name = info.share !== undefined ? `deep/shared/${info.share}` : `deep/embeddings/${ir.name}`;
    const dim = ir.output.type === 'dense' ? ir.output.width : 0;
    pushTable(tables, { name, part: 'deep', rows: src.buckets, dim, features: [ir.name], init }, slots);
    ir.table = name;
    if (info.share !== undefined) shareTable.set(info.share, tables[tables.length - 1]!);
  }
  let offset = 0;
  const inputs = (d?.inputs ?? []).map((feature) => {
    const width = (byName.get(feature)!.output as { width: number }).width;
    const input = { feature, offset, width };
    offset += width;
    return input;
  });
  const hiddenUnits = d?.hiddenUnits ?? [];
  const layers: DenseLayerIR[] = [];
  let fanIn = offset;
  const activation = d?.activation ?? 'relu';
  hiddenUnits.forEach((units, i) => {
    layers.push(denseLayer(`deep/layers/dense_${i}`, fanIn, units, activation, d?.batchNorm ?? false));
    fanIn = units;
  });
  if (d !== undefined) layers.push(denseLayer('deep/layers/logit', fanIn, 1, 'linear', false));
  return {
    inputs,
    inputWidth: offset,
    hiddenUnits,
    activation,
    dropout: d?.dropout ?? 0,
    batchNorm: d?.batchNorm ?? false,
    init: d?.init ?? { kind: 'glorot_uniform' },
    layers,
    optimizer,
    schedule: d?.schedule ?? NO_SCHEDULE,
  };
}

function denseLayer(name: string, inputs: number, units: number, activation: DenseLayerIR['activation'], batchNorm: boolean): DenseLayerIR {
  return { name, inputs, units, activation, parameters: inputs * units + units + (batchNorm ? 2 * units : 0), flops: 2 * inputs * units };
}

/** Encoded slots for every feature read from columns or crossed; views are computed by the model. */
function layoutOf(ordered: FeatureIR[]): EncodedLayoutIR {
  const layout: EncodedLayoutIR = { ids: [], idsWidth: 0, lengthsWidth: 0, weightsWidth: 0, numeric: [], numericWidth: 0 };
  for (const f of ordered) {
    if (isView(f)) continue;
    if (f.output.type === 'dense') {
      layout.numeric.push({ feature: f.name, offset: layout.numericWidth });
      layout.numericWidth += f.output.width;
      continue;
    }
    const width = f.output.maxLen;
    layout.ids.push({
      feature: f.name,
      offset: layout.idsWidth,
      width,
      lengthSlot: f.output.multivalent ? layout.lengthsWidth++ : null,
      weightOffset: f.output.weighted ? layout.weightsWidth : null,
    });
    layout.idsWidth += width;
    if (f.output.weighted) layout.weightsWidth += width;
  }
  return layout;
}

function sizesOf(ir: Omit<ModelIR, 'sizes'>, byName: Map<string, FeatureIR>): SizesIR {
  // Model features as the reference recipe counts them: the non-view features the model reads.
  const read = new Set<string>(ir.wide.features);
  for (const input of ir.deep.inputs) {
    const f = byName.get(input.feature)!;
    read.add(isView(f) ? (f as { feature: string }).feature : f.name);
  }
  const wideParams = ir.tables.filter((t) => t.part === 'wide').reduce((s, t) => s + t.parameters, 0) + (ir.wide.features.length > 0 ? 1 : 0);
  const embeddingParams = ir.tables.filter((t) => t.part === 'deep').reduce((s, t) => s + t.parameters, 0);
  const denseParams = ir.deep.layers.reduce((s, l) => s + l.parameters, 0);
  const tableBytes = ir.tables.reduce((s, t) => s + t.parameters * 4, 0);
  const optimizerStateBytes = ir.tables.reduce((s, t) => s + t.bytes - t.parameters * 4, 0);
  const forward = ir.deep.layers.reduce((s, l) => s + l.flops, 0);
  return {
    features: read.size,
    deepInputWidth: ir.deep.inputWidth,
    parameters: { total: wideParams + embeddingParams + denseParams, wide: wideParams, embeddings: embeddingParams, dense: denseParams },
    tableBytes,
    optimizerStateBytes,
    // Backward costs two products per forward one (input and weight gradients).
    flopsPerExample: { forward, train: 3 * forward },
  };
}
