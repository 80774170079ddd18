// The NCCL collective: the host-side collectives (metrics, the model's broadcast, the data barrier,
// the model's own NCCL job id) of GPU ranks that a scheduler started through the environment
// rendezvous (WNDC_RANK, WNDC_WORLD_SIZE, WNDC_MASTER_ADDR, WNDC_MASTER_PORT, WNDC_LOCAL_RANK), so
// that no MPI is needed. The rendezvous carries only NCCL's unique id, made by rank 0; every
// operation then runs over an NCCL communicator of its own inside the CUDA addon
// (native/src/host_collective.h), on GPU `localRank` — the GPU cli/run.ts gives the CUDA engine.
//
// Each operation waits at most `timeoutSeconds` for the other ranks (polling in the addon): a rank
// that has died or hangs turns into a CollectiveError naming the operation and this rank, and the
// communicator is aborted. The CUDA engine gives its training steps the same timeout
// (timeoutSeconds, read by CudaEngine.joinCollective): a rank dying inside a step's NCCL calls on
// the model's own communicator stops the others too.

import type { NativeAddon, NativeHostCollective } from '../engine/cuda/addon-api.js';
import { CudaUnavailableError, loadCudaAddon } from '../engine/cuda/load-addon.js';
import { CollectiveError, type Collective } from './collective.js';
import type { OperationEvent } from './mpi.js';
import { rendezvous } from './rendezvous.js';

export interface NcclOptions {
  rank: number;
  size: number;
  /** This rank's GPU on its host (WNDC_LOCAL_RANK). */
  localRank: number;
  /** Rank 0's address and port for the rendezvous. */
  masterAddr: string;
  masterPort: number;
  /** Seconds the rendezvous and each operation may wait for the other ranks (default 300). */
  timeoutSeconds?: number;
  onOperation?: (event: OperationEvent) => void;
  /** The CUDA addon (default: build/wndc_cuda.node). */
  addon?: NativeAddon;
}

/** This rank cannot take part: the CUDA addon, a GPU, cuBLASLt or NCCL is missing; the message says which. */
export class NcclUnavailableError extends Error {
  override name = 'NcclUnavailableError';
}

// Rendezvous payloads: rank 0 sends ID + NCCL's unique id; a rank that cannot take part sends
// FAILED + its reason (so every rank stops at once, not after the timeout); the others send nothing.
const ID = 0x49;
const FAILED = 0x45;

/** What this rank needs before the rendezvous: the addon, its GPU, cuBLASLt and NCCL (and, on rank 0, the job id). */
function prepare(o: NcclOptions): { addon: NativeAddon; id: Uint8Array | null } {
  let addon: NativeAddon;
  try {
    addon = o.addon ?? loadCudaAddon();
  } catch (e) {
    if (e instanceof CudaUnavailableError) throw new NcclUnavailableError(e.message);
    throw e;
  }
  let devices;
  try {
    devices = addon.devices();
  } catch (e) {
    throw new NcclUnavailableError(`no usable GPU: ${(e as Error).message}`);
  }
  if (addon.createHostCollective === undefined) throw new NcclUnavailableError('the CUDA addon was built before NCCL host collectives existed: rebuild it with `npm run build:cuda`');
  if (!devices.some((d) => d.index === o.localRank)) {
    throw new NcclUnavailableError(`no GPU ${o.localRank} for local rank ${o.localRank} (WNDC_LOCAL_RANK): the visible GPUs are ${devices.map((d) => `${d.index} (${d.name})`).join(', ')}`);
  }
  try {
    addon.loadLibraries({ nccl: true });
    return { addon, id: o.rank === 0 ? addon.ncclUniqueId() : null };
  } catch (e) {
    throw new NcclUnavailableError((e as Error).message.replace(/^(loadLibraries|ncclUniqueId): /, ''));
  }
}

function tagged(tag: number, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(body.length + 1);
  out[0] = tag;
  out.set(body, 1);
  return out;
}

export class NcclCollective implements Collective {
  readonly backend = 'nccl';
  private seq = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** After a failed or timed-out operation the communicator is aborted: nothing may follow but abort(). */
  private broken: CollectiveError | null = null;

