// The checker: every semantic rule of a model, run over the AST, reporting every error it finds.
// When nothing is wrong it returns the model IR (lowering happens in lower.ts).

import type { Arg, Block, ModelAst, Span, Value } from '../../dsl/ast.js';
import { BLOCK_PROPS, type JsonValue } from '../../dsl/language.js';
import { type Reporter } from '../diagnostics.js';
import type { FeatureIR, MetricIR, ModelIR } from '../ir.js';
import { initializerIR, optimizerIR, scheduleIR } from './calls.js';
import { dependencies, lowerModel, type CheckedModel } from '../lower.js';
import { checkColumns, checkName } from './columns.js';
import { FeatureChecker, isView, type FeatureInfo, type FileAccess } from './features.js';
import { argValue, ValueChecker } from './values.js';

/** Indicators wider than this make the deep input mostly zeros: a warning suggests an embedding. */
export const WIDE_INDICATOR_WARNING = 10000;

export function checkModel(ast: ModelAst, reporter: Reporter, files: FileAccess): ModelIR | undefined {
  const fileStart: Span = { start: 0, end: 0 };
  const anchor = ast.name?.span ?? fileStart;
  if (ast.name !== undefined) checkName(ast.name, 'model', reporter);
  if (ast.input === undefined) {
    reporter.report('WND5007', anchor, 'the model has no `input` section', { help: 'declare the raw columns: `input { clicked: int @label ... }`' });
  }
  if (ast.wide === undefined && ast.deep === undefined) {
    reporter.report('WND5007', anchor, 'the model has neither a `wide` nor a `deep` block', { help: 'add `wide { features: [...] optimizer: ftrl(learning_rate: 0.2) }` or a `deep` block' });
  }

  const { columns, roles, misspeltRoles } = checkColumns(ast.input, reporter);
  // A misspelt `@label` is reported as such; its absence is the same mistake.
  if (ast.input !== undefined && roles.label === undefined && !misspeltRoles.has('label')) {
    reporter.report('WND5001', ast.input.keyword.span, 'no column is marked `@label`', { help: 'mark the click column, e.g. `clicked: int @label`' });
  }

  const features = new FeatureChecker(reporter, columns, files, roles.label?.decl.name.name);
  for (const decl of ast.features?.features ?? []) {
    if (!checkName(decl.name, 'feature', reporter)) continue;
    features.add(decl.name.name, decl.name.span, decl.value, false);
  }

  const values = new ValueChecker(reporter);
  const wideProps = ast.wide && values.resolveArgs(args(ast.wide), BLOCK_PROPS.wide, 'the `wide` block', ast.wide.keyword.span);
  const deepProps = ast.deep && values.resolveArgs(args(ast.deep), BLOCK_PROPS.deep, 'the `deep` block', ast.deep.keyword.span, undefined, new Set(['features']));
  const trainProps = values.resolveArgs(ast.train ? args(ast.train) : [], BLOCK_PROPS.train, 'the `train` block', ast.train?.keyword.span ?? anchor);
  const headProps = values.resolveArgs(ast.head ? args(ast.head) : [], BLOCK_PROPS.head, 'the `head` block', ast.head?.keyword.span ?? anchor);

  // Inline deep views are features too: register them before resolving, so crosses and shares see them.
  const deepItems = ast.deep === undefined ? [] : registerDeepItems(ast.deep, features, reporter);
  features.resolveAll();

  const wide = ast.wide && wideProps ? checkWide(ast.wide, wideProps, features, reporter) : undefined;
  const deep = ast.deep && deepProps ? checkDeep(deepItems, features, reporter) : undefined;
  checkSchedule(ast.wide, wideProps, reporter);
  checkSchedule(ast.deep, deepProps, reporter);
  checkShares(features, reporter);
  const metrics = checkMetrics(ast.train, trainProps, roles.group !== undefined, reporter);
  warnUnused(ast, features, columns, roles, wide ?? [], deep ?? [], reporter);

  if (reporter.errorCount > 0 || roles.label === undefined || ast.name === undefined) return undefined;
  const checked: CheckedModel = {
    name: ast.name.name,
    columns: [...columns.values()],
    roles,
    features: [...features.features.values()],
    wide: wide && wideProps ? { features: wide, optimizer: optimizerIR(wideProps.optimizer), schedule: scheduleIR(wideProps) } : undefined,
    deep:
      deep && deepProps
        ? {
            inputs: deep,
            hiddenUnits: deepProps.hidden_units as number[],
            activation: deepProps.activation as 'relu',
            dropout: deepProps.dropout as number,
            batchNorm: deepProps.batch_norm as boolean,
            init: initializerIR(deepProps.init),
            optimizer: optimizerIR(deepProps.optimizer),
            schedule: scheduleIR(deepProps),
          }
        : undefined,
    train: {
      batchSize: trainProps.batch_size as number,
      evalBatchSize: (trainProps.eval_batch_size as number | undefined) ?? (trainProps.batch_size as number),
      epochs: trainProps.epochs as number,
      seed: trainProps.seed as number,
      mixedPrecision: trainProps.mixed_precision as 'off',
      metrics,
      evalEvery: trainProps.eval_every as number,
      lastBatch: trainProps.last_batch as 'keep',
      shuffleBuffer: (trainProps.shuffle_buffer as number | undefined) ?? null,
      memoryBudgetBytes: (trainProps.memory_budget as number | undefined) ?? null,
    },
    head: { loss: headProps.loss as 'binary_crossentropy' },
  };
  const ir = lowerModel(checked);
  checkMemoryBudget(ir, ast.train, reporter);
  return reporter.errorCount > 0 ? undefined : ir;
}

