// `wndc`: the command line. A thin layer mapping flags onto the commands; every user mistake ends
// in one clear message and a documented exit code (0 ok, 1 diagnostics, 2 usage, 3 failure).

import { Command, CommanderError } from 'commander';
import { CUDA_ERROR_CODE } from '../runtime/engine/cuda/addon-api.js';
import { checkCommand, compileCommand, convertCommand, fmtCommand, inspectCommand } from './commands.js';
import { readVersion } from './version.js';
// The data commands load DuckDB and Apache Arrow: imported on use, so `wndc check` starts fast.
import type { BenchDataOptions } from './bench-data.js';
import type { PreprocessFlags } from './preprocess.js';
import type { ReportOptions } from './report.js';
import type { RunFlags } from './run.js';
import type { SynthCommandOptions } from './synth.js';
import { EXIT, UsageError, type CliIO } from './io.js';

function buildProgram(io: CliIO, setExit: (code: number) => void, argv: readonly string[] = []): Command {
  const program = new Command('wndc');
  program
    .description('declare Wide & Deep recommender models, check them, compile them, train them')
    .version(readVersion(), '-V, --version')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout(s), writeErr: (s) => io.stderr(s) })
    .showHelpAfterError('(run `wndc --help` for usage)');

  program
    .command('check')
    .description('report diagnostics only')
    .argument('<file>', 'a model spec (.wnd, .yaml)')
    .option('--format <format>', 'diagnostics as text or json', 'text')
    .action((file: string, opts: { format?: string }) => setExit(checkCommand(file, opts, io)));

  program
    .command('compile')
    .description('check, then write <model>.model.ts and <model>.ir.json')
    .argument('<file>', 'a model spec (.wnd, .yaml)')
    .option('-o, --out-dir <dir>', 'output folder (default: next to the spec)')
    .option('--format <format>', 'diagnostics as text or json', 'text')
    .action(async (file: string, opts: { format?: string; outDir?: string }) => setExit(await compileCommand(file, opts, io)));

  program
    .command('inspect')
    .description('shapes and sizes: feature widths, deep input width, parameters, memory, FLOPs')
    .argument('<file>', 'a model spec (.wnd, .yaml)')
    .option('--json', 'one JSON object instead of tables')
    .action((file: string, opts: { json?: boolean }) => setExit(inspectCommand(file, opts, io)));

  program
    .command('fmt')
    .description('rewrite specs in the canonical layout (comments kept)')
    .argument('<files...>', 'model specs (.wnd, .yaml)')
    .option('--check', 'only report files that are not formatted (exit 1)')
    .option('--stdout', 'print the formatted text instead of rewriting')
    .action((files: string[], opts: { check?: boolean; stdout?: boolean }) => setExit(fmtCommand(files, opts, io)));

  program
    .command('convert')
    .description('translate a spec between .wnd and YAML (round-trips exactly)')
    .argument('<file>', 'a model spec (.wnd, .yaml)')
    .requiredOption('--to <format>', 'yaml or wnd')
    .option('-o, --output <file>', 'write here instead of stdout')
    .action((file: string, opts: { to?: string; output?: string }) => setExit(convertCommand(file, opts, io)));

  program
    .command('synth')
    .description('synthetic rows with a learnable ground truth, for any spec')
    .argument('<file>', 'a model spec (.wnd, .yaml)')
    .requiredOption('--rows <n>', 'rows to generate')
    .requiredOption('--out <dir>', 'output folder')
    .option('--seed <n>', "generator seed (default: the spec's train seed)")
    .option('--format <format>', 'csv, parquet, or shards (encoded, ready to train)', 'csv')
    .option('--valid-fraction <f>', 'shards only: share of groups split off into <out>/valid')
    .action(async (file: string, opts: SynthCommandOptions) => setExit(await (await import('./synth.js')).synthCommand(file, opts, io)));

  program
    .command('preprocess')
    .description('encode raw data (CSV/TSV, Parquet, Arrow IPC, TFRecord) into training shards')
    .argument('<file>', 'a model spec (.wnd, .yaml)')
    .option('--data <input>', 'raw training data: a file, a glob or a folder')
    .option('--sql <query>', 'or a DuckDB query giving the rows (joins, derived columns); @file reads it from a file')
    .requiredOption('--out <dir>', 'output folder: shards go to <dir>/train and <dir>/valid')
    .option('--valid <input>', 'raw validation data')
    .option('--valid-sql <query>', 'or a DuckDB query giving the validation rows')
    .option('--valid-fraction <f>', 'split this share of groups (or rows) off the training data for validation')
    .option('--format <format>', 'csv, tsv, parquet, arrow or tfrecord (default: from the file names)')
    .option('--no-header', 'CSV/TSV files have no header row (columns in --columns or spec order)')
    .option('--columns <names>', 'CSV/TSV without header: comma-separated column names in file order')
    .option('--delimiter <c>', 'CSV/TSV field delimiter (\\t for a tab)')
    .option('--list-separator <c>', 'separator of list elements in a text field (default |)')
    .option('--max-bad-rows <n>', 'skip and count up to n unreadable rows instead of stopping', '0')
    .option('--rows-per-shard <n>', 'rows per shard file', '262144')
    .option('--threads <n>', 'threads encoding rows (default: the available cores; 1 encodes on the main thread)')
    .action(async (file: string, opts: PreprocessFlags) => setExit(await (await import('./preprocess.js')).preprocessCommand(file, opts, io)));

  program
    .command('bench-data')
    .description('read every batch of a shard folder and print rows/s and MB/s')
    .argument('<shards>', 'a shard folder (from wndc preprocess or wndc synth --format shards)')
    .option('--batch-size <n>', 'global batch size', '4096')
    .option('--epochs <n>', 'timed epochs after a warm-up', '5')
    .option('--seed <n>', 'shuffle seed', '0')
    .option('--shuffle', 'shuffle rows (default)')
    .option('--no-shuffle', 'read in file order')
    .option('--shuffle-block <n>', 'rows per shuffled block (1 shuffles single rows)')
    .action(async (dir: string, opts: BenchDataOptions) => setExit(await (await import('./bench-data.js')).benchDataCommand(dir, opts, io)));

  program
    .command('run')
    .description('train a model (default), or --evaluate, --predict, --benchmark; synthetic data when no --data')
    .argument('<file>', 'a model spec (.wnd, .yaml)')
    .option('--data <input>', 'training data: shards (wndc preprocess --out), or raw files encoded on the fly')
    .option('--valid <input>', 'validation data (default: <data>/valid)')
    .option('--model-dir <dir>', 'checkpoints and metrics.jsonl (default: runs/<model>)')
    .option('--evaluate', 'evaluate the latest checkpoint on the validation data')
    .option('--predict <file>', 'write a score per validation row (CSV) from the latest checkpoint')
    .option('--benchmark', 'print training throughput (examples/s, median after warm-up) and exit')
    .option('--benchmark-steps <n>', 'measured steps of --benchmark', '50')
    .option('--benchmark-warmup-steps <n>', 'warm-up steps of --benchmark', '5')
    .option('--amp [mode]', 'mixed precision: bf16 (default) or fp16 (CUDA engine)')
    .option('--engine <engine>', 'tfjs (CPU: wasm, else pure JS), tfjs-wasm, tfjs-cpu, tfjs-node, or cuda (NVIDIA GPUs)', 'tfjs')
    .option('--no-tf32', 'CUDA engine: strict fp32 matrix products (no TF32 tensor cores)')
    .option('--benchmark-source <source>', 'CUDA --benchmark: device (data preloaded on the GPU, default) or disk (streamed from shards)')
    .option('--profile', 'CUDA --benchmark: also print the mean time of each phase of a step')
    .option('--epochs <n>', "passes over the data (default: the spec's)")
    .option('--global-batch-size <n>', "training batch size (default: the spec's)")
    .option('--eval-batch-size <n>', 'evaluation batch size')
    .option('--linear-learning-rate <lr>', "the wide part's learning rate")
    .option('--deep-learning-rate <lr>', "the deep part's learning rate")
    .option('--seed <n>', 'initialisation, shuffling and dropout seed')
    .option('--synthetic-rows <n>', 'rows of synthetic data when no --data is given', '100000')
    .option('--keep-checkpoints <n>', 'checkpoints kept in the model dir', '3')
    .option('--workers <n>', 'data-parallel on the CPU: start n processes under mpirun (Open MPI) and train one model')
    .option('--gpus <n>', 'data-parallel on GPUs: one process per GPU (needs NCCL)')
    .option('--hvd', 'this process is one rank of an MPI job (mpirun -np N wndc run SPEC --hvd)')
    .option('--per-rank-batch-size <n>', "weak scaling: each rank's rows per step (the global batch is n times the ranks)")
    .option('--rank-timeout <s>', 'seconds a rank may be silent or keep the others waiting before the job is stopped', '300')
    .action(async (file: string, opts: RunFlags) => setExit(await (await import('./run.js')).runCommand(file, opts, io, argv)));

  program
    .command('report')
    .description('one self-contained HTML page: learning curves, the last evaluation, the run settings')
    .argument('<model_dir>', 'a model folder written by wndc run (metrics.jsonl, run.json)')
    .option('-o, --output <file>', 'write here (default: <model_dir>/report.html)')
    .action(async (dir: string, opts: ReportOptions) => setExit(await (await import('./report.js')).reportCommand(dir, opts, io)));

  return program;
}

