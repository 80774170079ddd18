// The MPI collective: Open MPI through wndc's small addon (native-mpi/, build/wndc_mpi.node), which
// dlopens libmpi.so.40 at run time. Each operation runs on a worker thread and resolves a promise,
// one at a time (MPI_THREAD_SERIALIZED), each watched by a timeout: a rank that never joins an
// operation turns into a CollectiveError here instead of a job that waits forever.

import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { packageRoot } from '../engine/cuda/load-addon.js';
import { CollectiveError, type Collective } from './collective.js';

/** What build/wndc_mpi.node exports (native-mpi/src/mpi_addon.cpp). */
interface MpiAddon {
  load(path: string): { path: string; version: string };
  init(): { rank: number; size: number; host: string };
  allReduceSum(buffer: Float32Array | Float64Array): Promise<void>;
  broadcast(bytes: Uint8Array, root: number): Promise<void>;
  allGather(bytes: Uint8Array): Promise<{ data: Uint8Array; counts: Int32Array }>;
  barrier(): Promise<void>;
  abort(code: number): void;
  finalize(): void;
}

/** MPI cannot be used here; the message says what is missing and how to get it. */
export class MpiUnavailableError extends Error {
  override name = 'MpiUnavailableError';
}

/** One collective call, as the watchdog and the launcher's monitor see it. */
export interface OperationEvent {
  /** 1, 2, ...: the same number on every rank for the same call. */
  seq: number;
  op: string;
  phase: 'enter' | 'leave';
}

export interface MpiOptions {
  /** Seconds a collective may wait for the other ranks before this rank gives up (default 300). */
  timeoutSeconds?: number;
  /** The library to dlopen (default: WNDC_MPI_LIBRARY, else libmpi.so.40 from the loader's path). */
  library?: string;
  onOperation?: (event: OperationEvent) => void;
}

export function mpiAddonPath(): string {
  return join(packageRoot(), 'build', 'wndc_mpi.node');
}

function loadAddon(): MpiAddon {
  const path = mpiAddonPath();
  if (!existsSync(path)) throw new MpiUnavailableError(`the MPI addon is not built (${path}): run \`npm run build:mpi\` (needs a C++ compiler)`);
  try {
    return createRequire(import.meta.url)(path) as MpiAddon;
  } catch (e) {
    throw new MpiUnavailableError(`the MPI addon ${path} does not load: ${(e as Error).message}; rebuild it with \`npm run build:mpi\``);
  }
}

const LIBRARIES = ['libmpi.so.40', '/usr/lib/x86_64-linux-gnu/libmpi.so.40', '/usr/lib/aarch64-linux-gnu/libmpi.so.40', '/usr/lib64/openmpi/lib/libmpi.so.40', '/usr/local/lib/libmpi.so.40', '/opt/openmpi/lib/libmpi.so.40'];

export class MpiCollective implements Collective {
  readonly backend = 'mpi';
  private seq = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** A timed-out operation still runs on its thread: nothing may follow it but abort(). */
  private broken: CollectiveError | null = null;
  readonly timeoutSeconds: number;

  /** Loads Open MPI and joins the job's world (MPI_Init_thread): call once per process, under mpirun. */
  static open(options: MpiOptions = {}): MpiCollective {
    const addon = loadAddon();
    const candidates = options.library !== undefined ? [options.library] : process.env.WNDC_MPI_LIBRARY ? [process.env.WNDC_MPI_LIBRARY] : LIBRARIES;
    const failures: string[] = [];
    let library: { path: string; version: string } | undefined;
    for (const candidate of candidates) {
      try {
        library = addon.load(candidate);
        break;
      } catch (e) {
        failures.push((e as Error).message);
      }
    }
    if (library === undefined) {
      throw new MpiUnavailableError(`Open MPI's library is not found (${failures[0] ?? 'no candidates'}); install it (Debian: apt-get install openmpi-bin) or set WNDC_MPI_LIBRARY to libmpi.so.40`);
    }
    const world = addon.init();
    return new MpiCollective(addon, world.rank, world.size, world.host, library, options);
  }

  private constructor(
    private readonly addon: MpiAddon,
    readonly rank: number,
    readonly size: number,
    readonly host: string,
    readonly library: { path: string; version: string },
    private readonly options: MpiOptions,
  ) {
    this.timeoutSeconds = options.timeoutSeconds ?? 300;
  }

  allReduceSum<T extends Float32Array | Float64Array>(buffer: T): Promise<T> {
    return this.run(`all-reduce of ${buffer.length} ${buffer instanceof Float32Array ? 'float32' : 'float64'}`, () => this.addon.allReduceSum(buffer)).then(() => buffer);
  }

  broadcast<T extends ArrayBufferView>(buffer: T, root: number): Promise<T> {
    if (!Number.isInteger(root) || root < 0 || root >= this.size) throw new CollectiveError(`internal: broadcast from rank ${root} in a world of ${this.size}`);
    const bytes = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    return this.run(`broadcast of ${bytes.length} bytes from rank ${root}`, () => this.addon.broadcast(bytes, root)).then(() => buffer);
  }

  async allGather(bytes: Uint8Array): Promise<Uint8Array[]> {
    const { data, counts } = await this.run(`all-gather of ${bytes.length} bytes`, () => this.addon.allGather(bytes));
    const parts: Uint8Array[] = [];
    let at = 0;
    for (const count of counts) {
      parts.push(data.subarray(at, at + count));
      at += count;
    }
    return parts;
  }

  barrier(): Promise<void> {
    return this.run('barrier', () => this.addon.barrier());
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.queue.catch(() => undefined);
    this.closed = true;
    this.addon.finalize();
  }

  abort(code: number): void {
    this.addon.abort(code);
    process.exit(code); // not reached when MPI is up: MPI_Abort ends the process
  }

  /** Runs one operation after the previous one, under the timeout. */
  private run<R>(what: string, operation: () => Promise<R>): Promise<R> {
    if (this.closed) return Promise.reject(new CollectiveError(`internal: ${what} after the collective was closed`));
    if (this.broken !== null) return Promise.reject(this.broken);
    const seq = ++this.seq;
    const started = this.queue.then(() => {
      this.options.onOperation?.({ seq, op: what, phase: 'enter' });
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          this.broken = new CollectiveError(`rank ${this.rank}: collective #${seq} (${what}) waited ${this.timeoutSeconds} s for the other ranks; one of them has died or hangs`);
          reject(this.broken);
        }, this.timeoutSeconds * 1000);
      });
      return Promise.race([operation(), timeout]).finally(() => {
        clearTimeout(timer);
        this.options.onOperation?.({ seq, op: what, phase: 'leave' });
      });
    });
    this.queue = started.catch(() => undefined);
    return started;
  }
}