function args(block: Block): Arg[] {
  return block.props.map((p) => ({ name: p.key, value: p.value }));
}

function propValue(block: Block | undefined, key: string): Value | undefined {
  return block?.props.find((p) => p.key.name === key)?.value;
}

/** Deep inputs as written: a feature name or an inline view; returns the features' names with spans. */
function registerDeepItems(deep: Block, features: FeatureChecker, reporter: Reporter): { name: string; span: Span }[] {
  const list = propValue(deep, 'features');
  if (list === undefined) return [];
  if (list.type !== 'list') {
    reporter.report('WND4005', list.span, 'expected a list of features for `features`', {
      help: list.type === 'text' ? `write a list: \`[${list.value}]\`` : list.type === 'call' ? `write a list: \`[${list.callee.name}(...)]\`` : 'write a list: `[...]`',
    });
    return [];
  }
  if (list.items.length === 0) {
    reporter.report('WND4007', list.span, '`features` needs at least 1 item, found 0', { help: 'list the embeddings, indicators and numeric features the tower reads' });
    return [];
  }
  const out: { name: string; span: Span }[] = [];
  for (const item of list.items) {
    if (item.type === 'text') {
      out.push({ name: item.value, span: item.span });
    } else if (item.type === 'call') {
      const source = argValue(item.args, 'feature');
      const base = source?.type === 'text' ? source.value : 'inline';
      const name = features.inlineName(base, item.callee.name);
      if (features.add(name, item.span, item, true) !== undefined) out.push({ name, span: item.span });
    } else {
      reporter.report('WND4005', item.span, 'expected a feature name or `embedding(...)`/`indicator(...)` in the deep features');
    }
  }
  return out;
}

function checkWide(block: Block, props: Record<string, JsonValue>, features: FeatureChecker, reporter: Reporter): string[] {
  const list = propValue(block, 'features');
  const names = props.features as string[] | undefined;
  if (names === undefined || list?.type !== 'list') return [];
  const out: string[] = [];
  const seen = new Map<string, Span>();
  names.forEach((name, i) => {
    const span = list.items[i]!.span;
    if (duplicateInPart(name, span, seen, 'wide', reporter)) return;
    const info = features.lookup(name, span, []);
    if (info?.ir === undefined) return;
    if (isView(info.ir)) {
      reporter.report('WND4010', span, `\`${name}\` is an ${info.ir.kind}, which only the deep part reads`, {
        help: `list the categorical feature \`${(info.ir as { feature: string }).feature}\` in the wide part instead`,
      });
      return;
    }
    out.push(name);
  });
  return out;
}

