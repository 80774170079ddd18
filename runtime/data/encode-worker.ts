// A preprocessing worker thread: loads the model's compiled module once, then runs the tasks the
// main thread posts (encode-block.ts) and posts each result back, its buffers transferred.

import { parentPort, workerData } from 'node:worker_threads';
import type { ModelIR } from '../../compiler/ir.js';
import { BlockEncoder, resultTransferList, type Task } from './encode-block.js';

const port = parentPort;
if (port === null) throw new Error('internal: encode-worker runs as a worker thread');
const encoder = BlockEncoder.create((workerData as { ir: ModelIR }).ir);

port.on('message', (message: { id: number; task: Task }) => {
  const fail = (error: unknown) => port.postMessage({ id: message.id, error: String(error instanceof Error ? error.stack : error) });
  encoder.then((e) => {
    let result;
    try {
      result = e.run(message.task);
    } catch (error) {
      fail(error);
      return;
    }
    port.postMessage({ id: message.id, result }, resultTransferList(result));
  }, fail);
});
