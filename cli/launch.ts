// Starting and joining data-parallel runs (docs/distributed.md):
//   - `wndc run SPEC --workers N` (CPU) re-executes itself under `mpirun -np N ... --hvd`;
//   - `wndc run SPEC --gpus N` starts N ranks under mpirun when it is installed, else N copies of
//     itself wired by the environment rendezvous (WNDC_RANK, WNDC_WORLD_SIZE, WNDC_MASTER_ADDR,
//     WNDC_MASTER_PORT, WNDC_LOCAL_RANK), whose host-side collectives then run over NCCL (nccl.ts);
//   - a rank (`--hvd` under mpirun, or WNDC_RANK set) joins the world here: `withWorld`.
// The launcher watches its ranks through the control port (runtime/distributed/control.ts): a
// rank that dies or hangs ends the job within --rank-timeout, with a message naming it; the other
// ranks are killed and no temporary file is left in model_dir.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CollectiveError, LocalCollective, type Collective } from '../runtime/distributed/collective.js';
import { ControlClient, RankMonitor } from '../runtime/distributed/control.js';
import { MpiCollective, MpiUnavailableError, type OperationEvent } from '../runtime/distributed/mpi.js';
import { NcclCollective, NcclUnavailableError } from '../runtime/distributed/nccl.js';
import { launchEnvironment, LaunchEnvironmentError, type LaunchEnvironment } from '../runtime/distributed/world.js';
import { CUDA_ERROR_CODE } from '../runtime/engine/cuda/addon-api.js';
import { UnsupportedDistributedError } from '../runtime/engine/engine.js';
import { EXIT, UsageError, wholeNumberFlag, type CliIO } from './io.js';

export interface LaunchFlags {
  workers?: string;
  gpus?: string;
  hvd?: boolean;
  rankTimeout?: string;
  engine?: string;
}

/** Seconds a rank may be silent, or keep the others waiting, before the job is stopped. */
export function rankTimeoutSeconds(flags: LaunchFlags): number {
  return wholeNumberFlag('--rank-timeout', flags.rankTimeout, 300, 1);
}

/** The processes to start: N for `--workers N` / `--gpus N` (N >= 2), else null (this process trains). */
export function launchRequest(flags: LaunchFlags): { kind: 'workers' | 'gpus'; count: number } | null {
  if (flags.workers !== undefined && flags.gpus !== undefined) throw new UsageError('choose one of --workers (CPU processes) and --gpus (one process per GPU)');
  if (flags.hvd && (flags.workers !== undefined || flags.gpus !== undefined)) throw new UsageError('--hvd marks a process mpirun started: it does not go with --workers or --gpus');
  const kind = flags.workers !== undefined ? 'workers' : flags.gpus !== undefined ? 'gpus' : null;
  if (kind === null) return null;
  const count = wholeNumberFlag(`--${kind}`, kind === 'workers' ? flags.workers : flags.gpus, 1, 1);
  return count === 1 ? null : { kind, count };
}

/** `argv` without the launcher's own flags (`--workers N`, `--gpus N`, either with `=`). */
export function childArguments(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--workers' || arg === '--gpus') i++;
    else if (!arg.startsWith('--workers=') && !arg.startsWith('--gpus=')) out.push(arg);
  }
  return out;
}

/** How to start this CLI again: from the sources under tsx, or the built dist/. */
function selfCommand(): string[] {
  const here = import.meta.url;
  if (here.endsWith('.ts')) return [process.execPath, '--import', 'tsx', fileURLToPath(new URL('./wndc.ts', here))];
  return [process.execPath, fileURLToPath(new URL('./wndc.js', here))];
}

export function findMpirun(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const candidate = env.WNDC_MPIRUN ?? 'mpirun';
  const probe = spawnSync(candidate, ['--version'], { encoding: 'utf8' });
  return probe.status === 0 ? candidate : undefined;
}

/** mpirun's flags: every rank on this host, as many as asked whatever the cores, unbound; root allowed when we are root. */
function mpirunArguments(count: number, forward: string[]): string[] {
  const args = ['-np', String(count), '--oversubscribe', '--bind-to', 'none'];
  if (process.getuid?.() === 0) args.push('--allow-run-as-root');
  for (const name of forward) args.push('-x', name);
  return args;
}

