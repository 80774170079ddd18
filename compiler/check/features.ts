// Checks feature columns: each kind's column types, list-ness, references and parameters, and
// computes what each feature outputs (ids in [0, buckets) or dense floats) in dependency order.

import type { CallValue, Span, Value } from '../../dsl/ast.js';
import { didYouMean, type Reporter } from '../diagnostics.js';
import type { FeatureIR, FeatureOutput, IdMapping, InitializerIR, Literal, Normalisation, NumericStats } from '../ir.js';
import { checkName, typeText, type ColumnInfo } from './columns.js';
import { initializerIR } from './calls.js';
import { argValue, ValueChecker, type ResolvedCall } from './values.js';

export interface FeatureInfo {
  name: string;
  nameSpan: Span;
  call: CallValue;
  /** Inline `embedding(...)` / `indicator(...)` written in the deep block. */
  inline: boolean;
  args?: ResolvedCall;
  ir?: FeatureIR;
  /** Undefined until computed; null when invalid (already reported). */
  state?: 'visiting' | 'done';
  /** For embeddings: the resolved initializer. */
  init?: InitializerIR;
  share?: string;
}

export interface FileAccess {
  /** Resolves a path written in the spec (relative to the spec's folder) and reads it, or undefined. */
  readText(path: string): string | undefined;
}

const VIEW_KINDS = new Set(['embedding', 'indicator']);

/** Crossed bags keep at most this many ids per row unless `max_len` says otherwise. */
export const MAX_CROSS_LEN = 256;

export function isView(ir: FeatureIR): boolean {
  return VIEW_KINDS.has(ir.kind);
}

export class FeatureChecker {
  readonly features = new Map<string, FeatureInfo>();
  private readonly values: ValueChecker;

  constructor(
    private readonly reporter: Reporter,
    private readonly columns: Map<string, ColumnInfo>,
    private readonly files: FileAccess,
    private readonly labelColumn?: string,
  ) {
    this.values = new ValueChecker(reporter);
  }

  /** Registers a declared or inline feature and resolves its arguments. */
  add(name: string, nameSpan: Span, call: CallValue, inline: boolean): FeatureInfo | undefined {
    const earlier = this.features.get(name);
    if (earlier !== undefined) {
      this.reporter.report('WND3004', nameSpan, `feature \`${name}\` is declared twice`, {
        help: 'rename or remove one of them',
        related: [{ span: earlier.nameSpan, message: 'first declared here' }],
      });
      return undefined;
    }
    const info: FeatureInfo = { name, nameSpan, call, inline };
    const args = this.values.resolveCall(call, 'feature', inline ? ['embedding', 'indicator'] : undefined);
    if (args !== undefined) info.args = args;
    this.features.set(name, info);
    return info;
  }

  /** A fresh name for an inline view: `<feature>_embedding`, `<feature>_embedding_2`, ... */
  inlineName(source: string, kind: string): string {
    let name = `${source}_${kind}`;
    for (let i = 2; this.features.has(name); i++) name = `${source}_${kind}_${i}`;
    return name;
  }

  /** Computes every feature's IR; features that depend on invalid ones are skipped silently. */
  resolveAll(): void {
    for (const info of this.features.values()) this.resolve(info, []);
  }

  /** The IR of feature `name`, reporting an unknown name at `span`. */
  lookup(name: string, span: Span, path: FeatureInfo[]): FeatureInfo | undefined {
    const info = this.features.get(name);
    if (info === undefined) {
      const isColumn = this.columns.has(name);
      this.reporter.report('WND3002', span, `unknown feature \`${name}\``, {
        help: didYouMean(name, [...this.features.keys()].filter((n) => !this.features.get(n)!.inline)) ??
          (isColumn ? `\`${name}\` is an input column; declare a feature for it, e.g. \`${name} = hashed(${name}, buckets: 1000)\`` : 'declare it in the `features` section'),
      });
      return undefined;
    }
    this.resolve(info, path, span);
    return info;
  }

