// Training progress: plain lines (logs, CI) at most every 2 s plus each epoch's last batch, with an
// injected clock; the live bar on a terminal shows epoch, batches, loss, examples/s and the ETA.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { CliIO } from '../cli/io.js';
import { createTrainingProgress, etaSeconds, formatDuration } from '../cli/progress.js';
import type { StepProgress } from '../runtime/train/trainer.js';

function captureIO(interactive: boolean): { io: CliIO; err: () => string } {
  let err = '';
  return { io: { stdout: () => undefined, stderr: (s) => void (err += s), cwd: '/', color: false, interactive }, err: () => err };
}

/** Steps of a 2-epoch run of 4 batches each, one step every 700 ms of the injected clock. */
function steps(): Array<{ at: number; p: StepProgress }> {
  const out: Array<{ at: number; p: StepProgress }> = [];
  for (let step = 1; step <= 8; step++) {
    const epoch = Math.floor((step - 1) / 4);
    out.push({ at: step * 700, p: { step, epoch, batchInEpoch: ((step - 1) % 4) + 1, batchesPerEpoch: 4, loss: 1 / step, examplesPerSecond: 1234.4 + step } });
  }
  return out;
}

test('non-interactive: the first step, then at most one line per 2 s, plus the last batch of each epoch', () => {
  const { io, err } = captureIO(false);
  let clock = 0;
  const progress = createTrainingProgress(io, { epochs: 2, now: () => clock });
  for (const { at, p } of steps()) {
    clock = at;
    progress.step(p);
    if (p.batchInEpoch === p.batchesPerEpoch) progress.line(`eval after epoch ${p.epoch + 1}\n`);
  }
  progress.stop();
  assert.equal(
    err(),
    [
      // 700 ms: first step; 1400, 2100: within 2 s of it; 2800: the epoch's last batch.
      'epoch 1/2 batch 1/4 step 1 loss 1.0000 1,235 examples/s',
      'epoch 1/2 batch 4/4 step 4 loss 0.2500 1,238 examples/s',
      'eval after epoch 1',
      // 3500, 4200: within 2 s of 2800; 4900: 2.1 s later; 5600: the epoch's last batch.
      'epoch 2/2 batch 3/4 step 7 loss 0.1429 1,241 examples/s',
      'epoch 2/2 batch 4/4 step 8 loss 0.1250 1,242 examples/s',
      'eval after epoch 2',
      '',
    ].join('\n'),
  );
});

test('non-interactive is the default when the io does not say it is a terminal', () => {
  let err = '';
  const io: CliIO = { stdout: () => undefined, stderr: (s) => void (err += s), cwd: '/', color: false };
  const first = steps()[0]!.p;
  createTrainingProgress(io, { epochs: 2, now: () => 0 }).step(first);
  assert.equal(err, 'epoch 1/2 batch 1/4 step 1 loss 1.0000 1,235 examples/s\n');
});

test('ETA: remaining steps of the whole run at the measured step rate', () => {
  // 10 steps done in 5 s since step 0; epoch 1 (0-based) of 3, batch 4 of 10: 6 + 10 steps left.
  assert.equal(etaSeconds({ step: 10, epoch: 1, batchInEpoch: 4, batchesPerEpoch: 10, loss: 0, examplesPerSecond: 0 }, 3, 0, 5000), 8);
  assert.equal(etaSeconds({ step: 1, epoch: 0, batchInEpoch: 1, batchesPerEpoch: 10, loss: 0, examplesPerSecond: 0 }, 1, 1, 0), undefined);
  assert.deepEqual([formatDuration(undefined), formatDuration(12.4), formatDuration(245), formatDuration(3720)], ['?', '12s', '4m05s', '1h02m']);
});

test('interactive: a bar per epoch with batches, loss, examples/s and ETA; evaluation lines below it', () => {
  const { io, err } = captureIO(true);
  let clock = 0;
  const progress = createTrainingProgress(io, { epochs: 2, now: () => clock, columns: 200 });
  for (const { at, p } of steps()) {
    clock = at;
    progress.step(p);
    if (p.batchInEpoch === p.batchesPerEpoch) progress.line(`eval after epoch ${p.epoch + 1}\n`);
  }
  progress.stop();
  // Drop cursor movements and line clearing; keep what was drawn last on each line.
  const screen = err()
    .replace(/\x1b(\[[0-9;?]*[A-Za-z]|[78])/g, '\r')
    .split('\n')
    .map((l) => l.split('\r').filter((s) => s !== '').pop() ?? '')
    .filter((l) => l !== '');
  assert.deepEqual(screen, [
    'epoch 1/2 [========================] 4/4 | loss 0.2500 | 1,238 examples/s | ETA 3s',
    'eval after epoch 1',
    'epoch 2/2 [========================] 4/4 | loss 0.1250 | 1,242 examples/s | ETA 0s',
    'eval after epoch 2',
  ]);
});
