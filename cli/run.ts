// `wndc run SPEC`: train (default), `--evaluate` the latest checkpoint, `--predict OUT` scores, or
// `--benchmark` throughput. Without `--data` it trains on synthetic data generated for the spec
// (the embedded default). The reference recipe's flag names are accepted as aliases (see main.ts).

import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { ModelIR } from '../compiler/ir.js';
import { loadLatestCheckpoint } from '../runtime/checkpoint.js';
import { BatchReader, epochRandom, shuffleInPlace } from '../runtime/data/batches.js';
import { cacheRoot } from '../runtime/cache.js';
import { openShards, ShardError, type ShardSet } from '../runtime/data/shards.js';
import { openRawSource } from '../runtime/data/sources/open.js';
import type { RawSource } from '../runtime/data/contracts.js';
import { specHash } from '../runtime/data/spec-hash.js';
import { synthSource } from '../runtime/data/synth.js';
import type { TableExchange } from '../runtime/engine/cuda/addon-api.js';
import type { CudaEngine } from '../runtime/engine/cuda/engine.js';
import { LocalCollective, type Collective } from '../runtime/distributed/collective.js';
import { UnsupportedDistributedError, UnsupportedPrecisionError, type BatchSlice, type Engine, type LearningRates } from '../runtime/engine/engine.js';
import { evaluate, trainModel, TrainingError } from '../runtime/train/trainer.js';
import { compileSpecFile } from './commands.js';
import { EXIT, median, UsageError, wholeNumberFlag, type CliIO } from './io.js';
import { launchRequest, launchWorkers, withWorld, type LaunchFlags, type World } from './launch.js';
import { encodeToFolder } from './preprocess.js';
import { createTrainingProgress } from './progress.js';
import { readVersion } from './version.js';
import { writeFileAtomic } from '../compiler/fs.js';

export interface RunFlags extends LaunchFlags {
  /** Weak scaling: each rank's rows of a step (the global batch is this times the ranks). */
  perRankBatchSize?: string;
  data?: string;
  valid?: string;
  modelDir?: string;
  evaluate?: boolean;
  predict?: string;
  benchmark?: boolean;
  benchmarkSteps?: string;
  benchmarkWarmupSteps?: string;
  amp?: string | boolean;
  /** `--no-tf32` sets this false: strict fp32 matrix products on the CUDA engine. */
  tf32?: boolean;
  /** `--benchmark-source device|disk` (CUDA engine): preloaded on the GPU (default) or streamed from the shards. */
  benchmarkSource?: string;
  /** `--profile` (CUDA engine, with --benchmark): mean milliseconds per step in each phase. */
  profile?: boolean;
  engine?: string;
  epochs?: string;
  globalBatchSize?: string;
  evalBatchSize?: string;
  linearLearningRate?: string;
  deepLearningRate?: string;
  seed?: string;
  syntheticRows?: string;
  keepCheckpoints?: string;
}

const ENGINES = ['tfjs', 'tfjs-wasm', 'tfjs-cpu', 'tfjs-node', 'cuda'] as const;

function positiveNumber(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n)) throw new UsageError(`${flag} takes a positive number, not ${JSON.stringify(value)}`);
  return n;
}

/** Flags override the spec's training settings (the IR is plain data: the model itself is unchanged). */
function applyOverrides(ir: ModelIR, f: RunFlags): void {
  if (f.epochs !== undefined) ir.train.epochs = wholeNumberFlag('--epochs', f.epochs, 1, 1);
  if (f.globalBatchSize !== undefined) ir.train.batchSize = wholeNumberFlag('--global_batch_size', f.globalBatchSize, 1, 1);
  if (f.evalBatchSize !== undefined) ir.train.evalBatchSize = wholeNumberFlag('--eval_batch_size', f.evalBatchSize, 1, 1);
  if (f.seed !== undefined) ir.train.seed = wholeNumberFlag('--seed', f.seed, 0, 0);
  const wideLr = positiveNumber('--linear_learning_rate', f.linearLearningRate);
  if (wideLr !== undefined) ir.wide.optimizer.learningRate = wideLr;
  const deepLr = positiveNumber('--deep_learning_rate', f.deepLearningRate);
  if (deepLr !== undefined) ir.deep.optimizer.learningRate = deepLr;
  if (f.amp !== undefined && f.amp !== false) {
    const mode = f.amp === true ? 'bf16' : f.amp;
    if (mode !== 'bf16' && mode !== 'fp16') throw new UsageError(`--amp takes bf16 or fp16, not ${JSON.stringify(mode)}`);
    ir.train.mixedPrecision = mode;
  }
}

