// The launcher's view of its ranks: each rank connects to the launcher's control port
// (WNDC_CONTROL=host:port) and sends newline-delimited JSON — hello, a heartbeat every second, each
// collective it enters and leaves, and done. The launcher's RankMonitor turns what it sees into a
// verdict naming the rank: one that died (its connection closed before `done`), one that stopped
// responding (no heartbeat for the timeout), or one that has not joined a collective the others
// have waited in for the timeout. The other way round, a rank whose connection closes before it
// sent `done` has lost its launcher (killed with SIGKILL, crashed) and stops itself (onLost).

import { createServer, connect, type Server, type Socket } from 'node:net';
import type { OperationEvent } from './mpi.js';

export type ControlMessage =
  | { t: 'hello'; rank: number; size: number; pid: number; host: string; modelDir?: string }
  | { t: 'beat'; rank: number }
  | { t: 'op'; rank: number; seq: number; op: string; phase: 'enter' | 'leave' }
  | { t: 'done'; rank: number }
  | { t: 'fail'; rank: number; message: string };

export const HEARTBEAT_MS = 1000;
const START_MS = 120_000;

/** A rank's side: reports to the launcher; every call is a no-op once the connection is gone. */
export class ControlClient {
  private readonly timer: NodeJS.Timeout;
  /** Set (synchronously) by finish(): from then on the connection closing is the normal end. */
  private finished = false;

  private constructor(
    private readonly socket: Socket,
    private readonly rank: number,
  ) {
    this.timer = setInterval(() => this.send({ t: 'beat', rank }), HEARTBEAT_MS);
    this.timer.unref();
  }

  /** Connects to `address` (host:port); resolves once connected. */
  static connect(address: string, hello: Omit<Extract<ControlMessage, { t: 'hello' }>, 't'>): Promise<ControlClient> {
    const colon = address.lastIndexOf(':');
    const host = address.slice(0, colon);
    const port = Number(address.slice(colon + 1));
    return new Promise((resolve, reject) => {
      const socket = connect({ host, port }, () => {
        socket.off('error', reject);
        socket.on('error', () => undefined); // the launcher went away: 'close' follows (onLost)
        socket.unref();
        const client = new ControlClient(socket, hello.rank);
        client.send({ t: 'hello', ...hello });
        resolve(client);
      });
      socket.once('error', reject);
    });
  }

  /**
   * Calls `lost` once if the connection closes before this rank sent its last words (`finish`):
   * the launcher is gone. The launcher itself closes the connections only after its ranks have
   * exited, or once it has killed them.
   */
  onLost(lost: () => void): void {
    const check = (): void => {
      if (!this.finished) lost();
    };
    if (this.socket.destroyed) setImmediate(check);
    else this.socket.once('close', check);
  }

  operation(event: OperationEvent): void {
    this.send({ t: 'op', rank: this.rank, seq: event.seq, op: event.op, phase: event.phase });
  }

  /** The last words: resolves when they are written (or the connection is gone). */
  finish(message: Extract<ControlMessage, { t: 'done' | 'fail' }>): Promise<void> {
    this.finished = true;
    clearInterval(this.timer);
    return new Promise((resolve) => {
      if (this.socket.destroyed) return resolve();
      this.socket.end(`${JSON.stringify(message)}\n`, () => resolve());
    });
  }

  private send(message: ControlMessage): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(`${JSON.stringify(message)}\n`);
  }
}

interface RankState {
  pid: number;
  host: string;
  lastSeen: number;
  done: boolean;
  /** The collective it is in (entered, not left), or the last it left. */
  seq: number;
  op: string;
  waitingSince: number | null;
}

/** The launcher's side: listens on 127.0.0.1, follows the ranks, calls `onVerdict` once. */
export class RankMonitor {
  readonly ranks = new Map<number, RankState>();
  modelDir: string | undefined;
  private readonly server: Server;
  private readonly timer: NodeJS.Timeout;
  private verdict: string | null = null;
  private readonly started = Date.now();

  constructor(
    private readonly size: number,
    private readonly timeoutMs: number,
    private readonly onVerdict: (message: string) => void,
    private readonly now: () => number = Date.now,
  ) {
    this.server = createServer((socket) => this.follow(socket));
    this.timer = setInterval(() => this.check(), 250);
  }

