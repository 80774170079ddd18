// Training progress on stderr: a live bar on a terminal (epoch, batch/batches, loss, examples/s,
// ETA of the whole run), or plain lines in logs and CI (at most one every 2 s, plus the last batch
// of each epoch, so a log file stays short and still ends every epoch with its final numbers).

import cliProgress from 'cli-progress';
import type { StepProgress } from '../runtime/train/trainer.js';
import type { CliIO } from './io.js';

export interface TrainingProgress {
  /** Called with every training step. */
  step(p: StepProgress): void;
  /** A line of its own (evaluation results, notices): never drawn over by the bar. */
  line(text: string): void;
  /** Ends the bar (idempotent); call it when training ends, fails or stops early. */
  stop(): void;
}

export interface ProgressOptions {
  /** Epochs of the whole run, for the `epoch e/N` label and the ETA. */
  epochs: number;
  /** Milliseconds, monotonic; injectable for tests. */
  now?: () => number;
  /** Terminal width for the bar (default: stderr's). */
  columns?: number;
}

/** Plain lines are at most this often, except the last batch of an epoch. */
export const PLAIN_INTERVAL_MS = 2000;

export function createTrainingProgress(io: CliIO, o: ProgressOptions): TrainingProgress {
  return io.interactive ? new BarProgress(io, o) : new PlainProgress(io, o);
}

export function plainProgressLine(p: StepProgress, epochs: number): string {
  return `epoch ${p.epoch + 1}/${epochs} batch ${p.batchInEpoch}/${p.batchesPerEpoch} step ${p.step} loss ${p.loss.toFixed(4)} ${Math.round(p.examplesPerSecond).toLocaleString('en-US')} examples/s\n`;
}

class PlainProgress implements TrainingProgress {
  private lastPrint = Number.NEGATIVE_INFINITY;
  private readonly now: () => number;

  constructor(
    private readonly io: CliIO,
    private readonly o: ProgressOptions,
  ) {
    this.now = o.now ?? (() => performance.now());
  }

  step(p: StepProgress): void {
    const now = this.now();
    if (now - this.lastPrint < PLAIN_INTERVAL_MS && p.batchInEpoch !== p.batchesPerEpoch) return;
    this.lastPrint = now;
    this.io.stderr(plainProgressLine(p, this.o.epochs));
  }

  line(text: string): void {
    this.io.stderr(text);
  }

  stop(): void {}
}

/**
 * Seconds left in the run at the rate of the steps seen so far in this process (a resumed run
 * starts measuring at its first step); undefined until two steps give a rate. Evaluation time is
 * not counted.
 */
export function etaSeconds(p: StepProgress, epochs: number, firstStep: number, elapsedMs: number): number | undefined {
  const done = p.step - firstStep;
  if (done <= 0 || elapsedMs <= 0) return undefined;
  const remaining = (epochs - p.epoch - 1) * p.batchesPerEpoch + (p.batchesPerEpoch - p.batchInEpoch);
  return Math.max(0, remaining) * (elapsedMs / 1000 / done);
}

/** `1h02m`, `4m05s`, `12s`; `?` when unknown. */
export function formatDuration(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** One cli-progress bar per epoch; a finished epoch's bar stays on screen above the next. */
class BarProgress implements TrainingProgress {
  private bar: cliProgress.SingleBar | undefined;
  private barEpoch = -1;
  private firstStep: number | undefined;
  private startedAt = 0;
  private readonly now: () => number;
  private readonly stream: NodeJS.WritableStream;

  constructor(
    io: CliIO,
    private readonly o: ProgressOptions,
  ) {
    this.now = o.now ?? (() => performance.now());
    // The bar writes through io.stderr like every other message; cli-progress only needs `write`,
    // `isTTY` and `columns` of its stream.
    const columns = o.columns ?? process.stderr.columns ?? 100;
    this.stream = { isTTY: true, columns, write: (s: string) => (io.stderr(s), true) } as unknown as NodeJS.WritableStream;
  }

  step(p: StepProgress): void {
    if (this.firstStep === undefined) {
      // The rate is measured from the end of the first step seen (a resumed run starts mid-way).
      this.firstStep = p.step;
      this.startedAt = this.now();
    }
    if (this.bar === undefined || this.barEpoch !== p.epoch) {
      this.stop();
      this.bar = new cliProgress.SingleBar({
        stream: this.stream,
        format: `epoch {epochLabel} [{bar}] {value}/{total} | loss {loss} | {rate} examples/s | ETA {etaText}`,
        barsize: 24,
        hideCursor: null,
        clearOnComplete: false,
        // cli-progress's SIGINT handler would swallow the first Ctrl-C; the cursor is never hidden, so nothing needs restoring.
        gracefulExit: false,
        fps: 10,
      });
      this.barEpoch = p.epoch;
      this.bar.start(p.batchesPerEpoch, p.batchInEpoch - 1, this.payload(p));
    }
    this.bar.update(p.batchInEpoch, this.payload(p));
  }

  private payload(p: StepProgress): Record<string, string> {
    const eta = etaSeconds(p, this.o.epochs, this.firstStep ?? p.step, this.now() - this.startedAt);
    return {
      epochLabel: `${p.epoch + 1}/${this.o.epochs}`,
      loss: p.loss.toFixed(4),
      rate: Math.round(p.examplesPerSecond).toLocaleString('en-US'),
      etaText: formatDuration(eta),
    };
  }

  line(text: string): void {
    // Evaluation comes after an epoch's last batch: end that bar so the line goes below it.
    this.stop();
    this.stream.write(text);
  }

  stop(): void {
    if (this.bar === undefined) return;
    this.bar.stop();
    this.bar = undefined;
  }
}