/** The flags that only the CUDA engine's benchmark reads, checked before anything loads. */
function checkCudaFlags(engine: string, f: RunFlags): void {
  if (f.benchmarkSource !== undefined) {
    if (f.benchmarkSource !== 'device' && f.benchmarkSource !== 'disk') throw new UsageError(`--benchmark-source takes device or disk, not ${JSON.stringify(f.benchmarkSource)}`);
    if (!f.benchmark) throw new UsageError('--benchmark-source goes with --benchmark');
    if (f.benchmarkSource === 'device' && engine !== 'cuda') throw new UsageError('--benchmark-source device preloads the data on the GPU: it needs --engine cuda');
  }
  if (f.profile && (!f.benchmark || engine !== 'cuda')) throw new UsageError('--profile times the phases of CUDA steps: it goes with --benchmark and --engine cuda');
}

/**
 * The engine `name`; a CUDA engine on GPU `device`, built for batches of `batchCapacity` rows (this
 * rank's share of a global batch: its products are tuned for that shape, larger predictions split).
 */
async function createEngine(name: string | undefined, flags: RunFlags, device = 0, batchCapacity?: number): Promise<Engine> {
  const choice = name ?? 'tfjs';
  if (!(ENGINES as readonly string[]).includes(choice)) throw new UsageError(`--engine takes one of ${ENGINES.join(', ')}, not ${JSON.stringify(choice)}`);
  checkCudaFlags(choice, flags);
  if (choice === 'cuda') {
    const [{ CudaEngine }, { CudaUnavailableError }] = await Promise.all([import('../runtime/engine/cuda/engine.js'), import('../runtime/engine/cuda/load-addon.js')]);
    try {
      return await CudaEngine.create({ strictFp32: flags.tf32 === false, device, ...(batchCapacity !== undefined ? { batchCapacity } : {}) });
    } catch (e) {
      // A missing GPU, driver, addon build or cuBLASLt: one line saying what, no stack.
      if (e instanceof CudaUnavailableError) throw new UsageError(`--engine cuda cannot run here: ${e.message}; \`--engine tfjs\` trains on the CPU`, EXIT.failure);
      throw e;
    }
  }
  const { TfjsEngine } = await import('../runtime/engine/tfjs/engine.js');
  const backend = choice === 'tfjs' ? 'auto' : choice === 'tfjs-wasm' ? 'wasm' : choice === 'tfjs-cpu' ? 'cpu' : 'tfjs-node';
  return TfjsEngine.create({ backend });
}

interface Data {
  train: ShardSet;
  valid?: ShardSet;
  origin: string;
}

/** A folder with a manifest is shards; a folder with train/ (and valid/) shards is a preprocessed set; anything else is raw data. */
async function resolveData(ir: ModelIR, flags: RunFlags, modelDir: string, io: CliIO, options: { openOnly?: boolean } = {}): Promise<Data> {
  const hash = specHash(ir);
  const open = (dir: string) => openShards(dir, { specHash: hash });
  if (flags.data === undefined) return synthetic(ir, flags, io);
  const data = resolve(io.cwd, flags.data);
  const validFlag = flags.valid === undefined ? undefined : resolve(io.cwd, flags.valid);
  if (existsSync(join(data, 'manifest.json'))) return { train: open(data), ...(validFlag ? { valid: open(validFlag) } : {}), origin: data };
  if (existsSync(join(data, 'train', 'manifest.json'))) {
    const valid = validFlag ?? (existsSync(join(data, 'valid', 'manifest.json')) ? join(data, 'valid') : undefined);
    return { train: open(join(data, 'train')), ...(valid ? { valid: open(valid) } : {}), origin: data };
  }
  // Raw files: encoded once into model_dir/data, then read from there like any shards.
  const out = join(modelDir, 'data');
  // Another rank (rank 0) has encoded them already.
  if (options.openOnly) return { train: open(join(out, 'train')), valid: open(join(out, 'valid')), origin: out };
  io.stderr(`encoding ${flags.data} into ${out} (run \`wndc preprocess\` to do this once for many runs)\n`);
  const train = await openRawSource(data, ir, {});
  const valid = validFlag === undefined ? undefined : await openRawSource(validFlag, ir, {});
  try {
    await encodeToFolder(ir, { train, ...(valid ? { valid } : { validFraction: 0.1 }), maxBadRows: 0 }, out);
  } finally {
    await train.close();
    await valid?.close();
  }
  return { train: open(join(out, 'train')), valid: open(join(out, 'valid')), origin: out };
}