  /** `via`: where the feature last on `path` reads `info`, shown when that closes a loop. */
  private resolve(info: FeatureInfo, path: FeatureInfo[], via?: Span): void {
    if (info.state === 'done') return;
    if (info.state === 'visiting') {
      const cycle = [...path.slice(path.indexOf(info)), info].map((f) => `\`${f.name}\``).join(' -> ');
      const reader = path[path.length - 1];
      this.reporter.report('WND5008', info.nameSpan, `feature \`${info.name}\` depends on itself: ${cycle}`, {
        help: 'a feature cannot read itself, directly or through other features: build one of them from features outside the loop',
        ...(reader !== undefined && via !== undefined ? { related: [{ span: via, message: `\`${reader.name}\` reads \`${info.name}\` here` }] } : {}),
      });
      return;
    }
    info.state = 'visiting';
    const ir = info.args === undefined ? undefined : this.lowerFeature(info, info.args, [...path, info]);
    if (ir !== undefined) info.ir = ir;
    info.state = 'done';
  }

  private column(info: FeatureInfo, args: ResolvedCall, param = 'column'): ColumnInfo | undefined {
    const name = args[param];
    if (typeof name !== 'string') return undefined;
    const col = this.columns.get(name);
    const span = argValue(info.call.args, param)?.span ?? info.call.span;
    if (col === undefined) {
      const isFeature = this.features.has(name);
      this.reporter.report('WND3001', span, `unknown column \`${name}\``, {
        help: didYouMean(name, this.columns.keys()) ?? (isFeature ? `\`${name}\` is a feature; \`${args.kind}\` reads an input column` : 'declare it in the `input` section'),
      });
      return undefined;
    }
    if (name === this.labelColumn) {
      this.reporter.report('WND4016', span, `\`${args.kind}\` reads the label column \`${name}\`: the model would see the answer`, {
        help: 'read another column; the label is only the training target',
      });
      return undefined;
    }
    return col.type === undefined ? undefined : col;
  }

  private wrongType(info: FeatureInfo, col: ColumnInfo, accepted: string, help?: string): undefined {
    const span = argValue(info.call.args, 'column')?.span ?? info.call.span;
    const kind = info.call.callee.name;
    if (col.list && !accepted.includes('list')) {
      this.reporter.report('WND4002', span, `\`${kind}\` reads one value per row, but \`${col.decl.name.name}\` is \`${typeText(col.type, true)}\``, {
        help: help ?? `use \`multi_hot(${col.decl.name.name}, max_len: ..., ...)\` for a list column`,
      });
    } else {
      this.reporter.report('WND4001', span, `\`${kind}\` cannot read \`${col.decl.name.name}\` of type \`${typeText(col.type, col.list)}\``, {
        help: help ?? `\`${kind}\` takes ${accepted}`,
      });
    }
    return undefined;
  }

