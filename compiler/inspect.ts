// `wndc inspect`: the shapes and sizes of a model, computed without running anything.

import { formatBytes } from './check/model.js';
import type { ModelIR } from './ir.js';

export interface InspectJson {
  model: string;
  features: number;
  deepInputWidth: number;
  parameters: number;
  parameterBreakdown: ModelIR['sizes']['parameters'];
  tables: { name: string; part: 'wide' | 'deep'; rows: number; dim: number; parameters: number; bytes: number }[];
  layers: { name: string; inputs: number; units: number; parameters: number; flops: number }[];
  featureOutputs: { name: string; kind: string; output: string; width: number }[];
  memory: { tableBytes: number; optimizerStateBytes: number; totalBytes: number; budgetBytes: number | null };
  flopsPerExample: { forward: number; train: number };
}

export function inspectJson(ir: ModelIR): InspectJson {
  return {
    model: ir.model,
    features: ir.sizes.features,
    deepInputWidth: ir.sizes.deepInputWidth,
    parameters: ir.sizes.parameters.total,
    parameterBreakdown: ir.sizes.parameters,
    tables: ir.tables.map((t) => ({ name: t.name, part: t.part, rows: t.rows, dim: t.dim, parameters: t.parameters, bytes: t.bytes })),
    layers: ir.deep.layers.map((l) => ({ name: l.name, inputs: l.inputs, units: l.units, parameters: l.parameters, flops: l.flops })),
    featureOutputs: ir.features.map((f) => ({
      name: f.name,
      kind: f.kind,
      output: f.output.type === 'dense' ? 'dense' : f.output.multivalent ? 'ids (bag)' : 'id',
      width: f.output.type === 'dense' ? f.output.width : f.output.buckets,
    })),
    memory: {
      tableBytes: ir.sizes.tableBytes,
      optimizerStateBytes: ir.sizes.optimizerStateBytes,
      totalBytes: ir.sizes.tableBytes + ir.sizes.optimizerStateBytes,
      budgetBytes: ir.train.memoryBudgetBytes,
    },
    flopsPerExample: ir.sizes.flopsPerExample,
  };
}

const int = (n: number) => n.toLocaleString('en-US');

function flops(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)} GFLOP`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} MFLOP`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(2)} kFLOP`;
  return `${n} FLOP`;
}

/** Left-aligned first column, right-aligned numbers. */
function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)];
}

export function inspectText(ir: ModelIR): string {
  const s = ir.sizes;
  const out: string[] = [];
  out.push(`model ${ir.model} (IR v${ir.irVersion})`);
  out.push(`  features            ${s.features}`);
  out.push(`  deep input width    ${s.deepInputWidth}`);
  out.push(`  parameters          ${int(s.parameters.total)} (wide ${int(s.parameters.wide)}, embeddings ${int(s.parameters.embeddings)}, dense ${int(s.parameters.dense)})`);
  out.push(`  table memory        ${formatBytes(s.tableBytes)} + ${formatBytes(s.optimizerStateBytes)} optimizer state${ir.train.memoryBudgetBytes === null ? '' : ` (budget ${formatBytes(ir.train.memoryBudgetBytes)})`}`);
  out.push(`  FLOPs per example   ${flops(s.flopsPerExample.forward)} forward, ${flops(s.flopsPerExample.train)} training step`);
  out.push('');
  out.push('features');
  out.push(
    ...table(
      ['name', 'kind', 'output', 'buckets/width'],
      ir.features.map((f) => [f.name, f.kind, f.output.type === 'dense' ? 'dense' : f.output.multivalent ? `ids x${f.output.maxLen}` : 'id', int(f.output.type === 'dense' ? f.output.width : f.output.buckets)]),
    ).map((l) => `  ${l}`),
  );
  out.push('');
  out.push('tables');
  out.push(...table(['name', 'rows', 'dim', 'parameters', 'memory'], ir.tables.map((t) => [t.name, int(t.rows), String(t.dim), int(t.parameters), formatBytes(t.bytes)])).map((l) => `  ${l}`));
  out.push('');
  out.push('deep layers');
  out.push(...table(['name', 'inputs', 'units', 'parameters', 'forward'], ir.deep.layers.map((l) => [l.name, int(l.inputs), int(l.units), int(l.parameters), flops(l.flops)])).map((l) => `  ${l}`));
  return `${out.join('\n')}\n`;
}