/** The embedded default: synthetic rows for the spec, made once per (spec, rows, seed) and cached. */
async function synthetic(ir: ModelIR, flags: RunFlags, io: CliIO): Promise<Data> {
  const rows = wholeNumberFlag('--synthetic_rows', flags.syntheticRows, 100_000, 1);
  const hash = specHash(ir);
  const cache = join(cacheRoot(), 'synthetic', `${ir.model}-${hash.slice(0, 12)}-${rows}-${ir.train.seed}`);
  if (!existsSync(join(cache, 'valid', 'manifest.json'))) {
    io.stderr(`no --data: generating ${rows.toLocaleString('en-US')} synthetic rows for \`${ir.model}\` (wndc synth) into ${cache}\n`);
    await encodeToFolder(ir, { train: synthSource(ir, { rows, seed: ir.train.seed }), validFraction: 0.1, maxBadRows: 0 }, cache);
  }
  return { train: openShards(join(cache, 'train'), { specHash: hash }), valid: openShards(join(cache, 'valid'), { specHash: hash }), origin: `synthetic (${cache})` };
}

function formatMetrics(m: Record<string, number>): string {
  return Object.entries(m)
    .map(([k, v]) => `${k} ${Number.isNaN(v) ? 'n/a' : v.toFixed(4)}`)
    .join(', ');
}

/**
 * `argv` is the command line as given (flags normalised): `--workers N` and `--gpus N` start the
 * ranks with it (cli/launch.ts).
 */
export async function runCommand(file: string, flags: RunFlags, cliIO: CliIO, argv: readonly string[] = []): Promise<number> {
  const modes = [flags.evaluate, flags.predict !== undefined, flags.benchmark].filter(Boolean).length;
  if (modes > 1) throw new UsageError('choose one of --evaluate, --predict and --benchmark');
  const launch = launchRequest(flags);
  if (launch !== null && (flags.predict !== undefined || (flags.benchmark && launch.kind !== 'gpus'))) {
    throw new UsageError(`--${launch.kind} trains or evaluates data-parallel${launch.kind === 'gpus' ? ' or benchmarks' : ''}; --predict${launch.kind === 'gpus' ? '' : ' and --benchmark'} run${launch.kind === 'gpus' ? 's' : ''} in one process`);
  }
  if (flags.perRankBatchSize !== undefined && flags.globalBatchSize !== undefined) throw new UsageError('choose one of --global_batch_size (split over the ranks) and --per_rank_batch_size (each rank\'s share)');
  const ir = compileSpecFile(file, cliIO);
  if (ir === undefined) return EXIT.diagnostics;
  applyOverrides(ir, flags);
  const modelDir = resolve(cliIO.cwd, flags.modelDir ?? join('runs', ir.model));
  const keep = wholeNumberFlag('--keep_checkpoints', flags.keepCheckpoints, 3, 1);
  if (launch !== null) return launchWorkers(argv, launch, flags, cliIO);
  return withWorld(flags, () => modelDir, cliIO, (world) => runRank(file, ir, flags, modelDir, keep, world));
}