  /**
   * Joins the job: checks this rank's GPU and libraries, meets the other ranks at the rendezvous
   * (rank 0's payload is NCCL's unique id), builds the host collective on GPU `localRank` and waits
   * until every rank has joined it. Throws NcclUnavailableError when this rank lacks the addon, its
   * GPU, cuBLASLt or NCCL, and CollectiveError when another rank does or the join fails.
   */
  static async open(o: NcclOptions): Promise<NcclCollective> {
    const timeoutSeconds = o.timeoutSeconds ?? 300;
    let local: { addon: NativeAddon; id: Uint8Array | null } | null = null;
    let failure: NcclUnavailableError | null = null;
    try {
      local = prepare(o);
    } catch (e) {
      if (!(e instanceof NcclUnavailableError)) throw e;
      failure = e;
    }
    const payload = failure !== null ? tagged(FAILED, new TextEncoder().encode(failure.message)) : local!.id !== null ? tagged(ID, local!.id) : new Uint8Array(0);
    const all = await rendezvous({ rank: o.rank, size: o.size, host: o.masterAddr, port: o.masterPort, payload, timeoutMs: timeoutSeconds * 1000 });
    if (failure !== null) throw failure;
    const failed = all.findIndex((p) => p[0] === FAILED);
    if (failed >= 0) throw new CollectiveError(`rank ${failed} cannot take part: ${new TextDecoder().decode(all[failed]!.subarray(1))}`);
    const id = all[0]!;
    if (id[0] !== ID) throw new CollectiveError(`internal: rank 0's rendezvous payload is not NCCL's unique id (${id.length} bytes)`);
    let native: NativeHostCollective;
    try {
      native = local!.addon.createHostCollective!(id.subarray(1), o.rank, o.size, o.localRank, timeoutSeconds);
    } catch (e) {
      throw new CollectiveError(`rank ${o.rank} cannot join the NCCL job: ${(e as Error).message}`);
    }
    const collective = new NcclCollective(native, o);
    // The first operation waits for every rank's join (under the timeout): failures show here.
    await collective.run('joining the NCCL job', () => native.barrier());
    return collective;
  }

  readonly rank: number;
  readonly size: number;
  readonly timeoutSeconds: number;

  private constructor(
    private readonly native: NativeHostCollective,
    private readonly options: NcclOptions,
  ) {
    this.rank = native.rank;
    this.size = native.size;
    this.timeoutSeconds = options.timeoutSeconds ?? 300;
  }

  allReduceSum<T extends Float32Array | Float64Array>(buffer: T): Promise<T> {
    return this.run(`all-reduce of ${buffer.length} ${buffer instanceof Float32Array ? 'float32' : 'float64'}`, () => this.native.allReduceSum(buffer)).then(() => buffer);
  }

  broadcast<T extends ArrayBufferView>(buffer: T, root: number): Promise<T> {
    if (!Number.isInteger(root) || root < 0 || root >= this.size) throw new CollectiveError(`internal: broadcast from rank ${root} in a world of ${this.size}`);
    const bytes = new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    return this.run(`broadcast of ${bytes.length} bytes from rank ${root}`, () => this.native.broadcast(bytes, root)).then(() => buffer);
  }

  allGather(bytes: Uint8Array): Promise<Uint8Array[]> {
    return this.run(`all-gather of ${bytes.length} bytes`, () => this.native.allGather(bytes));
  }

  barrier(): Promise<void> {
    return this.run('barrier', () => this.native.barrier());
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.queue.catch(() => undefined);
    this.closed = true;
    this.native.destroy();
  }

  abort(code: number): void {
    try {
      this.native.abort();
    } finally {
      process.exit(code);
    }
  }

  /** Runs one operation after the previous one; the addon enforces the timeout. */
  private run<R>(what: string, operation: () => Promise<R>): Promise<R> {
    if (this.closed) return Promise.reject(new CollectiveError(`internal: ${what} after the collective was closed`));
    if (this.broken !== null) return Promise.reject(this.broken);
    const seq = ++this.seq;
    const started = this.queue.then(async () => {
      if (this.broken !== null) throw this.broken;
      this.options.onOperation?.({ seq, op: what, phase: 'enter' });
      try {
        return await operation();
      } catch (e) {
        this.broken = new CollectiveError(`rank ${this.rank}: collective #${seq} (${what}) failed: ${(e as Error).message}`);
        throw this.broken;
      } finally {
        this.options.onOperation?.({ seq, op: what, phase: 'leave' });
      }
    });
    this.queue = started.catch(() => undefined);
    return started;
  }
}