  private lowerFeature(info: FeatureInfo, a: ResolvedCall, path: FeatureInfo[]): FeatureIR | undefined {
    const name = info.name;
    const categorical = (buckets: number, multivalent = false, maxLen = 1, combiner: 'mean' | 'sum' | 'sqrtn' = 'mean', weighted = false): FeatureOutput => ({
      type: 'categorical',
      buckets,
      multivalent,
      maxLen,
      combiner,
      weighted,
    });
    switch (a.kind) {
      case 'numeric': {
        const col = this.column(info, a);
        if (col === undefined) return undefined;
        if (col.list || col.type === 'string') return this.wrongType(info, col, '`int` or `float`', col.type === 'string' ? 'hash it with `hashed(...)` or map it with `vocabulary(...)`' : undefined);
        const stats: NumericStats = {};
        for (const k of ['min', 'max', 'mean', 'std'] as const) if (typeof a[k] === 'number') stats[k] = a[k];
        if (stats.min !== undefined && stats.max !== undefined && !(stats.min < stats.max)) {
          this.reporter.report('WND4007', argValue(info.call.args, 'max')!.span, `\`max\` must be greater than \`min\` (${stats.min}), found ${stats.max}`, {
            help: 'swap them, or leave both out to compute them from the data',
          });
          return undefined;
        }
        return { name, kind: 'numeric', column: col.decl.name.name, norm: a.norm as Normalisation, stats, output: { type: 'dense', width: 1 } };
      }
      case 'bucketized': {
        const col = this.column(info, a);
        if (col === undefined) return undefined;
        if (col.list || col.type === 'string') return this.wrongType(info, col, '`int` or `float`', col.type === 'string' ? 'bucketize a numeric column; for strings use `vocabulary(...)` or `hashed(...)`' : undefined);
        const boundaries = a.boundaries as number[] | undefined;
        if (boundaries === undefined) return undefined;
        const list = argValue(info.call.args, 'boundaries');
        for (let i = 1; i < boundaries.length; i++) {
          if (!(boundaries[i]! > boundaries[i - 1]!)) {
            const item = list?.type === 'list' ? list.items[i] : undefined;
            this.reporter.report('WND4008', item?.span ?? info.call.span, `boundaries must be strictly increasing: ${boundaries[i]} follows ${boundaries[i - 1]}`, { help: 'sort the boundaries and remove repeats' });
            return undefined;
          }
        }
        return { name, kind: 'bucketized', column: col.decl.name.name, boundaries, output: categorical(boundaries.length + 1) };
      }
      case 'hashed': {
        const col = this.column(info, a);
        if (col === undefined) return undefined;
        if (col.list || col.type === 'float') return this.wrongType(info, col, '`int` or `string`', col.type === 'float' && !col.list ? 'hashing a float is rarely meant: use `bucketized(...)` or `numeric(...)`' : undefined);
        if (typeof a.buckets !== 'number') return undefined;
        return { name, kind: 'hashed', column: col.decl.name.name, output: categorical(a.buckets) };
      }
      case 'identity': {
        const col = this.column(info, a);
        if (col === undefined) return undefined;
        if (col.list || col.type !== 'int') return this.wrongType(info, col, 'an `int` column of ids', col.type === 'string' && !col.list ? 'map strings with `vocabulary(...)` or `hashed(...)`' : undefined);
        if (typeof a.buckets !== 'number') return undefined;
        const defaultId = a.default_id as number;
        if (defaultId >= a.buckets) {
          this.reporter.report('WND4007', argValue(info.call.args, 'default_id')!.span, `\`default_id\` must be below \`buckets\` (${a.buckets}), found ${defaultId}`, {
            help: defaultIdHelp(a.buckets),
          });
          return undefined;
        }
        return { name, kind: 'identity', column: col.decl.name.name, defaultId, output: categorical(a.buckets) };
      }
      case 'vocabulary': {
        const col = this.column(info, a);
        if (col === undefined) return undefined;
        if (col.list || col.type === 'float') return this.wrongType(info, col, 'an `int` or `string` column', col.list ? 'use `multi_hot(..., by: vocabulary, values: [...])` for a list column' : undefined);
        const vocab = this.vocabulary(info, a, col);
        if (vocab === undefined) return undefined;
        const oovBuckets = a.oov_buckets as number;
        return { name, kind: 'vocabulary', column: col.decl.name.name, values: vocab.values, oovBuckets, file: vocab.file, output: categorical(vocab.values.length + oovBuckets) };
      }
      case 'multi_hot':
        return this.multiHot(info, a);
      case 'crossed': {
        const names = a.features as string[] | undefined;
        if (names === undefined) return undefined;
        const list = argValue(info.call.args, 'features');
        let multivalent = false;
        let maxLen = 1;
        let ok = true;
        names.forEach((n, i) => {
          const span = list?.type === 'list' ? (list.items[i]?.span ?? list.span) : info.call.span;
          const src = this.categoricalSource(n, span, path, 'crossed');
          if (src === undefined) {
            ok = false;
            return;
          }
          multivalent ||= src.multivalent;
          maxLen *= src.maxLen;
        });
        if (!ok || typeof a.buckets !== 'number') return undefined;
        // Crossing bags multiplies their lengths; rows keep at most max_len crossed ids.
        if (typeof a.max_len === 'number') {
          maxLen = Math.min(maxLen, a.max_len);
        } else if (maxLen > MAX_CROSS_LEN) {
          this.reporter.report('WND4007', info.call.callee.span, `crossing these bags gives up to ${maxLen} ids per row, more than ${MAX_CROSS_LEN}`, {
            help: `add \`max_len: ...\` to keep the first crossed ids of each row (at most ${MAX_CROSS_LEN} without it)`,
          });
          return undefined;
        }
        return { name, kind: 'crossed', features: names, output: categorical(a.buckets, multivalent, maxLen) };
      }
      case 'weighted': {
        const src = this.featureArg(info, a, path, 'weighted');
        const weights = this.column(info, a, 'weights');
        if (src === undefined || weights === undefined) return undefined;
        const span = argValue(info.call.args, 'weights')!.span;
        const wanted = src.multivalent ? 'list<float>' : 'float';
        if (weights.type !== 'float') {
          this.reporter.report('WND4001', span, `weights column \`${weights.decl.name.name}\` must hold floats, not \`${typeText(weights.type, weights.list)}\``, {
            help: `declare \`${weights.decl.name.name}: ${wanted}\` (one weight per id of \`${a.feature}\`)`,
          });
          return undefined;
        }
        if (weights.list !== src.multivalent) {
          this.reporter.report('WND4002', span, `\`${a.feature}\` is ${src.multivalent ? 'multi-valued' : 'single-valued'}, so its weights column must be \`${wanted}\``, {
            help: `declare \`${weights.decl.name.name}: ${wanted}\`, one weight per id of \`${a.feature}\``,
          });
          return undefined;
        }
        return { name, kind: 'weighted', feature: a.feature as string, weights: weights.decl.name.name, output: { ...src, weighted: true } };
      }
      case 'embedding': {
        const src = this.featureArg(info, a, path, 'embedding');
        if (src === undefined || typeof a.dim !== 'number') return undefined;
        if (typeof a.combiner === 'string' && !src.multivalent && !src.weighted) {
          this.reporter.report('WND4003', argValue(info.call.args, 'combiner')!.span, `\`${a.feature}\` holds one id per row, so a combiner has nothing to combine`, {
            help: 'remove `combiner`, or embed a multi-valued feature such as `multi_hot(...)`',
          });
          return undefined;
        }
        info.init = a.init === undefined ? { kind: 'truncated_normal', mean: 0, stddev: 1 / Math.sqrt(a.dim) } : initializerIR(a.init);
        if (typeof a.share === 'string') {
          // A share name names a table (`deep/shared/<share>`), so it follows the rules of names.
          if (!checkName({ name: a.share, span: argValue(info.call.args, 'share')!.span }, 'share group', this.reporter)) return undefined;
          info.share = a.share;
        }
        const combiner = (a.combiner as 'mean' | 'sum' | 'sqrtn' | undefined) ?? src.combiner;
        return { name, kind: 'embedding', feature: a.feature as string, table: '', combiner, output: { type: 'dense', width: a.dim } };
      }
      case 'indicator': {
        const src = this.featureArg(info, a, path, 'indicator');
        if (src === undefined) return undefined;
        return { name, kind: 'indicator', feature: a.feature as string, output: { type: 'dense', width: src.buckets } };
      }
      default:
        return undefined;
    }
  }