/** The work of one rank (the only one, without a launcher): train, evaluate, predict or benchmark. */
async function runRank(file: string, ir: ModelIR, flags: RunFlags, modelDir: string, keep: number, world: World): Promise<number> {
  const { collective, io } = world;
  const distributed = collective.size > 1;
  if (distributed && (flags.predict !== undefined || (flags.benchmark && flags.engine !== 'cuda'))) throw new UsageError('--predict (and --benchmark on the CPU) run in one process, not under --hvd');
  if (flags.perRankBatchSize !== undefined) ir.train.batchSize = wholeNumberFlag('--per_rank_batch_size', flags.perRankBatchSize, 1, 1) * collective.size;
  try {
    // One GPU per rank of a host: the rank's local rank picks it.
    const device = world.environment.mode === 'single' ? 0 : world.environment.localRank;
    // Several ranks: each trains on its share of every global batch, so the GPU engine is built
    // (and its matrix products tuned) for that share rather than for the global batch.
    const engine = await createEngine(flags.engine, flags, device, distributed ? Math.ceil(ir.train.batchSize / collective.size) : undefined);
    try {
      if (ir.train.mixedPrecision !== 'off' && !engine.capabilities.mixedPrecision.includes(ir.train.mixedPrecision)) throw new UnsupportedPrecisionError(engine.name, ir.train.mixedPrecision);
      if (flags.predict !== undefined) return await predictCommand(ir, engine, flags, modelDir, file, io);
      // Rank 0 prepares the data (synthetic rows, raw files encoded) while the others wait, then they open it.
      let data: Data;
      if (distributed && collective.rank !== 0) {
        await collective.barrier();
        data = await resolveData(ir, flags, modelDir, io, { openOnly: true });
      } else {
        data = await resolveData(ir, flags, modelDir, io);
        if (distributed) await collective.barrier();
      }
      io.stderr(`model ${ir.model}: ${ir.sizes.parameters.total.toLocaleString('en-US')} parameters on ${engine.capabilities.device}${distributed ? ` x ${collective.size} ranks (${collective.backend})` : ''}; data ${data.origin}: ${data.train.rows.toLocaleString('en-US')} train rows${data.valid ? `, ${data.valid.rows.toLocaleString('en-US')} validation rows` : ''}\n`);
      if (flags.benchmark) return engine.name === 'cuda' ? await cudaBenchmark(ir, engine as CudaEngine, data.train, flags, io, collective) : await benchmark(ir, engine, data, flags, io);
      if (flags.evaluate) {
        const ckpt = await restoreLatest(ir, engine, modelDir, file);
        const e = await evaluate(ir, engine, data.valid ?? data.train, collective);
        io.stdout(`${JSON.stringify({ checkpoint: ckpt.path, step: ckpt.meta.step, rows: e.rows, ...e.metrics })}\n`);
        return EXIT.ok;
      }
      const started = performance.now();
      const progress = createTrainingProgress(io, { epochs: ir.train.epochs });
      const runInfo = {
        model: ir.model,
        specHash: specHash(ir),
        train: ir.train,
        wide: { optimizer: ir.wide.optimizer, schedule: ir.wide.schedule },
        deep: { optimizer: ir.deep.optimizer, schedule: ir.deep.schedule },
        engine: engine.name,
        device: engine.capabilities.device,
        wndcVersion: readVersion(),
        data: data.origin,
        ...(distributed ? { ranks: collective.size, collective: collective.backend } : {}),
        startedAt: new Date().toISOString(),
      };
      const summary = await trainModel({
        ir,
        engine,
        train: data.train,
        ...(data.valid ? { valid: data.valid } : {}),
        modelDir,
        keepCheckpoints: keep,
        wndcVersion: readVersion(),
        runInfo,
        collective,
        onStep: (p) => progress.step(p),
        onEval: (e) => progress.line(`eval after epoch ${e.epoch}: ${formatMetrics(e.metrics)} (${e.rows.toLocaleString('en-US')} rows)\n`),
      }).finally(() => progress.stop());
      const seconds = (performance.now() - started) / 1000;
      if (summary.resumedFrom !== null) io.stderr(`resumed from step ${summary.resumedFrom}\n`);
      io.stdout(`${JSON.stringify({ model: ir.model, steps: summary.steps, seconds: Number(seconds.toFixed(1)), modelDir, ...(summary.lastEval ? summary.lastEval.metrics : {}) })}\n`);
      return EXIT.ok;
    } finally {
      engine.dispose();
    }
  } catch (e) {
    if (e instanceof TrainingError || e instanceof ShardError || e instanceof UnsupportedPrecisionError || e instanceof UnsupportedDistributedError) {
      io.stderr(`wndc: ${e.message}\n`);
      return EXIT.failure;
    }
    throw e;
  }
}

function benchmarkSteps(flags: RunFlags): { steps: number; warmup: number } {
  return {
    steps: wholeNumberFlag('--benchmark_steps', flags.benchmarkSteps, 50, 1),
    warmup: wholeNumberFlag('--benchmark_warmup_steps', flags.benchmarkWarmupSteps, 5, 0),
  };
}

