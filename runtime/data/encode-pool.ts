// Runs preprocessing tasks on worker threads (`--threads N`), or on the main thread with one
// thread. Results are consumed in the order tasks were given, so the output does not depend on
// which thread encoded what. The first task runs on the main thread while nothing else is known
// about the input: small inputs (one block) never pay for starting workers.

import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { ModelIR } from '../../compiler/ir.js';
import { BlockEncoder, type Task, type TaskResult } from './encode-block.js';
import { blockTransferList } from './sources/block.js';

export function defaultThreads(): number {
  return availableParallelism();
}

interface Pending {
  resolve: (result: TaskResult) => void;
  reject: (error: Error) => void;
}

interface PoolWorker {
  worker: Worker;
  pending: Map<number, Pending>;
}

/**
 * How to start a worker: the built encode-worker.js next to this file; or, running from the
 * sources under tsx (tests, `npm run wndc`), a bootstrap that registers tsx in the worker and
 * imports encode-worker.ts (Node 20 does not apply `--import tsx` to a worker's entry module).
 */
function workerEntry(): { entry: string | URL; eval: boolean } {
  const js = new URL('./encode-worker.js', import.meta.url);
  if (existsSync(fileURLToPath(js))) return { entry: js, eval: false };
  const ts = new URL('./encode-worker.ts', import.meta.url).href;
  const tsx = import.meta.resolve('tsx/esm/api');
  return { entry: `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(ts)}); });`, eval: true };
}

export class EncodePool {
  private readonly workers: PoolWorker[] = [];
  private nextId = 0;
  private tasks = 0;
  private local: Promise<BlockEncoder> | null = null;

  constructor(
    private readonly ir: ModelIR,
    readonly threads: number,
  ) {}

  /** How many tasks may be in flight before the oldest result must be consumed. */
  get depth(): number {
    return this.threads <= 1 ? 1 : 2 * this.threads;
  }

  run(task: Task): Promise<TaskResult> {
    if (this.threads <= 1 || this.tasks++ === 0) return this.runHere(task);
    if (this.workers.length === 0) this.start();
    // The least busy worker; ties go to the first.
    let target = this.workers[0]!;
    for (const w of this.workers) if (w.pending.size < target.pending.size) target = w;
    const id = this.nextId++;
    return new Promise<TaskResult>((resolve, reject) => {
      target.pending.set(id, { resolve, reject });
      target.worker.postMessage({ id, task }, task.block.kind === 'columns' ? blockTransferList(task.block) : []);
    });
  }

  private async runHere(task: Task): Promise<TaskResult> {
    this.local ??= BlockEncoder.create(this.ir);
    return (await this.local).run(task);
  }

  private start(): void {
    const { entry: script, eval: isCode } = workerEntry();
    for (let i = 0; i < this.threads; i++) {
      const worker = new Worker(script, { workerData: { ir: this.ir }, eval: isCode });
      const entry: PoolWorker = { worker, pending: new Map() };
      const failAll = (error: Error) => {
        for (const p of entry.pending.values()) p.reject(error);
        entry.pending.clear();
      };
      worker.on('message', (message: { id: number; result?: TaskResult; error?: string }) => {
        const p = entry.pending.get(message.id);
        if (p === undefined) return;
        entry.pending.delete(message.id);
        if (message.error !== undefined) p.reject(new Error(`internal: a preprocessing worker failed: ${message.error}`));
        else p.resolve(message.result!);
      });
      worker.on('error', failAll);
      worker.on('exit', (code) => failAll(new Error(`internal: a preprocessing worker stopped (exit code ${code})`)));
      this.workers.push(entry);
    }
  }

  async close(): Promise<void> {
    const workers = this.workers.splice(0);
    for (const w of workers) w.worker.removeAllListeners('exit');
    await Promise.all(workers.map((w) => w.worker.terminate()));
  }
}