/** The parent: starts the ranks, relays their output, watches them; returns the exit code. */
export async function launchWorkers(argv: readonly string[], request: { kind: 'workers' | 'gpus'; count: number }, flags: LaunchFlags, io: CliIO): Promise<number> {
  const timeoutMs = rankTimeoutSeconds(flags) * 1000;
  let verdict: string | null = null;
  const children: ChildProcess[] = [];
  const monitor = new RankMonitor(request.count, timeoutMs, (message) => {
    verdict = message;
    stopAll(children, monitor);
  });
  const control = await monitor.listen();
  const self = selfCommand();
  const args = childArguments(argv);
  // One process per GPU runs the CUDA engine unless told otherwise.
  if (request.kind === 'gpus' && !args.some((a) => a === '--engine' || a.startsWith('--engine='))) args.push('--engine', 'cuda');
  const env: NodeJS.ProcessEnv = { ...process.env, WNDC_CONTROL: control };
  delete env.WNDC_RANK;
  try {
    // GPU ranks run under mpirun too when it is there: MPI carries the host-side collectives
    // (the NCCL job id, metrics, the model broadcast), NCCL the gradients.
    const mpirun = findMpirun();
    if (request.kind === 'workers' || mpirun !== undefined) {
      if (mpirun === undefined) {
        throw new UsageError(`--workers ${request.count} starts ${request.count} processes under Open MPI's mpirun, which is not installed here; install it (Debian/Ubuntu: apt-get install openmpi-bin) or start the ranks yourself: mpirun -np ${request.count} wndc run ... --hvd`, EXIT.failure);
      }
      // Forwarded to every rank, also on other hosts: wndc's own settings, and where CUDA, cuBLASLt and NCCL live and how NCCL behaves.
      const forward = Object.keys(env).filter((name) => /^(WNDC_|NCCL_|CUDA_)/.test(name) || name === 'LD_LIBRARY_PATH' || name === 'PATH');
      children.push(spawn(mpirun, [...mpirunArguments(request.count, forward), ...self, ...args, '--hvd'], { cwd: io.cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true }));
    } else {
      const port = await freePort();
      for (let rank = 0; rank < request.count; rank++) {
        const rankEnv = { ...env, WNDC_RANK: String(rank), WNDC_WORLD_SIZE: String(request.count), WNDC_LOCAL_RANK: String(rank), WNDC_MASTER_ADDR: '127.0.0.1', WNDC_MASTER_PORT: String(port) };
        children.push(spawn(self[0]!, [...self.slice(1), ...args], { cwd: io.cwd, env: rankEnv, stdio: ['ignore', 'pipe', 'pipe'], detached: true }));
      }
    }
    const exits = await Promise.all(
      children.map(
        (child) =>
          new Promise<number>((resolve) => {
            child.stdout!.on('data', (chunk: Buffer) => io.stdout(chunk.toString('utf8')));
            child.stderr!.on('data', (chunk: Buffer) => io.stderr(chunk.toString('utf8')));
            child.on('error', (e) => {
              io.stderr(`wndc: cannot start ${child.spawnfile}: ${e.message}\n`);
              resolve(EXIT.failure);
            });
            child.on('close', (code, signal) => {
              // A rank gone while the others run: the monitor names it; stop the rest too.
              if ((code ?? 1) !== 0 && verdict === null && request.kind === 'gpus') stopAll(children, monitor);
              resolve(code ?? (signal !== null ? 128 : 1));
            });
          }),
      ),
    );
    await new Promise((resolve) => setTimeout(resolve, 50)); // let the last control messages in
    if (verdict !== null) {
      io.stderr(`wndc: ${verdict}; the job was stopped\n`);
      return EXIT.failure;
    }
    const failed = exits.find((code) => code !== 0);
    if (failed !== undefined || !monitor.allDone()) {
      io.stderr(`wndc: the job failed (${request.kind === 'workers' ? `mpirun exited with ${failed ?? 0}` : `a rank exited with ${failed ?? 0}`})\n`);
      return EXIT.failure;
    }
    return EXIT.ok;
  } finally {
    monitor.close();
    cleanModelDir(monitor.modelDir);
  }
}

/** Kills every rank this launcher knows of, then the launcher processes (mpirun). */
function stopAll(children: ChildProcess[], monitor: RankMonitor): void {
  for (const state of monitor.ranks.values()) {
    try {
      if (state.host === hostname()) process.kill(state.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const child of children) {
    if (child.pid === undefined || child.exitCode !== null) continue;
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      child.kill('SIGTERM');
    }
    setTimeout(() => {
      try {
        if (child.exitCode === null) process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone
      }
    }, 3000).unref();
  }
}

/** Removes the temporary files of atomic writes (compiler/fs.ts) that a killed rank 0 left behind. */
function cleanModelDir(dir: string | undefined): void {
  if (dir === undefined) return;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) if (name.startsWith('.') && name.endsWith('.tmp')) rmSync(join(dir, name), { force: true });
}

/** A TCP port free on this host now (for the launcher's control port and tests' rendezvous). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// The rank's side.

export interface World {
  collective: Collective;
  environment: LaunchEnvironment;
  /** Reports to the launcher (absent when this rank has none: mpirun run by hand). */
  control: ControlClient | null;
  /** Output for this rank: rank 0's as given; the others print only their errors, prefixed with their rank. */
  io: CliIO;
}

/**
 * Joins the world this process belongs to, runs `body`, and leaves it: on success every rank
 * finalises; on failure this rank tells the launcher why and brings the job down (MPI_Abort), so
 * the other ranks do not wait for the timeout.
 */