function benchmarkReader(ir: ModelIR, train: ShardSet, flags: RunFlags): BatchReader {
  const reader = new BatchReader(train, { batchSize: ir.train.batchSize, seed: ir.train.seed, lastBatch: 'drop' });
  if (reader.batchCount() === 0) {
    const hint = flags.data === undefined ? ` (give --synthetic_rows ${ir.train.batchSize} or more)` : '';
    throw new UsageError(`the data has ${train.rows.toLocaleString('en-US')} rows, fewer than one batch of ${ir.train.batchSize}${hint}`, EXIT.failure);
  }
  return reader;
}

/** Training throughput: the median over measured steps after warm-up; nothing is written. */
async function benchmark(ir: ModelIR, engine: Engine, data: Data, flags: RunFlags, io: CliIO): Promise<number> {
  const { steps, warmup } = benchmarkSteps(flags);
  await engine.build(ir, ir.train.seed);
  const reader = benchmarkReader(ir, data.train, flags);
  const rates: number[] = [];
  let step = 0;
  for (let epoch = 0; step < warmup + steps; epoch++) {
    for (const batch of reader.batches(epoch)) {
      const t0 = performance.now();
      await engine.trainStep(batch, step, { wide: ir.wide.optimizer.learningRate, deep: ir.deep.optimizer.learningRate });
      const dt = (performance.now() - t0) / 1000;
      if (step >= warmup) rates.push(batch.size / dt);
      if (++step >= warmup + steps) break;
    }
  }
  io.stdout(`${JSON.stringify({ model: ir.model, engine: engine.name, device: engine.capabilities.device, batchSize: ir.train.batchSize, measuredSteps: rates.length, warmupSteps: warmup, examplesPerSecond: Math.round(median(rates)) })}\n`);
  return EXIT.ok;
}

/** The benchmark's account of how the large tables crossed the GPUs (CudaEngine.exchangePlan). */
function exchangeSummary(plan: TableExchange[], gpus: number): Record<string, unknown> {
  const named = (mode: TableExchange['mode']) => plan.filter((x) => x.mode === mode).map((x) => x.table);
  const note = plan.find((x) => x.note !== undefined)?.note;
  const peerRows = plan.find((x) => x.rows !== undefined)?.rows;
  return {
    gpus,
    tablesReadFromPeers: named('peer'),
    ...(peerRows !== undefined ? { peerRows } : {}),
    tablesExchangedAsRows: named('rows'),
    ...(note !== undefined ? { whyNotReadFromPeers: note } : {}),
  };
}

/**
 * The CUDA engine's throughput. `--benchmark-source device` (the default): every training row is
 * uploaded once and each epoch reads a fresh permutation on the GPU; each step is timed to its end
 * on the device. `disk`: batches are read from the shards and uploaded each step, the next batch
 * read while the device runs the current one; a step's time runs from the end of the previous one.
 */