function checkDeep(items: { name: string; span: Span }[], features: FeatureChecker, reporter: Reporter): string[] {
  const out: string[] = [];
  const seen = new Map<string, Span>();
  for (const { name, span } of items) {
    if (duplicateInPart(name, span, seen, 'deep', reporter)) continue;
    const info = features.lookup(name, span, []);
    if (info?.ir === undefined) continue;
    if (info.ir.output.type === 'categorical') {
      reporter.report('WND4010', span, `the deep part reads dense vectors, but \`${name}\` is categorical`, {
        help: `wrap it: \`embedding(${name}, dim: 16)\` or \`indicator(${name})\``,
      });
      continue;
    }
    if (info.ir.kind === 'indicator' && info.ir.output.width > WIDE_INDICATOR_WARNING) {
      reporter.report('WND6003', span, `\`indicator(${info.ir.feature})\` adds ${info.ir.output.width} inputs to the deep tower`, {
        help: `an embedding is far smaller: \`embedding(${info.ir.feature}, dim: 32)\``,
      });
    }
    out.push(name);
  }
  return out;
}

function duplicateInPart(name: string, span: Span, seen: Map<string, Span>, part: string, reporter: Reporter): boolean {
  const first = seen.get(name);
  if (first !== undefined) {
    reporter.report('WND3012', span, `\`${name}\` is listed twice in the ${part} part`, { help: 'remove the repeat', related: [{ span: first, message: 'first listed here' }] });
    return true;
  }
  seen.set(name, span);
  return false;
}

function checkSchedule(block: Block | undefined, props: Record<string, JsonValue> | undefined, reporter: Reporter): void {
  if (block === undefined || props === undefined) return;
  const optimizer = props.optimizer as { kind?: string } | undefined;
  const decay = props.decay as { kind?: string; alpha?: number; end_learning_rate?: number } | undefined;
  const reachesZero = (decay?.kind === 'cosine' && decay.alpha === 0) || (decay?.kind === 'polynomial' && decay.end_learning_rate === 0);
  if (optimizer?.kind === 'ftrl' && reachesZero) {
    // FTRL divides by the learning rate: a rate of 0 gives NaN weights (TensorFlow too).
    reporter.report('WND4006', propValue(block, 'decay')!.span, '`ftrl` divides by the learning rate, and this decay brings it to 0', {
      help: decay?.kind === 'cosine' ? 'give the decay a floor, e.g. `cosine(steps: ..., alpha: 0.01)`' : 'give the decay a floor, e.g. `end_learning_rate: 0.0001`',
    });
  }
  if (props.warmup_steps !== undefined && props.warmup_epochs !== undefined) {
    reporter.report('WND4015', propValue(block, 'warmup_epochs')!.span, 'give the warm-up either in `warmup_steps` or in `warmup_epochs`, not both', { help: 'remove one of them' });
  }
}

/** Embeddings sharing a table must agree on its shape: one domain, one width. */
function checkShares(features: FeatureChecker, reporter: Reporter): void {
  const first = new Map<string, FeatureInfo>();
  for (const info of features.features.values()) {
    if (info.share === undefined || info.ir?.kind !== 'embedding') continue;
    const leader = first.get(info.share);
    if (leader === undefined) {
      first.set(info.share, info);
      continue;
    }
    const lead = leader.ir as Extract<FeatureIR, { kind: 'embedding' }>;
    const dim = (f: FeatureIR) => (f.output.type === 'dense' ? f.output.width : 0);
    const rows = (f: FeatureInfo) => {
      const src = features.features.get((f.ir as { feature: string }).feature)?.ir;
      return src?.output.type === 'categorical' ? src.output.buckets : undefined;
    };
    if (dim(info.ir) !== dim(lead)) {
      reporter.report('WND5004', argValue(info.call.args, 'dim')?.span ?? info.call.span, `embeddings sharing \`${info.share}\` must have one dimension: ${dim(info.ir)} here, ${dim(lead)} for \`${lead.feature}\``, {
        help: `set \`dim: ${dim(lead)}\``,
        related: [{ span: argValue(leader.call.args, 'dim')?.span ?? leader.call.span, message: 'the shared dimension is set here' }],
      });
    } else if (rows(info) !== rows(leader)) {
      reporter.report('WND5005', argValue(info.call.args, 'feature')?.span ?? info.call.span, `embeddings sharing \`${info.share}\` must read features of one domain: \`${info.ir.feature}\` has ${rows(info)} buckets, \`${lead.feature}\` has ${rows(leader)}`, {
        help: 'give both features the same number of buckets, or stop sharing',
        related: [{ span: argValue(leader.call.args, 'feature')?.span ?? leader.call.span, message: 'the first member of the share group' }],
      });
    } else if (info.call.args.some((a) => a.name.name === 'init') && JSON.stringify(info.init) !== JSON.stringify(leader.init)) {
      // One table has one initializer: a different one on a later member would be silently ignored.
      reporter.report('WND5009', argValue(info.call.args, 'init')!.span, `embeddings sharing \`${info.share}\` have one table, initialised once: this \`init\` differs from \`${lead.feature}\`'s`, {
        help: 'give every member the same `init`, or set it on the first member only',
        related: [{ span: argValue(leader.call.args, 'init')?.span ?? leader.call.span, message: 'the table is initialised as set here' }],
      });
    }
  }
}

