// The collective operations data-parallel training needs, behind one interface: MPI on the CPU
// (mpi.ts, through native-mpi/), NCCL inside the CUDA addon later, and the trivial world of one
// process (LocalCollective). Every operation is collective: every rank calls it, in the same
// order, with buffers of the same length (allGather excepted), or the job waits forever — which
// is what the watchdog (watchdog.ts) turns into an error naming the rank that did not come.

export interface Collective {
  /** This process's rank, 0 .. size - 1; rank 0 writes checkpoints and logs. */
  readonly rank: number;
  readonly size: number;
  /** `local`, `mpi` or `nccl`: for messages and run.json. */
  readonly backend: string;
  /** How long an operation may wait for the other ranks before it fails (absent: for ever). */
  readonly timeoutSeconds?: number;
  /** Sums `buffer` element-wise over the ranks, in place; every rank ends with the same bits. */
  allReduceSum<T extends Float32Array | Float64Array>(buffer: T): Promise<T>;
  /** Copies `root`'s bytes of `buffer` into every rank's `buffer` (same length on every rank). */
  broadcast<T extends ArrayBufferView>(buffer: T, root: number): Promise<T>;
  /** Every rank's bytes, in rank order; the lengths may differ between ranks. */
  allGather(bytes: Uint8Array): Promise<Uint8Array[]>;
  barrier(): Promise<void>;
  /** Ends this rank's part of the world (MPI_Finalize); no operation may follow. */
  close(): Promise<void>;
  /** Brings the whole job down at once (MPI_Abort): after an error the other ranks cannot learn of. */
  abort(code: number): void;
}

/** A collective failed or waited too long; the message names the operation (and the rank when known). */
export class CollectiveError extends Error {
  override name = 'CollectiveError';
}

/** The world of one process: every operation is the identity. */
export class LocalCollective implements Collective {
  readonly rank = 0;
  readonly size = 1;
  readonly backend = 'local';

  async allReduceSum<T extends Float32Array | Float64Array>(buffer: T): Promise<T> {
    return buffer;
  }

  async broadcast<T extends ArrayBufferView>(buffer: T, root: number): Promise<T> {
    if (root !== 0) throw new CollectiveError(`broadcast from rank ${root} in a world of one rank`);
    return buffer;
  }

  async allGather(bytes: Uint8Array): Promise<Uint8Array[]> {
    return [bytes.slice()];
  }

  async barrier(): Promise<void> {}

  async close(): Promise<void> {}

  abort(code: number): void {
    process.exit(code);
  }
}

/** The bytes of a typed array (a view, no copy). */
export function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
}

/** Broadcasts a byte string of any length from `root` (its length first): `bytes` matters only on root. */
export async function broadcastBytes(collective: Collective, bytes: Uint8Array | null, root = 0): Promise<Uint8Array> {
  const length = new Float64Array([collective.rank === root ? (bytes?.length ?? 0) : 0]);
  await collective.broadcast(length, root);
  const out = collective.rank === root && bytes !== null ? bytes : new Uint8Array(length[0]!);
  if (out.length > 0) await collective.broadcast(out, root);
  return out;
}
