// The environment-variable rendezvous (docs/distributed.md, "Launch modes"): for ranks that a
// scheduler starts itself, with WNDC_RANK, WNDC_WORLD_SIZE, WNDC_MASTER_ADDR and WNDC_MASTER_PORT.
// Rank 0 listens on the master port; every rank sends its payload; once all have arrived rank 0
// sends every payload, in rank order, to every rank. It carries what the ranks must agree on
// before any collective exists — NCCL's unique id (from rank 0) for the GPU engine.
//
// Wire format, both ways: uint32 little-endian length, then the bytes. Rank -> 0: a JSON header
// {rank, size} frame, then the payload frame. 0 -> rank: `size` frames, one per rank.

import { connect, createServer, type Socket } from 'node:net';

export interface RendezvousOptions {
  rank: number;
  size: number;
  /** Rank 0's address and port (WNDC_MASTER_ADDR, WNDC_MASTER_PORT). */
  host: string;
  port: number;
  payload: Uint8Array;
  /** How long to wait for every rank (rank 0) or for rank 0 to answer (default 300 s). */
  timeoutMs?: number;
}

export class RendezvousError extends Error {
  override name = 'RendezvousError';
}

/** Every rank's payload, in rank order, on every rank. */
export function rendezvous(o: RendezvousOptions): Promise<Uint8Array[]> {
  const timeoutMs = o.timeoutMs ?? 300_000;
  return o.rank === 0 ? serve(o, timeoutMs) : join(o, timeoutMs);
}

function frame(bytes: Uint8Array): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt32LE(bytes.length, 0);
  return Buffer.concat([header, bytes]);
}

/** Reads length-prefixed frames from a socket. */
class FrameReader {
  private buffered = Buffer.alloc(0);
  private readonly waiting: ((frame: Buffer) => void)[] = [];
  private readonly frames: Buffer[] = [];

  constructor(socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.buffered = Buffer.concat([this.buffered, chunk]);
      while (this.buffered.length >= 4) {
        const length = this.buffered.readUInt32LE(0);
        if (this.buffered.length < 4 + length) break;
        const f = this.buffered.subarray(4, 4 + length);
        this.buffered = this.buffered.subarray(4 + length);
        const resolve = this.waiting.shift();
        if (resolve !== undefined) resolve(f);
        else this.frames.push(f);
      }
    });
  }

  next(): Promise<Buffer> {
    const f = this.frames.shift();
    return f !== undefined ? Promise.resolve(f) : new Promise((resolve) => this.waiting.push(resolve));
  }
}

function serve(o: RendezvousOptions, timeoutMs: number): Promise<Uint8Array[]> {
  return new Promise((resolve, reject) => {
    const payloads: (Uint8Array | undefined)[] = new Array(o.size).fill(undefined);
    payloads[0] = o.payload;
    const sockets = new Map<number, Socket>();
    const server = createServer((socket) => {
      const reader = new FrameReader(socket);
      socket.on('error', () => undefined);
      void (async () => {
        const header = JSON.parse((await reader.next()).toString('utf8')) as { rank: number; size: number };
        const payload = await reader.next();
        if (header.size !== o.size || !(header.rank > 0 && header.rank < o.size) || sockets.has(header.rank)) {
          fail(new RendezvousError(`a rank announced itself as rank ${header.rank} of ${header.size}; this job has ${o.size} ranks and rank ${header.rank} ${sockets.has(header.rank) ? 'is already here' : 'cannot be'}`));
          return;
        }
        sockets.set(header.rank, socket);
        payloads[header.rank] = new Uint8Array(payload);
        if (sockets.size === o.size - 1) {
          const all = payloads as Uint8Array[];
          const reply = Buffer.concat(all.map(frame));
          for (const s of sockets.values()) s.end(reply);
          clearTimeout(timer);
          server.close();
          resolve(all);
        }
      })();
    });
    const fail = (error: Error) => {
      clearTimeout(timer);
      for (const s of sockets.values()) s.destroy();
      server.close();
      reject(error);
    };
    const timer = setTimeout(() => {
      const missing = payloads.map((p, r) => (p === undefined ? r : -1)).filter((r) => r >= 0);
      fail(new RendezvousError(`rank${missing.length > 1 ? 's' : ''} ${missing.join(', ')} did not reach the rendezvous at ${o.host}:${o.port} within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    server.once('error', (e) => fail(new RendezvousError(`rank 0 cannot listen on ${o.host}:${o.port}: ${e.message}`)));
    server.listen(o.port, o.host);
  });
}

function join(o: RendezvousOptions, timeoutMs: number): Promise<Uint8Array[]> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const socket = connect({ host: o.host, port: o.port });
      const reader = new FrameReader(socket);
      socket.once('connect', () => {
        socket.write(frame(Buffer.from(JSON.stringify({ rank: o.rank, size: o.size }))));
        socket.write(frame(o.payload));
        void (async () => {
          const all: Uint8Array[] = [];
          for (let r = 0; r < o.size; r++) all.push(new Uint8Array(await reader.next()));
          clearTimeout(timer);
          resolve(all);
        })();
      });
      socket.once('error', () => {
        // Rank 0 is not listening yet: try again until the deadline.
        socket.destroy();
        if (Date.now() < deadline) setTimeout(attempt, 200);
      });
    };
    const timer = setTimeout(() => reject(new RendezvousError(`rank ${o.rank}: rank 0 did not complete the rendezvous at ${o.host}:${o.port} within ${timeoutMs / 1000} s`)), timeoutMs);
    attempt();
  });
}
