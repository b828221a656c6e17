import { Rng } from '../random.js';

/**
 * How sure a figure is: 95% intervals of the headline metrics by a seeded percentile bootstrap over
 * rows (each resample draws the split's rows with replacement, the metric is recomputed on it, and
 * the interval is the 2.5th and 97.5th percentiles of those values, interpolated as numpy's
 * `percentile` does). Paired: two runs scored on the same rows are resampled together, and the
 * interval is that of their difference.
 *
 * Each resample recomputes the metrics from per-row facts (the predicted label, whether the top-1
 * and top-k are right, the row's log loss), with metrics/index.ts's conventions: macro and weighted
 * averages over the genres that occur in the true or the predicted labels of the resample.
 */
export const BOOTSTRAP_SAMPLES = 1000;
export const INTERVAL_LEVEL = 0.95;

export const INTERVAL_METRICS = ['accuracy', 'macro_f1', 'macro_precision', 'macro_recall', 'weighted_f1', 'top_k_accuracy', 'log_loss'] as const;
export type IntervalMetric = (typeof INTERVAL_METRICS)[number];
export type Intervals = Record<IntervalMetric, [number, number]>;

/** What a resample needs of each row. */
export interface RowFacts {
  truth: Int32Array;
  predicted: Int32Array;
  topKHit: Uint8Array;
  logLoss: Float64Array;
  labels: number;
}

export function rowFacts(truth: ArrayLike<number>, probs: Float32Array, labels: number, topK: number): RowFacts {
  const rows = truth.length;
  const facts: RowFacts = { truth: Int32Array.from(truth), predicted: new Int32Array(rows), topKHit: new Uint8Array(rows), logLoss: new Float64Array(rows), labels };
  for (let r = 0; r < rows; r++) {
    const row = probs.subarray(r * labels, (r + 1) * labels);
    const t = truth[r]!;
    let best = 0;
    let total = 0;
    let above = 0;
    for (let j = 0; j < labels; j++) {
      if (row[j]! > row[best]!) best = j;
      total += row[j]!;
      if (row[j]! > row[t]! || (row[j] === row[t] && j < t)) above++;
    }
    facts.predicted[r] = best;
    facts.topKHit[r] = above < topK ? 1 : 0;
    facts.logLoss[r] = -Math.log(Math.min(Math.max(row[t]! / total, 1e-15), 1 - 1e-15));
  }
  return facts;
}

/** The metrics of the rows drawn `count[r]` times each. */
export function weightedMetrics(facts: RowFacts, count: ArrayLike<number>): Record<IntervalMetric, number> {
  const k = facts.labels;
  const tp = new Float64Array(k);
  const support = new Float64Array(k);
  const predictedCount = new Float64Array(k);
  let n = 0;
  let correct = 0;
  let topK = 0;
  let logLoss = 0;
  for (let r = 0; r < facts.truth.length; r++) {
    const c = count[r]!;
    if (!c) continue;
    const t = facts.truth[r]!;
    const p = facts.predicted[r]!;
    n += c;
    support[t]! += c;
    predictedCount[p]! += c;
    if (t === p) (tp[t]! += c), (correct += c);
    topK += c * facts.topKHit[r]!;
    logLoss += c * facts.logLoss[r]!;
  }
  let macro = 0;
  let macroPrecision = 0;
  let macroRecall = 0;
  let weighted = 0;
  let present = 0;
  for (let i = 0; i < k; i++) {
    if (!support[i] && !predictedCount[i]) continue;
    const precision = predictedCount[i] ? tp[i]! / predictedCount[i]! : 0;
    const recall = support[i] ? tp[i]! / support[i]! : 0;
    const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
    macro += f1;
    macroPrecision += precision;
    macroRecall += recall;
    weighted += f1 * support[i]!;
    present++;
  }
  return { accuracy: correct / n, macro_f1: present ? macro / present : 0, macro_precision: present ? macroPrecision / present : 0, macro_recall: present ? macroRecall / present : 0, weighted_f1: weighted / n, top_k_accuracy: topK / n, log_loss: logLoss / n };
}