  listen(): Promise<string> {
    return new Promise((resolve) => this.server.listen(0, '127.0.0.1', () => {
      const address = this.server.address();
      resolve(`127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`);
    }));
  }

  /** True when every rank said `done`. */
  allDone(): boolean {
    return this.ranks.size === this.size && [...this.ranks.values()].every((r) => r.done);
  }

  close(): void {
    clearInterval(this.timer);
    this.server.close();
    for (const socket of this.sockets) socket.destroy();
  }

  private readonly sockets = new Set<Socket>();

  private follow(socket: Socket): void {
    this.sockets.add(socket);
    let rank: number | null = null;
    let buffered = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        const message = JSON.parse(line) as ControlMessage;
        rank = message.rank;
        this.receive(message);
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.sockets.delete(socket);
      if (rank === null) return;
      const state = this.ranks.get(rank);
      if (state !== undefined && !state.done) this.decide(`rank ${rank} (pid ${state.pid} on ${state.host}) died ${describe(state)}`);
    });
  }

  private receive(message: ControlMessage): void {
    const now = this.now();
    if (message.t === 'hello') {
      this.ranks.set(message.rank, { pid: message.pid, host: message.host, lastSeen: now, done: false, seq: 0, op: '', waitingSince: null });
      if (message.modelDir !== undefined) this.modelDir = message.modelDir;
      return;
    }
    const state = this.ranks.get(message.rank);
    if (state === undefined) return;
    state.lastSeen = now;
    if (message.t === 'op') {
      state.seq = message.seq;
      state.op = message.op;
      state.waitingSince = message.phase === 'enter' ? now : null;
    } else if (message.t === 'done') {
      state.done = true;
    } else if (message.t === 'fail') {
      state.done = true; // it has said why itself
      this.decide(`rank ${message.rank} failed: ${message.message}`);
    }
  }

  private check(): void {
    const now = this.now();
    // Starting (mpirun, Node.js, loading the code) gets at least START_MS, whatever the timeout.
    const startMs = Math.max(this.timeoutMs, START_MS);
    if (this.ranks.size < this.size && now - this.started > startMs) {
      const missing = [...Array(this.size).keys()].filter((r) => !this.ranks.has(r));
      this.decide(`rank${missing.length > 1 ? 's' : ''} ${missing.join(', ')} did not start within ${startMs / 1000} s`);
      return;
    }
    for (const [rank, state] of this.ranks) {
      if (!state.done && now - state.lastSeen > this.timeoutMs) {
        this.decide(`rank ${rank} (pid ${state.pid} on ${state.host}) stopped responding: no heartbeat for ${this.timeoutMs / 1000} s ${describe(state)}`);
        return;
      }
    }
    // Ranks waited in a collective for the timeout: the ranks not in it are the ones holding it up.
    const waiting = [...this.ranks.entries()].filter(([, s]) => s.waitingSince !== null && now - s.waitingSince > this.timeoutMs);
    if (waiting.length === 0) return;
    const seq = Math.max(...waiting.map(([, s]) => s.seq));
    const late = [...this.ranks.entries()].filter(([, s]) => !(s.waitingSince !== null && s.seq === seq)).map(([r]) => r);
    if (late.length === 0) return;
    const op = waiting.find(([, s]) => s.seq === seq)?.[1].op ?? '';
    this.decide(`rank${late.length > 1 ? 's' : ''} ${late.join(', ')} did not join collective #${seq} (${op}) for ${this.timeoutMs / 1000} s; rank${waiting.length > 1 ? 's' : ''} ${waiting.map(([r]) => r).join(', ')} waited for ${late.length > 1 ? 'them' : 'it'}`);
  }

  private decide(message: string): void {
    if (this.verdict !== null) return;
    this.verdict = message;
    this.onVerdict(message);
  }
}

function describe(state: RankState): string {
  if (state.seq === 0) return 'before its first collective';
  return state.waitingSince !== null ? `in collective #${state.seq} (${state.op})` : `after collective #${state.seq} (${state.op})`;
}