  private multiHot(info: FeatureInfo, a: ResolvedCall): FeatureIR | undefined {
    const col = this.column(info, a);
    if (col === undefined) return undefined;
    const span = argValue(info.call.args, 'column')?.span ?? info.call.span;
    if (!col.list) {
      this.reporter.report('WND4002', span, `\`multi_hot\` reads a list column, but \`${col.decl.name.name}\` is \`${typeText(col.type, false)}\``, {
        help: `declare it as \`list<${col.type}>\`, or use \`hashed(...)\`/\`identity(...)\` for one value per row`,
      });
      return undefined;
    }
    if (col.type === 'float') return this.wrongType(info, col, '`list<int>` or `list<string>`', 'a list of floats can only be weights: see `weighted(...)`');
    const hasVocab = a.values !== undefined || a.file !== undefined;
    const by = (a.by as string | undefined) ?? (hasVocab ? 'vocabulary' : col.type === 'int' ? 'identity' : 'hash');
    const byValue = argValue(info.call.args, 'by');
    if (by === 'identity' && col.type !== 'int') {
      this.reporter.report('WND4001', byValue?.span ?? span, `\`by: identity\` needs a \`list<int>\` column, but \`${col.decl.name.name}\` is \`${typeText(col.type, true)}\``, { help: 'use `by: hash` or `by: vocabulary`' });
      return undefined;
    }
    let mapping: IdMapping;
    let buckets: number;
    if (by === 'vocabulary') {
      if (a.buckets !== undefined) {
        this.reporter.report('WND4015', argValue(info.call.args, 'buckets')!.span, '`buckets` is set by the vocabulary and cannot be given with `by: vocabulary`', { help: 'remove `buckets`; use `oov_buckets` for unseen values' });
        return undefined;
      }
      const vocab = this.vocabulary(info, a, col);
      if (vocab === undefined) return undefined;
      mapping = { by: 'vocabulary', values: vocab.values, oovBuckets: a.oov_buckets as number, file: vocab.file };
      buckets = vocab.values.length + (a.oov_buckets as number);
    } else {
      if (hasVocab) {
        const v = argValue(info.call.args, 'values') ?? argValue(info.call.args, 'file')!;
        this.reporter.report('WND4015', v.span, `a vocabulary cannot be given with \`by: ${by}\``, { help: 'remove it, or write `by: vocabulary`' });
        return undefined;
      }
      if (typeof a.buckets !== 'number') {
        if (a.buckets === undefined && argValue(info.call.args, 'buckets') === undefined) {
          this.reporter.report('WND3007', info.call.callee.span, `\`multi_hot\` with \`by: ${by}\` needs \`buckets\``, { help: 'add `buckets: ...` (number of ids or hash buckets)' });
        }
        return undefined;
      }
      buckets = a.buckets;
      if (by === 'identity') {
        const defaultId = a.default_id as number;
        if (defaultId >= buckets) {
          this.reporter.report('WND4007', argValue(info.call.args, 'default_id')!.span, `\`default_id\` must be below \`buckets\` (${buckets}), found ${defaultId}`, {
            help: defaultIdHelp(buckets),
          });
          return undefined;
        }
        mapping = { by: 'identity', defaultId };
      } else {
        mapping = { by: 'hash' };
      }
    }
    if (typeof a.max_len !== 'number') return undefined;
    return {
      name: info.name,
      kind: 'multi_hot',
      column: col.decl.name.name,
      mapping,
      output: { type: 'categorical', buckets, multivalent: true, maxLen: a.max_len, combiner: a.combiner as 'mean' | 'sum' | 'sqrtn', weighted: false },
    };
  }

