// The launcher's ranks never outlive it (docs/distributed.md, "Failures"): SIGTERM or Ctrl-C of
// `wndc run --workers 2` stops both ranks (they are detached, so the signal reaches the launcher
// alone) and exits 128 + the signal's number with one line; a rank whose launcher died (SIGKILL)
// sees its control connection close and stops itself. Two CPU ranks under Open MPI (the
// environment rendezvous needs GPUs); skipped, saying why, where mpirun or the MPI addon is
// missing. The last test, ControlClient alone, runs everywhere.

import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ControlClient, RankMonitor } from '../runtime/distributed/control.js';
import { mpiAddonPath } from '../runtime/distributed/mpi.js';
import { REPO } from './support/paths.js';

const mpirun = spawnSync('mpirun', ['--version'], { encoding: 'utf8' }).status === 0;
const skip = !mpirun ? 'mpirun (Open MPI) is not installed: apt-get install openmpi-bin' : !existsSync(mpiAddonPath()) ? 'the MPI addon is not built: npm run build:mpi' : false;

const CACHE = mkdtempSync(join(tmpdir(), 'wndc-signals-cache-'));
const SPEC = 'examples/quickstart/quickstart.wnd';
// Far more epochs than a test waits for: the job is always stopped, never finishes.
const TRAIN = ['--synthetic_rows', '4000', '--global_batch_size', '256', '--engine', 'tfjs-wasm', '--epochs', '1000'];
/** Rank 0's first line once every rank has joined the world (cli/run.ts). */
const STARTED = / x 2 ranks \(mpi\)/;

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

interface Started {
  child: ChildProcess;
  exit: Promise<Exit>;
  stderr(): string;
  /** Resolves once stderr matches `pattern`; rejects if the process ends first or after `ms`. */
  waitFor(pattern: RegExp, ms?: number): Promise<void>;
}

function start(command: string, args: string[], env: NodeJS.ProcessEnv): Started {
  const child = spawn(command, args, { cwd: REPO, env: { ...process.env, WNDC_CACHE_DIR: CACHE, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  const listeners = new Set<() => void>();
  child.stdout!.resume();
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr += chunk.toString('utf8');
    for (const listener of listeners) listener();
  });
  const exit = new Promise<Exit>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  const waitFor = (pattern: RegExp, ms = 60_000): Promise<void> =>
    new Promise((resolve, reject) => {
      const done = (error?: Error): void => {
        listeners.delete(check);
        clearTimeout(timer);
        if (error === undefined) resolve();
        else reject(error);
      };
      const check = (): void => {
        if (pattern.test(stderr)) done();
      };
      const timer = setTimeout(() => done(new Error(`no ${pattern} within ${ms / 1000} s; stderr:\n${stderr}`)), ms);
      listeners.add(check);
      void exit.then(() => done(pattern.test(stderr) ? undefined : new Error(`exited before ${pattern}; stderr:\n${stderr}`)));
      check();
    });
  return { child, exit, stderr: () => stderr, waitFor };
}

/** `wndc ARGS` from the sources, as a separate process (it is the one the test signals). */
function wndc(args: string[], env: NodeJS.ProcessEnv = {}): Started {
  return start(process.execPath, ['--import', 'tsx', 'cli/wndc.ts', ...args], env);
}

/** Every process below `root` now (mpirun, the ranks), from `ps`. */
function descendants(root: number): number[] {
  const ps = spawnSync('ps', ['-A', '-o', 'pid=,ppid='], { encoding: 'utf8' });
  const children = new Map<number, number[]>();
  for (const line of ps.stdout.trim().split('\n')) {
    const [pid, ppid] = line.trim().split(/\s+/).map(Number) as [number, number];
    children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  }
  const out: number[] = [];
  for (let queue = [root]; queue.length > 0; ) {
    const next = children.get(queue.shift()!) ?? [];
    out.push(...next);
    queue.push(...next);
  }
  return out;
}

/** A process that exists and has not ended (a zombie waiting to be reaped has ended). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw e;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return !existsSync('/proc/self'); // gone between the two looks (or no /proc: kill said alive)
  }
}

/** The pids of `pids` still alive after up to `ms`. */
async function survivors(pids: number[], ms: number): Promise<number[]> {
  const until = Date.now() + ms;
  for (;;) {
    const left = pids.filter(alive);
    if (left.length === 0 || Date.now() > until) return left;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Ends what a failed test left running (only the processes this test started). */
function cleanUp(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

function tmpFiles(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((n) => n.endsWith('.tmp')) : [];
}

/** How many of `pids` are Node.js processes (the ranks; mpirun is the other). */
const rankCount = (pids: number[]): number => pids.filter((pid) => spawnSync('ps', ['-o', 'comm=', '-p', String(pid)], { encoding: 'utf8' }).stdout.trim() === 'node').length;

for (const [signal, code] of [['SIGTERM', 143], ['SIGINT', 130]] as const) {
  test(`${signal} to the launcher stops both ranks, exits ${code} with one line, leaves nothing in model_dir`, { skip, timeout: 90_000 }, async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'wndc-signals-')), 'model');
    const launcher = wndc(['run', SPEC, '--model_dir', dir, '--workers', '2', '--rank-timeout', '60', ...TRAIN]);
    let tree: number[] = [];
    try {
      await launcher.waitFor(STARTED);
      tree = descendants(launcher.child.pid!);
      assert.equal(rankCount(tree), 2, `the ranks among the launcher's descendants ${tree.join(', ')}`);
      const sent = performance.now();
      launcher.child.kill(signal); // the launcher alone, as the terminal's Ctrl-C or `timeout` would
      const exit = await launcher.exit;
      const seconds = (performance.now() - sent) / 1000;
      assert.deepEqual(exit, { code, signal: null }, launcher.stderr());
      assert.match(launcher.stderr(), new RegExp(`\\nwndc: interrupted \\(${signal}\\); stopped the 2 ranks\\n$`));
      assert.doesNotMatch(launcher.stderr(), /the job (was stopped|failed)/);
      assert.ok(seconds < 10, `the launcher took ${seconds} s to stop`);
      assert.deepEqual(await survivors(tree, 5000), [], 'processes the launcher started are still running');
      assert.deepEqual(tmpFiles(dir), []);
    } finally {
      cleanUp([launcher.child.pid!, ...tree]);
    }
  });
}

