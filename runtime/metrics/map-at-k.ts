// map@k: mean average precision at k over groups (e.g. the ads of one display). Rows of a group
// are contiguous; a group may continue into the next `add` call, so the last group of each call
// is held until a row of another group arrives, or until `finish()`.

import {
  checkKind,
  checkSize,
  isPositive,
  type MetricAccumulator,
  type MetricExtras,
  type MetricState,
} from './accumulator.js';
import { ExactSum, type ExactSumState } from './exact-sum.js';
import { GrowableFloat32 } from './growable.js';

export interface MapAtKState {
  kind: 'map';
  k: number;
  /** Sum of the average precisions of the groups with a click. */
  precision: ExactSumState;
  /** Groups with at least one click: the denominator. */
  groups: number;
  /** Groups without a click: skipped, only counted. */
  groupsWithoutClick: number;
}

/**
 * Average precision at k of one group, rows `start .. end - 1`; null when it has no click.
 *
 * Rows are ranked by descending score; among equal scores the earlier row ranks higher, as
 * `tf.math.top_k` orders them. AP@k = (sum over ranks r <= k holding a click of precision@r) /
 * min(k, clicks); with one click that is 1 / rank, or 0 past k. A NaN score makes the AP NaN.
 */
export function averagePrecisionAtK(
  labels: ArrayLike<number>,
  scores: ArrayLike<number>,
  start: number,
  end: number,
  k: number,
): number | null {
  let clicks = 0;
  let clicked = -1;
  for (let i = start; i < end; i++) {
    if (scores[i] !== scores[i]) return NaN;
    if (isPositive(labels[i]!)) {
      clicks++;
      clicked = i;
    }
  }
  if (clicks === 0) return null;
  if (clicks === 1) {
    // The usual case (one click per display): its rank is a count, no sort needed.
    const score = scores[clicked]!;
    let rank = 1;
    for (let i = start; i < end; i++) {
      const s = scores[i]!;
      if (s > score || (s === score && i < clicked)) rank++;
    }
    return rank <= k ? 1 / rank : 0;
  }
  const order = Array.from({ length: end - start }, (_, i) => start + i);
  order.sort((a, b) => scores[b]! - scores[a]! || a - b);
  let hits = 0;
  let sum = 0;
  const ranked = Math.min(k, order.length);
  for (let r = 0; r < ranked; r++) {
    if (isPositive(labels[order[r]!]!)) {
      hits++;
      sum += hits / (r + 1);
    }
  }
  return sum / Math.min(k, clicks);
}

export class MapAtKAccumulator implements MetricAccumulator {
  private readonly precision = new ExactSum();
  private groups = 0;
  private groupsWithoutClick = 0;
  /** The group still open at the end of the last `add`: its id and rows so far. */
  private openGroup: number | null = null;
  private readonly openLabels = new GrowableFloat32(64);
  private readonly openScores = new GrowableFloat32(64);

  constructor(readonly k: number) {
    if (!Number.isInteger(k) || k < 1) throw new RangeError(`map@k needs an integer k >= 1, not ${k}`);
  }

  add(labels: Float32Array, scores: Float32Array, size: number, extras: MetricExtras = {}): void {
    const groups = extras.groups;
    if (groups === undefined) throw new Error('map@k needs the group id of each row');
    checkSize(size, labels, scores, groups);
    for (let i = 0; i < size; i++) {
      if (groups[i] !== groups[i]) throw new RangeError(`group id at row ${i} is NaN`);
    }
    let start = 0;
    if (this.openGroup !== null) {
      while (start < size && groups[start] === this.openGroup) start++;
      this.openLabels.append(labels.subarray(0, start));
      this.openScores.append(scores.subarray(0, start));
      if (start === size) return; // the whole batch continues the open group
      this.closeOpenGroup();
    }
    while (start < size) {
      const id = groups[start]!;
      let end = start + 1;
      while (end < size && groups[end] === id) end++;
      if (end === size) {
        // May continue in the next batch: hold it.
        this.openGroup = id;
        this.openLabels.append(labels.subarray(start, end));
        this.openScores.append(scores.subarray(start, end));
      } else {
        this.count(averagePrecisionAtK(labels, scores, start, end, this.k));
      }
      start = end;
    }
  }

  finish(): void {
    if (this.openGroup !== null) this.closeOpenGroup();
  }

  /** The mean AP@k over groups with a click; NaN when there is none. */
  result(): number {
    this.requireFinished('result');
    return this.groups === 0 ? NaN : this.precision.value() / this.groups;
  }

  /** Groups with a click, and groups skipped for having none (after `finish()`). */
  counts(): { groups: number; groupsWithoutClick: number } {
    return { groups: this.groups, groupsWithoutClick: this.groupsWithoutClick };
  }

  state(): MapAtKState {
    this.requireFinished('state');
    return {
      kind: 'map',
      k: this.k,
      precision: this.precision.state(),
      groups: this.groups,
      groupsWithoutClick: this.groupsWithoutClick,
    };
  }

  /** Adds the groups of another part of the data; groups must not straddle the parts. */
  merge(other: MetricState): void {
    checkKind(other, 'map');
    if (other.k !== this.k) throw new Error(`cannot merge a map@${other.k} state into map@${this.k}`);
    this.precision.merge(other.precision);
    this.groups += other.groups;
    this.groupsWithoutClick += other.groupsWithoutClick;
  }

  private closeOpenGroup(): void {
    this.count(averagePrecisionAtK(this.openLabels.view(), this.openScores.view(), 0, this.openLabels.length, this.k));
    this.openGroup = null;
    this.openLabels.clear();
    this.openScores.clear();
  }

  private count(ap: number | null): void {
    if (ap === null) {
      this.groupsWithoutClick++;
    } else {
      this.groups++;
      this.precision.add(ap);
    }
  }

  private requireFinished(what: string): void {
    if (this.openGroup !== null) {
      throw new Error(`map@${this.k}: call finish() before ${what}(): the last group is still open`);
    }
  }
}