export async function cudaBenchmark(ir: ModelIR, engine: CudaEngine, train: ShardSet, flags: RunFlags, io: CliIO, collective: Collective = new LocalCollective()): Promise<number> {
  const { steps, warmup } = benchmarkSteps(flags);
  const source = flags.benchmarkSource === 'disk' ? 'disk' : 'device';
  const world = collective.size;
  if (world > 1 && source === 'disk') throw new UsageError('with several GPUs, --benchmark trains on data preloaded on each GPU: drop --benchmark-source disk');
  if (ir.train.batchSize % world !== 0) throw new UsageError(`the global batch of ${ir.train.batchSize} rows does not split evenly over ${world} GPUs`);
  // Each rank trains on its share of every global batch; the figures are the global batch's.
  const globalBatch = ir.train.batchSize;
  const batchSize = globalBatch / world;
  const slice = (): BatchSlice | undefined => (world > 1 ? { offset: collective.rank * batchSize, total: globalBatch } : undefined);
  const lr: LearningRates = { wide: ir.wide.optimizer.learningRate, deep: ir.deep.optimizer.learningRate };
  // Buffers for this rank's share of a batch, not the whole global batch.
  await engine.build(world > 1 ? { ...ir, train: { ...ir.train, batchSize, evalBatchSize: batchSize } } : ir, ir.train.seed);
  if (world > 1) await engine.joinCollective(collective);
  const seconds: number[] = [];
  /** Host time to queue one step (device source): what CUDA Graphs would save. */
  const hostSeconds: number[] = [];
  let datasetBytes: number | undefined;
  const measure = (step: number, dt: number) => {
    if (step === warmup - 1 && flags.profile) engine.setProfiling(true); // phases of the measured steps only
    if (step >= warmup) seconds.push(dt);
  };
  if (flags.profile && warmup === 0) engine.setProfiling(true);
  if (source === 'device') {
    datasetBytes = engine.preload(train);
    const orders = new DeviceOrders(train.rows, batchSize, ir.train.seed + collective.rank);
    // One row order for the whole run (each epoch's permutation, back to back), set once: changing
    // it between steps would wait for the GPU. Steps are queued in groups and the group's time
    // shared among its steps, so the GPU never idles while the host queues the next step.
    const total = warmup + steps;
    const epochs = Math.ceil(total / orders.batchesPerEpoch);
    const order = new Int32Array(total * batchSize);
    for (let epoch = 0, filled = 0; epoch < epochs; epoch++) {
      const rows = orders.epoch(epoch).subarray(0, orders.batchesPerEpoch * batchSize);
      const take = Math.min(rows.length, order.length - filled);
      order.set(rows.subarray(0, take), filled);
      filled += take;
    }
    engine.setOrder(order);
    const group = 5;
    let t0 = performance.now();
    let queued: number[] = [];
    for (let step = 0; step < total; step++) {
      if (step === warmup && flags.profile) engine.setProfiling(true); // phases of the measured steps only
      const enqueueStart = performance.now();
      engine.enqueuePreloaded(step * batchSize, batchSize, step, lr, slice());
      if (step >= warmup) hostSeconds.push((performance.now() - enqueueStart) / 1000);
      queued.push(step);
      if (queued.length === group || step + 1 === total || step + 1 === warmup) {
        await engine.synchronize();
        const now = performance.now();
        for (const s of queued) measure(s, (now - t0) / 1000 / queued.length);
        queued = [];
        t0 = now;
      }
    }
  } else {
    const reader = benchmarkReader(ir, train, flags);
    let last = performance.now();
    for (let step = 0, epoch = 0; step < warmup + steps; epoch++) {
      const batches = reader.batches(epoch);
      let next = batches.next();
      while (!next.done && step < warmup + steps) {
        const pending = engine.trainStep(next.value, step, lr);
        next = batches.next(); // engine.copiesBatchOnCall: the batch may be refilled now
        await pending;
        const now = performance.now();
        measure(step++, (now - last) / 1000);
        last = now;
      }
    }
  }
  const stepSeconds = median(seconds);
  const precision = engine.precision;
  const result: Record<string, unknown> = {
    model: ir.model,
    engine: engine.name,
    device: engine.capabilities.device,
    gpu: engine.device.name,
    precision,
    source,
    batchSize: globalBatch,
    // The large tables: read from the other GPUs' memory, or their touched rows all-gathered (the
    // others are summed whole).
    ...(world > 1 ? exchangeSummary(engine.exchangePlan(), world) : {}),
    measuredSteps: seconds.length,
    warmupSteps: warmup,
    examplesPerSecond: Math.round(globalBatch / stepSeconds),
    stepMilliseconds: Number((stepSeconds * 1000).toFixed(3)),
    peakDeviceMemoryBytes: engine.memory().peak,
    ...(datasetBytes !== undefined ? { datasetBytes } : {}),
    ...(hostSeconds.length > 0 ? { hostQueueMilliseconds: Number((median(hostSeconds) * 1000).toFixed(3)) } : {}),
    ...(precision === 'fp16' ? { skippedSteps: engine.skippedSteps(), lossScale: engine.lossScale() } : {}),
    ...(flags.profile ? { phaseMilliseconds: engine.phaseTimes() } : {}),
  };
  io.stdout(`${JSON.stringify(result)}\n`);
  return EXIT.ok;
}

/**
 * Row orders of the device dataset: per epoch, fresh permutations of its rows (seeded by the
 * train seed and the epoch, as BatchReader's epochs), as many back to back as a batch needs when
 * the dataset is smaller than one batch.
 */
export class DeviceOrders {
  readonly batchesPerEpoch: number;
  private readonly copies: number;

  constructor(
    private readonly rows: number,
    batchSize: number,
    private readonly seed: number,
  ) {
    if (rows === 0) throw new UsageError('the training data has no rows', EXIT.failure);
    this.copies = Math.ceil(batchSize / rows);
    this.batchesPerEpoch = Math.floor((rows * this.copies) / batchSize);
  }