test('the launcher killed (SIGKILL) while a rank hangs: the ranks do not outlive it', { skip, timeout: 90_000 }, async () => {
  // Rank 1 spins at step 3 (its event loop never turns), rank 0 then waits in a collective whose
  // own timeout is 2 x 300 + 10 s: only the lost control connection can end this job in time.
  const dir = join(mkdtempSync(join(tmpdir(), 'wndc-signals-kill-')), 'model');
  const launcher = wndc(['run', SPEC, '--model_dir', dir, '--workers', '2', '--rank-timeout', '300', ...TRAIN], { WNDC_FAULT: '1:3:hang' });
  let tree: number[] = [];
  try {
    await launcher.waitFor(STARTED);
    tree = descendants(launcher.child.pid!);
    assert.equal(rankCount(tree), 2, `the ranks among the launcher's descendants ${tree.join(', ')}`);
    await new Promise((resolve) => setTimeout(resolve, 1000)); // rank 1 reaches step 3
    launcher.child.kill('SIGKILL');
    assert.deepEqual(await launcher.exit, { code: null, signal: 'SIGKILL' });
    assert.deepEqual(await survivors(tree, 10_000), [], 'ranks outlived their launcher');
  } finally {
    cleanUp(tree);
  }
});

test('a rank whose control connection closes before it is done stops itself with one line', { skip, timeout: 90_000 }, async () => {
  // This test is the launcher: it listens as wndc's does, starts the ranks under mpirun itself (so
  // their stderr stays readable), and closes the connections as the kernel does when a launcher dies.
  const monitor = new RankMonitor(2, 300_000, () => undefined);
  const control = await monitor.listen();
  const dir = join(mkdtempSync(join(tmpdir(), 'wndc-signals-lost-')), 'model');
  const mpiArgs = ['-np', '2', '--oversubscribe', '--bind-to', 'none', ...(process.getuid?.() === 0 ? ['--allow-run-as-root'] : []), '-x', 'WNDC_CONTROL', '-x', 'WNDC_CACHE_DIR'];
  const job = start('mpirun', [...mpiArgs, process.execPath, '--import', 'tsx', 'cli/wndc.ts', 'run', SPEC, '--model_dir', dir, '--hvd', '--rank-timeout', '300', ...TRAIN], { WNDC_CONTROL: control });
  let pids: number[] = [];
  try {
    await job.waitFor(STARTED);
    pids = [...monitor.ranks.values()].map((r) => r.pid);
    assert.equal(pids.length, 2);
    const closed = performance.now();
    monitor.close();
    const exit = await Promise.race([job.exit, new Promise<null>((resolve) => setTimeout(() => resolve(null), 15_000))]);
    const seconds = (performance.now() - closed) / 1000;
    assert.ok(exit !== null, `mpirun still runs 15 s after the control connections closed; stderr:\n${job.stderr()}`);
    assert.notEqual(exit.code, 0, job.stderr());
    // The first rank to notice stops; mpirun may end the other before it says so itself.
    assert.match(job.stderr(), /^wndc: rank [01]: the launcher \(control connection\) is gone; stopping$/m);
    assert.deepEqual(await survivors(pids, 5000), []);
    assert.ok(seconds < 15, `took ${seconds} s`);
    assert.deepEqual(tmpFiles(dir), []);
  } finally {
    monitor.close();
    cleanUp([job.child.pid!, ...pids]);
  }
});

test('ControlClient.onLost: the connection closing is "lost" before finish(), the normal end after it', async () => {
  const monitor = new RankMonitor(2, 300_000, () => undefined);
  const address = await monitor.listen();
  const hello = (rank: number) => ({ rank, size: 2, pid: process.pid, host: 'test' });
  const [finished, running] = await Promise.all([ControlClient.connect(address, hello(0)), ControlClient.connect(address, hello(1))]);
  try {
    const lost: string[] = [];
    finished.onLost(() => lost.push('rank 0'));
    running.onLost(() => lost.push('rank 1'));
    await finished.finish({ t: 'done', rank: 0 });
    await new Promise((resolve) => setTimeout(resolve, 50)); // the launcher closes its end of rank 0's connection
    assert.equal(lost.join(), '');
    monitor.close(); // as when the launcher dies
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.deepEqual(lost, ['rank 1']);
    // Registered after the connection is gone: still told (once).
    running.onLost(() => lost.push('late'));
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(lost, ['rank 1', 'late']);
  } finally {
    monitor.close();
  }
});