function checkMetrics(train: Block | undefined, props: Record<string, JsonValue>, hasGroup: boolean, reporter: Reporter): MetricIR[] {
  const metrics = (props.metrics as string[] | undefined) ?? [];
  const list = propValue(train, 'metrics');
  const out: MetricIR[] = [];
  metrics.forEach((text, i) => {
    const [name, k] = text.split('@');
    if (name === 'map') {
      if (!hasGroup) {
        const span = list?.type === 'list' ? list.items[i]!.span : (list?.span ?? { start: 0, end: 0 });
        reporter.report('WND5003', span, `\`${text}\` ranks items within groups, but no column is marked \`@group\``, { help: 'mark the group column, e.g. `display_id: int @group`' });
      }
      out.push({ kind: 'map', k: Number(k) });
    } else {
      out.push({ kind: name as 'auc' | 'logloss' });
    }
  });
  return out;
}

function warnUnused(
  ast: ModelAst,
  features: FeatureChecker,
  columns: ReturnType<typeof checkColumns>['columns'],
  roles: ReturnType<typeof checkColumns>['roles'],
  wide: string[],
  deep: string[],
  reporter: Reporter,
): void {
  const used = new Set<string>();
  const visit = (name: string) => {
    if (used.has(name)) return;
    used.add(name);
    const ir = features.features.get(name)?.ir;
    if (ir === undefined) return;
    for (const dep of dependencies(ir)) visit(dep);
  };
  [...wide, ...deep].forEach(visit);
  const readColumns = new Set<string>();
  for (const info of features.features.values()) {
    const ir = info.ir;
    if (ir !== undefined && 'column' in ir) readColumns.add(ir.column);
    if (ir?.kind === 'weighted') readColumns.add(ir.weights);
    if (ir === undefined && info.args !== undefined) {
      for (const key of ['column', 'weights']) if (typeof info.args[key] === 'string') readColumns.add(info.args[key] as string);
    }
  }
  if (reporter.errorCount > 0) return; // unused-ness is only meaningful once the model is consistent
  for (const decl of ast.features?.features ?? []) {
    if (!used.has(decl.name.name)) {
      reporter.report('WND6001', decl.name.span, `feature \`${decl.name.name}\` is used by neither the wide nor the deep part`, { help: 'list it in `wide { features: [...] }` or the deep features, or remove it' });
    }
  }
  const roleColumns = new Set([roles.label, roles.group, roles.weight].filter((c) => c !== undefined).map((c) => c.decl.name.name));
  for (const [name, info] of columns) {
    if (!readColumns.has(name) && !roleColumns.has(name)) {
      reporter.report('WND6002', info.decl.name.span, `column \`${name}\` is read by no feature`, { help: 'declare a feature for it, or remove it from `input`' });
    }
  }
}

function checkMemoryBudget(ir: ModelIR, train: Block | undefined, reporter: Reporter): void {
  const budget = ir.train.memoryBudgetBytes;
  if (budget === null) return;
  const total = ir.sizes.tableBytes + ir.sizes.optimizerStateBytes;
  if (total <= budget) return;
  const largest = [...ir.tables].sort((a, b) => b.bytes - a.bytes).slice(0, 3);
  // `1 MiB` rather than `1.00 MiB`: a budget is usually a round number.
  const bytes = (n: number) => formatBytes(n).replace(/\.0+ /, ' ');
  reporter.report('WND5006', propValue(train, 'memory_budget')!.span, `the tables need ${bytes(total)} with optimizer state, over the budget of ${bytes(budget)}`, {
    help: `largest: ${largest.map((t) => `\`${t.name}\` ${bytes(t.bytes)}`).join(', ')}; reduce their buckets or dimensions, or raise the budget`,
  });
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[i]}`;
}