export async function withWorld(flags: LaunchFlags, modelDir: (size: number) => string, io: CliIO, body: (world: World) => Promise<number>): Promise<number> {
  let environment: LaunchEnvironment;
  try {
    environment = launchEnvironment(flags.hvd === true);
  } catch (e) {
    if (e instanceof LaunchEnvironmentError) throw new UsageError(e.message);
    throw e;
  }
  if (environment.mode === 'single') return body({ collective: new LocalCollective(), environment, control: null, io });
  const timeout = rankTimeoutSeconds(flags);
  const controlAddress = process.env.WNDC_CONTROL;
  const rankIO = environment.rank === 0 ? io : quietIO(io, environment.rank);
  let control: ControlClient | null = null;
  if (controlAddress !== undefined && controlAddress !== '') {
    control = await ControlClient.connect(controlAddress, { rank: environment.rank, size: environment.size, pid: process.pid, host: hostname(), ...(environment.rank === 0 ? { modelDir: modelDir(environment.size) } : {}) });
  }
  let collective: Collective;
  try {
    collective = await openCollective(environment, flags, timeout, control);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    rankIO.stderr(`wndc: ${message}\n`);
    await control?.finish({ t: 'fail', rank: environment.rank, message });
    return EXIT.failure;
  }
  let code: number;
  let failure: string | null = null;
  try {
    code = await body({ collective, environment, control, io: rankIO });
    if (code !== EXIT.ok) failure = `it exited with ${code}`;
  } catch (e) {
    code = EXIT.failure;
    failure = e instanceof Error ? e.message : String(e);
    rankIO.stderr(`wndc: ${e instanceof UsageError ? e.message : `rank ${environment.rank} failed: ${describeFailure(e)}`}\n`);
  }
  if (failure === null) {
    await control?.finish({ t: 'done', rank: environment.rank });
    await collective.close();
    return code;
  }
  await control?.finish({ t: 'fail', rank: environment.rank, message: failure.split('\n')[0]! });
  collective.abort(code);
  return code;
}

/**
 * A rank's failure for its log: the message alone where it explains itself (a collective that
 * timed out or failed, a failure the GPU reported: another rank died, out of memory, bad data),
 * with the stack for anything else, an internal error.
 */
export function describeFailure(e: unknown): string {
  if (!(e instanceof Error)) return String(e);
  const explained = e instanceof CollectiveError || (e as NodeJS.ErrnoException).code === CUDA_ERROR_CODE;
  return explained ? e.message : (e.stack ?? e.message);
}

async function openCollective(environment: Exclude<LaunchEnvironment, { mode: 'single' }>, flags: LaunchFlags, timeout: number, control: ControlClient | null): Promise<Collective> {
  // With a launcher watching, it names the late rank first; alone, the collectives' own timeout does.
  const timeoutSeconds = control !== null ? 2 * timeout + 10 : timeout;
  const onOperation = control !== null ? { onOperation: (event: OperationEvent) => control.operation(event) } : {};
  if (environment.mode === 'env') {
    // The same default as cli/run.ts createEngine: no --engine is the CPU.
    if ((flags.engine ?? 'tfjs') !== 'cuda') {
      throw new UnsupportedDistributedError('ranks started through WNDC_RANK/WNDC_MASTER_ADDR need `--engine cuda` (their host-side collectives run over NCCL); CPU ranks all-reduce with MPI: start them with `mpirun -np N wndc run ... --hvd` or `--workers N`');
    }
    // NCCL for everything: the rendezvous carries rank 0's NCCL id, each rank works on GPU `localRank` (as its engine).
    try {
      return await NcclCollective.open({ rank: environment.rank, size: environment.size, localRank: environment.localRank, masterAddr: environment.masterAddr, masterPort: environment.masterPort, timeoutSeconds, ...onOperation });
    } catch (e) {
      if (e instanceof NcclUnavailableError) throw new UsageError(`--engine cuda cannot run here: ${e.message}`, EXIT.failure);
      throw e;
    }
  }
  try {
    const collective = MpiCollective.open({ timeoutSeconds, ...onOperation });
    if (collective.rank !== environment.rank || collective.size !== environment.size) {
      throw new LaunchEnvironmentError(`MPI says this is rank ${collective.rank} of ${collective.size}, the environment rank ${environment.rank} of ${environment.size}: is the MPI library the one mpirun belongs to?`);
    }
    return collective;
  } catch (e) {
    if (e instanceof MpiUnavailableError) throw new UsageError(e.message, EXIT.failure);
    throw e;
  }
}

/** A rank other than 0: no results, no progress; its errors, prefixed with the rank. */
function quietIO(io: CliIO, rank: number): CliIO {
  return {
    ...io,
    interactive: false,
    stdout: () => undefined,
    stderr: (text) => {
      for (const line of text.split('\n')) if (line.startsWith('wndc:')) io.stderr(`[rank ${rank}] ${line}\n`);
    },
  };
}
