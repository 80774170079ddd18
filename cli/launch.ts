// Starting and joining data-parallel runs (docs/distributed.md):
//   - `wndc run SPEC --workers N` (CPU) re-executes itself under `mpirun -np N ... --hvd`;
//   - `wndc run SPEC --gpus N` starts N ranks under mpirun when it is installed, else N copies of
//     itself wired by the environment rendezvous (WNDC_RANK, WNDC_WORLD_SIZE, WNDC_MASTER_ADDR,
//     WNDC_MASTER_PORT, WNDC_LOCAL_RANK), whose host-side collectives then run over NCCL (nccl.ts);
//   - a rank (`--hvd` under mpirun, or WNDC_RANK set) joins the world here: `withWorld`.
// The launcher watches its ranks through the control port (runtime/distributed/control.ts): a
// rank that dies or hangs ends the job within --rank-timeout, with a message naming it; the other
// ranks are killed and no temporary file is left in model_dir. Ctrl-C, SIGTERM or SIGHUP of the
// launcher stops the ranks the same way (they do not get the signal: they are detached); a rank
// whose launcher has died (SIGKILL) notices its control connection close and stops itself.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { constants as osConstants, hostname } from 'node:os';
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
  let interrupted = false;
  const children: ChildProcess[] = [];
  const monitor = new RankMonitor(request.count, timeoutMs, (message) => {
    verdict = message;
    if (!interrupted) stopAll(children, monitor);
  });
  const control = await monitor.listen();
  const self = selfCommand();
  const args = childArguments(argv);
  // One process per GPU runs the CUDA engine unless told otherwise.
  if (request.kind === 'gpus' && !args.some((a) => a === '--engine' || a.startsWith('--engine='))) args.push('--engine', 'cuda');
  const env: NodeJS.ProcessEnv = { ...process.env, WNDC_CONTROL: control };
  delete env.WNDC_RANK;
  let signals: StopSignals | null = null;
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
    // Trapped in the same tick as the spawns: from now on a signal stops the ranks first.
    signals = trapStopSignals(
      () => {
        interrupted = true;
        stopAll(children, monitor);
      },
      (signal) => {
        killAll(children, monitor);
        cleanModelDir(monitor.modelDir);
        io.stderr(`wndc: interrupted (${signal}) again; killed the ${request.count} ranks\n`);
        process.exit(signalExitCode(signal));
      },
    );
    const exited = Promise.all(
      children.map((child) =>
        relay(child, io, () => interrupted, (code) => {
          // A rank gone while the others run: the monitor names it; stop the rest too.
          if (code !== 0 && verdict === null && !interrupted && request.kind === 'gpus') stopAll(children, monitor);
        }),
      ),
    );
    const outcome = await Promise.race([exited.then((exits) => ({ exits })), signals.signalled.then((signal) => ({ signal }))]);
    if ('signal' in outcome) {
      await settle(exited, children);
      io.stderr(`wndc: interrupted (${outcome.signal}); stopped the ${request.count} ranks\n`);
      return signalExitCode(outcome.signal);
    }
    await new Promise((resolve) => setTimeout(resolve, 50)); // let the last control messages in
    if (verdict !== null) {
      io.stderr(`wndc: ${verdict}; the job was stopped\n`);
      return EXIT.failure;
    }
    const failed = outcome.exits.find((code) => code !== 0);
    if (failed !== undefined || !monitor.allDone()) {
      io.stderr(`wndc: the job failed (${request.kind === 'workers' ? `mpirun exited with ${failed ?? 0}` : `a rank exited with ${failed ?? 0}`})\n`);
      return EXIT.failure;
    }
    return EXIT.ok;
  } finally {
    signals?.release();
    monitor.close();
    cleanModelDir(monitor.modelDir);
  }
}

/**
 * Relays a child's output (until `quiet`: once the launcher is stopping the job, mpirun's reports
 * of the ranks it killed would only bury the one line saying why); resolves with its exit code.
 */
function relay(child: ChildProcess, io: CliIO, quiet: () => boolean, onExit: (code: number) => void): Promise<number> {
  return new Promise<number>((resolve) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      if (!quiet()) io.stdout(chunk.toString('utf8'));
    });
    child.stderr!.on('data', (chunk: Buffer) => {
      if (!quiet()) io.stderr(chunk.toString('utf8'));
    });
    child.on('error', (e) => {
      io.stderr(`wndc: cannot start ${child.spawnfile}: ${e.message}\n`);
      resolve(EXIT.failure);
    });
    child.on('close', (code, signal) => {
      const exit = code ?? (signal !== null ? 128 : 1);
      onExit(exit);
      resolve(exit);
    });
  });
}