  private vocabulary(info: FeatureInfo, a: ResolvedCall, col: ColumnInfo): { values: Literal[]; file: string | null } | undefined {
    const inline = a.values as Literal[] | undefined;
    const file = a.file as string | undefined;
    if (inline !== undefined && file !== undefined) {
      this.reporter.report('WND4015', argValue(info.call.args, 'file')!.span, 'give the vocabulary either inline (`values`) or as a `file`, not both', { help: 'remove one of them' });
      return undefined;
    }
    if (inline === undefined && file === undefined) {
      this.reporter.report('WND3007', info.call.callee.span, `\`${info.call.callee.name}\` needs a vocabulary`, { help: 'add `values: [...]` or `file: "vocab.txt"`' });
      return undefined;
    }
    if (file !== undefined) {
      const span = argValue(info.call.args, 'file')!.span;
      const text = this.files.readText(file);
      if (text === undefined) {
        this.reporter.report('WND4014', span, `cannot read vocabulary file ${JSON.stringify(file)}`, { help: 'the path is relative to the spec file; check that it exists and is readable' });
        return undefined;
      }
      const all = text.split(/\r?\n/);
      // Empty lines are skipped; messages still count lines as an editor does.
      const lineNumbers = all.flatMap((l, i) => (l.length > 0 ? [i + 1] : []));
      const lines = all.filter((l) => l.length > 0);
      const values: Literal[] = col.type === 'int' ? lines.map((l) => Number(l.trim())) : lines;
      const bad = col.type === 'int' ? lines.findIndex((l) => !/^-?\d+$/.test(l.trim())) : -1;
      if (bad >= 0) {
        this.reporter.report('WND4013', span, `line ${lineNumbers[bad]} of vocabulary file ${JSON.stringify(file)} is not an integer, but \`${col.decl.name.name}\` is \`int\``, {
          help: 'an `int` column takes a file of whole numbers, one per line; declare the column `string` for text values',
        });
        return undefined;
      }
      return this.uniqueVocabulary(values, span, undefined, { file, lineNumbers });
    }
    const list = argValue(info.call.args, 'values')!;
    const items = list.type === 'list' ? list.items : [];
    for (let i = 0; i < inline!.length; i++) {
      const v = inline![i]!;
      const fits = col.type === 'int' ? typeof v === 'number' && Number.isInteger(v) : typeof v === 'string';
      if (!fits) {
        this.reporter.report('WND4013', items[i]?.span ?? list.span, `vocabulary entry ${JSON.stringify(v)} does not fit column \`${col.decl.name.name}\` of type \`${col.type}\``, {
          help: col.type === 'string' ? 'quote it: vocabulary entries of a string column are strings' : 'vocabulary entries of an int column are whole numbers',
        });
        return undefined;
      }
    }
    return this.uniqueVocabulary(inline!, list.span, items);
  }