/**
 * The reference recipe's flag spellings (`--model_dir`, `--global_batch_size`, `--num_epochs`, ...)
 * map onto wndc's, so its users can switch without relearning: underscores become dashes, and a few
 * names differ.
 */
const RECIPE_FLAGS: Readonly<Record<string, string>> = {
  '--num-epochs': '--epochs',
  '--train-data-pattern': '--data',
  '--eval-data-pattern': '--valid',
};

export function normaliseFlags(argv: readonly string[]): string[] {
  return argv.map((arg) => {
    if (!arg.startsWith('--')) return arg;
    const eq = arg.indexOf('=');
    const name = (eq < 0 ? arg : arg.slice(0, eq)).replace(/_/g, '-');
    const mapped = RECIPE_FLAGS[name] ?? name;
    return eq < 0 ? mapped : `${mapped}${arg.slice(eq)}`;
  });
}

/** Runs the CLI on `argv` (without node and script); returns the exit code. Never throws for user errors. */
export async function runCli(argv: string[], io: CliIO): Promise<number> {
  let exit: number = EXIT.ok;
  const normalised = normaliseFlags(argv);
  const program = buildProgram(
    io,
    (code) => {
      exit = code;
    },
    normalised,
  );
  try {
    await program.parseAsync(normalised, { from: 'user' });
    if (argv.length === 0) {
      io.stderr(program.helpInformation());
      return EXIT.usage;
    }
    return exit;
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end through here too, successfully.
      return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (e instanceof UsageError) {
      io.stderr(`wndc: ${e.message}\n`);
      return e.exitCode;
    }
    const err = e as NodeJS.ErrnoException;
    if (typeof err.code === 'string' && typeof err.syscall === 'string') {
      io.stderr(`wndc: ${err.syscall} failed: ${err.message}\n`);
      return EXIT.failure;
    }
    if (err.code === CUDA_ERROR_CODE) {
      // A failure the GPU reported (out of memory, a bad id in the data, a CUDA error): the message says what and where.
      io.stderr(`wndc: the CUDA engine failed: ${err.message}\n`);
      return EXIT.failure;
    }
    io.stderr(`wndc: internal error (please report it): ${err.stack ?? String(e)}\n`);
    return EXIT.failure;
  }
}

export function processIO(): CliIO {
  return {
    stdout: (s) => process.stdout.write(s),
    stderr: (s) => process.stderr.write(s),
    cwd: process.cwd(),
    color: Boolean(process.stderr.isTTY) && !process.env.CI && process.env.NO_COLOR === undefined,
    interactive: Boolean(process.stderr.isTTY) && !process.env.CI,
  };
}