/** Resample counts: `samples` draws of the rows with replacement, seeded. */
export function* resamples(rows: number, samples: number, seed: number): Generator<Uint32Array> {
  const rng = new Rng(seed, 'bootstrap');
  const count = new Uint32Array(rows);
  for (let s = 0; s < samples; s++) {
    count.fill(0);
    for (let i = 0; i < rows; i++) count[rng.int(rows)]!++;
    yield count;
  }
}

/** numpy's percentile (linear interpolation) of sorted values. */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (at - lo);
}

function intervalOf(values: number[]): [number, number] {
  const sorted = Float64Array.from(values).sort();
  return [percentile(sorted, (1 - INTERVAL_LEVEL) / 2), percentile(sorted, 1 - (1 - INTERVAL_LEVEL) / 2)];
}

/** 95% percentile-bootstrap intervals of a split's headline metrics. */
export function bootstrapIntervals(facts: RowFacts, options: { samples?: number; seed?: number } = {}): Intervals {
  const values = Object.fromEntries(INTERVAL_METRICS.map((m) => [m, [] as number[]])) as Record<IntervalMetric, number[]>;
  for (const count of resamples(facts.truth.length, options.samples ?? BOOTSTRAP_SAMPLES, options.seed ?? 0)) {
    const m = weightedMetrics(facts, count);
    for (const name of INTERVAL_METRICS) values[name].push(m[name]);
  }
  return Object.fromEntries(INTERVAL_METRICS.map((m) => [m, intervalOf(values[m])])) as Intervals;
}

/**
 * B minus A on the same rows: the observed difference of each metric and its paired 95% interval.
 * Rows must be the same movies in the same order with the same true genres (the caller checks).
 */
export function pairedDifference(a: RowFacts, b: RowFacts, options: { samples?: number; seed?: number } = {}): Record<IntervalMetric, { difference: number; interval: [number, number] }> {
  const ones = new Uint32Array(a.truth.length).fill(1);
  const [fullA, fullB] = [weightedMetrics(a, ones), weightedMetrics(b, ones)];
  const values = Object.fromEntries(INTERVAL_METRICS.map((m) => [m, [] as number[]])) as Record<IntervalMetric, number[]>;
  for (const count of resamples(a.truth.length, options.samples ?? BOOTSTRAP_SAMPLES, options.seed ?? 0)) {
    const [ma, mb] = [weightedMetrics(a, count), weightedMetrics(b, count)];
    for (const name of INTERVAL_METRICS) values[name].push(mb[name] - ma[name]);
  }
  return Object.fromEntries(INTERVAL_METRICS.map((m) => [m, { difference: fullB[m] - fullA[m], interval: intervalOf(values[m]) }])) as never;
}

/**
 * McNemar's exact test for accuracy on paired rows: of the rows exactly one run gets right, is the
 * split further from even than chance allows? Two-sided binomial p-value on the discordant rows.
 */
export function mcnemar(a: RowFacts, b: RowFacts): { only_a: number; only_b: number; p_value: number } {
  let onlyA = 0;
  let onlyB = 0;
  for (let r = 0; r < a.truth.length; r++) {
    const [ra, rb] = [a.predicted[r] === a.truth[r], b.predicted[r] === b.truth[r]];
    if (ra && !rb) onlyA++;
    if (rb && !ra) onlyB++;
  }
  const n = onlyA + onlyB;
  // P(X <= min) for X ~ Binomial(n, 1/2), in logs to stay finite for large n.
  let tail = 0;
  const logHalfN = n * Math.log(0.5);
  let logChoose = 0;
  for (let i = 0; i <= Math.min(onlyA, onlyB); i++) {
    if (i > 0) logChoose += Math.log(n - i + 1) - Math.log(i);
    tail += Math.exp(logChoose + logHalfN);
  }
  return { only_a: onlyA, only_b: onlyB, p_value: n ? Math.min(1, 2 * tail) : 1 };
}