  private uniqueVocabulary(
    values: Literal[],
    span: Span,
    items: Value[] | undefined,
    fromFile?: { file: string; lineNumbers: number[] },
  ): { values: Literal[]; file: string | null } | undefined {
    const file = fromFile?.file ?? null;
    if (values.length === 0) {
      this.reporter.report('WND4013', span, fromFile === undefined ? 'the vocabulary is empty' : `vocabulary file ${JSON.stringify(fromFile.file)} is empty`, {
        help: fromFile === undefined ? 'list at least one value' : 'write the values into it, one per line',
      });
      return undefined;
    }
    const seen = new Map<Literal, number>();
    for (let i = 0; i < values.length; i++) {
      const first = seen.get(values[i]!);
      if (first !== undefined) {
        const firstSpan = items?.[first]?.span;
        this.reporter.report('WND4013', items?.[i]?.span ?? span, `vocabulary entry ${JSON.stringify(values[i])} appears twice${fromFile === undefined ? '' : ` (lines ${fromFile.lineNumbers[first]} and ${fromFile.lineNumbers[i]})`}`, {
          help: 'each value may appear once: remove the repeat',
          ...(firstSpan === undefined ? {} : { related: [{ span: firstSpan, message: 'first listed here' }] }),
        });
        return undefined;
      }
      seen.set(values[i]!, i);
    }
    return { values, file };
  }

  private featureArg(info: FeatureInfo, a: ResolvedCall, path: FeatureInfo[], kind: string): Extract<FeatureOutput, { type: 'categorical' }> | undefined {
    if (typeof a.feature !== 'string') return undefined;
    const span = argValue(info.call.args, 'feature')?.span ?? info.call.span;
    return this.categoricalSource(a.feature, span, path, kind);
  }

  /** The output of a categorical feature read by `kind`, reporting unknown or non-categorical ones. */
  private categoricalSource(name: string, span: Span, path: FeatureInfo[], kind: string): Extract<FeatureOutput, { type: 'categorical' }> | undefined {
    if (!this.features.has(name) && this.columns.has(name)) {
      this.reporter.report('WND3002', span, `unknown feature \`${name}\``, {
        help: `\`${name}\` is an input column; \`${kind}\` reads a categorical feature: declare one, e.g. \`${name}_id = hashed(${name}, buckets: 1000)\``,
      });
      return undefined;
    }
    const src = this.lookup(name, span, path);
    if (src?.ir === undefined) return undefined;
    if (src.ir.output.type !== 'categorical') {
      this.reporter.report('WND4011', span, `\`${kind}\` reads a categorical feature, but \`${name}\` is ${src.ir.kind === 'numeric' ? 'numeric' : `a dense \`${src.ir.kind}\``}`, {
        help: src.ir.kind === 'numeric' ? `bucketize it first: \`${name}_bucket = bucketized(${(src.ir as { column: string }).column}, boundaries: [...])\`` : 'use the categorical feature it is built from',
      });
      return undefined;
    }
    if (kind === 'weighted' && src.ir.output.weighted) {
      this.reporter.report('WND4011', span, `\`${name}\` is already weighted`, { help: 'a feature carries one set of weights: weight the categorical feature it is built from' });
      return undefined;
    }
    return src.ir.output;
  }
}

function defaultIdHelp(buckets: number): string {
  return `ids lie in [0, ${buckets}): use an id below ${buckets} (such as \`0\`), or raise \`buckets\` to make room for it`;
}
