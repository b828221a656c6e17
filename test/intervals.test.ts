import { test } from 'node:test';
import assert from 'node:assert/strict';
import { computeMetrics } from '../pipeline/metrics/index.js';
import { bootstrapIntervals, mcnemar, pairedDifference, percentile, resamples, rowFacts, weightedMetrics, INTERVAL_LEVEL } from '../pipeline/metrics/bootstrap.js';
import { Rng } from '../pipeline/random.js';

/** A classifier's probabilities on `rows` rows of `labels` genres, right on about `skill` of them. */
function simulated(rows: number, labels: number, skill: number, seed: number) {
  const rng = new Rng(seed, 'simulated');
  const truth = Int32Array.from({ length: rows }, () => rng.int(labels));
  const probs = new Float32Array(rows * labels);
  for (let r = 0; r < rows; r++) {
    const guess = rng.next() < skill ? truth[r]! : rng.int(labels);
    for (let j = 0; j < labels; j++) probs[r * labels + j] = (j === guess ? 2 : 0) + rng.next();
    let total = 0;
    for (let j = 0; j < labels; j++) total += probs[r * labels + j]!;
    for (let j = 0; j < labels; j++) probs[r * labels + j]! /= total;
  }
  return { truth, probs };
}

test('each bootstrap resample\'s metrics equal computeMetrics on the resampled rows, and the interval is their percentiles', () => {
  const labels = ['a', 'b', 'c', 'd', 'e'];
  const { truth, probs } = simulated(150, labels.length, 0.6, 1);
  const facts = rowFacts(truth, probs, labels.length, 2);
  const independent: Record<string, number[]> = { accuracy: [], macro_f1: [], macro_precision: [], macro_recall: [], weighted_f1: [], top_k_accuracy: [], log_loss: [] };
  for (const count of resamples(truth.length, 200, 7)) {
    const rows = Array.from(count).flatMap((c, r) => Array<number>(c).fill(r));
    const m = computeMetrics(Int32Array.from(rows, (r) => truth[r]!), Float32Array.from(rows.flatMap((r) => Array.from(probs.subarray(r * 5, r * 5 + 5)))), labels, { topK: 2, bins: 10, majority: 0 });
    const lean = weightedMetrics(facts, count);
    const full = { accuracy: m.accuracy, macro_f1: m.macro.f1, macro_precision: m.macro.precision, macro_recall: m.macro.recall, weighted_f1: m.weighted.f1, top_k_accuracy: m.top_k_accuracy, log_loss: m.log_loss };
    for (const [name, value] of Object.entries(full)) {
      assert.ok(Math.abs(value - lean[name as keyof typeof lean]) < 1e-9, `${name}: ${value} vs ${lean[name as keyof typeof lean]}`);
      independent[name]!.push(value);
    }
  }
  const intervals = bootstrapIntervals(facts, { samples: 200, seed: 7 });
  for (const [name, values] of Object.entries(independent)) {
    const sorted = Float64Array.from(values).sort();
    const expected = [percentile(sorted, 0.025), percentile(sorted, 0.975)];
    assert.ok(Math.abs(intervals[name as keyof typeof intervals][0] - expected[0]!) < 1e-9 && Math.abs(intervals[name as keyof typeof intervals][1] - expected[1]!) < 1e-9, name);
  }
  // numpy.percentile([1, 2, 3, 4], [2.5, 97.5]) is [1.075, 3.925].
  assert.deepEqual([percentile([1, 2, 3, 4], 0.025), percentile([1, 2, 3, 4], 0.975)].map((x) => Number(x.toFixed(6))), [1.075, 3.925]);
});

test('the 95% accuracy interval covers a known accuracy in 93-97% of simulated test sets', () => {
  // Rows right with probability 0.7; 1,000 test sets of 300 rows, 400 resamples each (seeded: the same figure every run).
  const sims = 1000;
  let covered = 0;
  const rng = new Rng(11, 'coverage');
  for (let s = 0; s < sims; s++) {
    const truth = new Int32Array(300);
    const predicted = Int32Array.from(truth, () => (rng.next() < 0.7 ? 0 : 1));
    const facts = { truth, predicted, topKHit: new Uint8Array(300), logLoss: new Float64Array(300), labels: 2 };
    const [lo, hi] = bootstrapIntervals(facts, { samples: 400, seed: s }).accuracy;
    if (lo <= 0.7 && 0.7 <= hi) covered++;
  }
  const coverage = covered / sims;
  assert.ok(Math.abs(coverage - INTERVAL_LEVEL) <= 0.02, `coverage ${coverage}`);
});

test('paired comparisons: a run against itself differs by exactly 0; McNemar\'s exact p-value', () => {
  const { truth, probs } = simulated(200, 4, 0.5, 3);
  const facts = rowFacts(truth, probs, 4, 2);
  const same = pairedDifference(facts, facts, { samples: 100 });
  for (const d of Object.values(same)) assert.deepEqual([d.difference, ...d.interval], [0, 0, 0]);
  const better = rowFacts(truth, simulated(200, 4, 0.9, 3).probs, 4, 2);
  const diff = pairedDifference(facts, better, { samples: 300 });
  assert.ok(diff.accuracy.difference > 0.2 && diff.accuracy.interval[0] > 0, JSON.stringify(diff.accuracy));
  // b = 10 rows only A gets right, c = 2 only B: p = 2 * P(X <= 2), X ~ Binomial(12, 1/2) = 2 * 79 / 4096.
  const n = 12;
  const t = new Int32Array(n);
  const a = { truth: t, predicted: Int32Array.from({ length: n }, (_, i) => (i < 10 ? 0 : 1)), topKHit: new Uint8Array(n), logLoss: new Float64Array(n), labels: 2 };
  const b = { ...a, predicted: Int32Array.from({ length: n }, (_, i) => (i < 10 ? 1 : 0)) };
  const test = mcnemar(a, b);
  assert.deepEqual([test.only_a, test.only_b], [10, 2]);
  assert.ok(Math.abs(test.p_value - (2 * 79) / 4096) < 1e-12, String(test.p_value));
});