  epoch(epoch: number): Int32Array {
    const order = new Uint32Array(this.rows * this.copies);
    const next = epochRandom(this.seed, epoch);
    for (let c = 0; c < this.copies; c++) {
      const part = order.subarray(c * this.rows, (c + 1) * this.rows);
      for (let i = 0; i < this.rows; i++) part[i] = i;
      shuffleInPlace(part, this.rows, next);
    }
    return new Int32Array(order.buffer);
  }
}

async function restoreLatest(ir: ModelIR, engine: Engine, modelDir: string, file: string) {
  await engine.build(ir, ir.train.seed);
  const ckpt = loadLatestCheckpoint(modelDir);
  if (ckpt === undefined) throw new UsageError(`no checkpoint in ${modelDir}: train first (wndc run ${file} --model_dir ...)`, EXIT.failure);
  await engine.loadState(ckpt.tensors);
  return ckpt;
}

/** Raw values of the key columns (group, item) of every row, in file order, for the prediction file. */
type RowKeys = { column: string; values: string[] }[];

/**
 * `--predict OUT` scores every row of the input: `--valid` when given, else `--data` — a shard
 * folder as it is, raw files encoded whole (no validation split) into model_dir/predict-input.
 * From raw files each line also carries the rows' own group and item ids (`@group`, `@item`);
 * shards keep only the encoded group.
 */
async function predictCommand(ir: ModelIR, engine: Engine, flags: RunFlags, modelDir: string, file: string, io: CliIO): Promise<number> {
  const input = flags.valid ?? flags.data;
  if (input === undefined) throw new UsageError('--predict needs the rows to score: give --data (or --valid)');
  const path = resolve(io.cwd, input);
  let rows: ShardSet;
  let keys: RowKeys | undefined;
  if (existsSync(join(path, 'manifest.json'))) {
    rows = openShards(path, { specHash: specHash(ir) });
  } else {
    const out = join(modelDir, 'predict-input');
    const source = await openRawSource(path, ir, {});
    try {
      await encodeToFolder(ir, { train: source, maxBadRows: 0 }, out);
      keys = await readKeys(ir, source);
    } finally {
      await source.close();
    }
    rows = openShards(join(out, 'train'), { specHash: specHash(ir) });
  }
  await restoreLatest(ir, engine, modelDir, file);
  return predict(ir, engine, rows, keys, resolve(io.cwd, flags.predict!), io);
}

async function readKeys(ir: ModelIR, source: RawSource): Promise<RowKeys> {
  const columns = [ir.roles.group, ir.roles.item].filter((c): c is string => c !== null);
  const keys = columns.map((column) => ({ column, values: [] as string[] }));
  if (keys.length === 0) return keys;
  for await (const chunk of source.chunks()) {
    for (const row of chunk.rows) for (const k of keys) k.values.push(csvField(row[k.column]));
  }
  return keys;
}

function csvField(value: unknown): string {
  const text = value === null || value === undefined ? '' : String(value);
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/**
 * `--predict OUT`: one CSV line per row, in data order: its position, its keys (the raw group and
 * item of raw input, the encoded group of shards), its label and score.
 */
async function predict(ir: ModelIR, engine: Engine, data: ShardSet, keys: RowKeys | undefined, out: string, io: CliIO): Promise<number> {
  const reader = new BatchReader(data, { batchSize: ir.train.evalBatchSize, shuffle: false, lastBatch: 'keep' });
  const keyNames = keys !== undefined ? keys.map((k) => k.column) : data.hasGroup ? [ir.roles.group!] : [];
  const lines: string[] = [['row', ...keyNames, ir.roles.label, 'score'].join(',')];
  let row = 0;
  for (const batch of reader.batches(0)) {
    const scores = await engine.predict(batch);
    for (let i = 0; i < batch.size; i++, row++) {
      const keyValues = keys !== undefined ? keys.map((k) => k.values[row] ?? '') : data.hasGroup ? [String(batch.group[i])] : [];
      lines.push([String(row), ...keyValues, String(batch.label[i]), String(scores[i])].join(','));
    }
  }
  writeFileAtomic(out, `${lines.join('\n')}\n`);
  io.stderr(`wrote ${lines.length - 1} scores to ${out}\n`);
  return EXIT.ok;
}