const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
type StopSignal = (typeof STOP_SIGNALS)[number];

interface StopSignals {
  /** Resolves with the first signal. */
  signalled: Promise<StopSignal>;
  /** Removes the handlers (the default — ending this process — applies again). */
  release(): void;
}

/**
 * Ctrl-C, SIGTERM, SIGHUP for the launcher. The ranks are detached (their own process groups), so
 * neither the terminal's Ctrl-C nor `timeout`'s SIGTERM reaches them, and Node's default — exit at
 * once — would leave them running, holding their GPUs. `first` runs on the first signal, `again`
 * on any later one (a second Ctrl-C while the ranks are being stopped).
 */
function trapStopSignals(first: (signal: StopSignal) => void, again: (signal: StopSignal) => void): StopSignals {
  let received = false;
  let resolve!: (signal: StopSignal) => void;
  const signalled = new Promise<StopSignal>((r) => (resolve = r));
  const handler = (signal: NodeJS.Signals): void => {
    const stop = signal as StopSignal;
    if (received) {
      again(stop);
      return;
    }
    received = true;
    first(stop);
    resolve(stop);
  };
  for (const signal of STOP_SIGNALS) process.on(signal, handler);
  return { signalled, release: () => STOP_SIGNALS.forEach((signal) => process.off(signal, handler)) };
}

/** The shell's convention for a command ended by a signal: 128 + its number (SIGINT 130, SIGTERM 143, SIGHUP 129). */
function signalExitCode(signal: StopSignal): number {
  return 128 + osConstants.signals[signal];
}

/** stopAll's SIGKILL follows its SIGTERM after this long. */
const KILL_AFTER_MS = 3000;
/** How long a stopping launcher waits for its children after the SIGKILL before it gives up on them. */
const EXIT_AFTER_KILL_MS = 3000;

/**
 * Waits for the stopped children to exit, bounded: a child that outlives its SIGKILL (stuck in the
 * kernel, or a grandchild holding its pipes) is let go, so that the launcher itself can end.
 */
async function settle(exited: Promise<unknown>, children: ChildProcess[]): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<void>((resolve) => (timer = setTimeout(resolve, KILL_AFTER_MS + EXIT_AFTER_KILL_MS)));
  await Promise.race([exited, limit]);
  clearTimeout(timer);
  for (const child of children) {
    child.stdout?.destroy();
    child.stderr?.destroy();
    child.unref();
  }
}

/** Kills every rank this launcher knows of, then the launcher processes (mpirun): SIGTERM, SIGKILL after 3 s. */
function stopAll(children: ChildProcess[], monitor: RankMonitor): void {
  killKnownRanks(monitor);
  for (const child of children) {
    if (!running(child)) continue;
    signalGroup(child, 'SIGTERM');
    setTimeout(() => running(child) && signalGroup(child, 'SIGKILL'), KILL_AFTER_MS).unref();
  }
}

/** SIGKILL for every rank and child at once (a second Ctrl-C). */
function killAll(children: ChildProcess[], monitor: RankMonitor): void {
  killKnownRanks(monitor);
  for (const child of children) if (running(child)) signalGroup(child, 'SIGKILL');
}

/** SIGKILL for the ranks on this host that have told the monitor their pid. */
function killKnownRanks(monitor: RankMonitor): void {
  for (const state of monitor.ranks.values()) {
    try {
      if (state.host === hostname()) process.kill(state.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

function running(child: ChildProcess): boolean {
  return child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}

/** `signal` for the child's process group (it was started detached, as its leader), else the child alone. */
function signalGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // gone
    }
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
    const rank = environment.rank;
    control.onLost(() => launcherGone(rank, io));
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
 * The launcher died (SIGKILL, a crash) while this rank ran: nobody is left to stop the job or read
 * its results, so the rank ends now rather than train on as an orphan holding its GPU; under
 * mpirun, mpirun then ends the other ranks. It ends by SIGTERM to itself, not process.exit: exiting
 * joins libuv's thread pool, where a collective may wait (up to its timeout, or for ever) for a
 * peer that is gone or hangs. Atomic writes are synchronous, so none is left half-done.
 */
function launcherGone(rank: number, io: CliIO): void {
  io.stderr(`wndc: rank ${rank}: the launcher (control connection) is gone; stopping\n`);
  process.kill(process.pid, 'SIGTERM');
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
