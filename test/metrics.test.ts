import { test } from 'node:test';
import assert from 'node:assert/strict';
import { computeMetrics } from '../pipeline/metrics/index.js';

const close = (actual: number, expected: number, what: string) => assert.ok(Math.abs(actual - expected) < 1e-9, `${what}: ${actual} vs ${expected}`);

// Three labels; "c" occurs in neither the truth nor the predictions, "b" is never predicted.
// rows: truth a a a b b ; predicted a a b a a (as argmax of the probabilities below)
const labels = ['a', 'b', 'c'];
const truth = [0, 0, 0, 1, 1];
const probs = Float32Array.from([
  0.7, 0.2, 0.1,
  0.6, 0.3, 0.1,
  0.3, 0.6, 0.1,
  0.5, 0.4, 0.1,
  0.8, 0.05, 0.15,
]);

test('per-class precision, recall and F1 as scikit-learn computes them', () => {
  const m = computeMetrics(truth, probs, labels, { topK: 2, bins: 15, majority: 0 });
  // a: predicted 4 times, 2 right -> P 0.5; support 3 -> R 2/3; F1 = 2*0.5*(2/3)/(0.5+2/3) = 4/7
  close(m.per_class.a!.precision, 0.5, 'P(a)');
  close(m.per_class.a!.recall, 2 / 3, 'R(a)');
  close(m.per_class.a!.f1, 4 / 7, 'F1(a)');
  // b: predicted once, wrong -> P 0; support 2, 0 found -> R 0; F1 0 (not NaN)
  assert.deepEqual(m.per_class.b, { precision: 0, recall: 0, f1: 0, support: 2 });
  // c: absent and never predicted -> zeros, left out of the averages
  assert.deepEqual(m.per_class.c, { precision: 0, recall: 0, f1: 0, support: 0 });
  close(m.accuracy, 2 / 5, 'accuracy');
  close(m.macro.precision, 0.25, 'macro P over a and b');
  close(m.macro.recall, 1 / 3, 'macro R');
  close(m.macro.f1, 2 / 7, 'macro F1');
  close(m.weighted.f1, (3 * (4 / 7)) / 5, 'weighted F1');
  assert.deepEqual(m.confusion, [[2, 1, 0], [2, 0, 0], [0, 0, 0]]);
});

test('a class predicted but absent from the split counts in the macro average with precision 0', () => {
  const m = computeMetrics([0, 0], Float32Array.from([0.9, 0.1, 0.2, 0.8]), ['a', 'b'], { topK: 1, bins: 10, majority: 0 });
  assert.deepEqual(m.per_class.b, { precision: 0, recall: 0, f1: 0, support: 0 });
  // a: P 1, R 0.5, F1 2/3; b: 0 -> macro F1 1/3
  close(m.macro.f1, 1 / 3, 'macro F1');
  close(m.weighted.f1, 2 / 3, 'weighted F1 (b has no weight)');
});

test('top-k accuracy, log loss, calibration error and the majority baseline', () => {
  const m = computeMetrics(truth, probs, labels, { topK: 2, bins: 4, majority: 0 });
  // top-2 misses only row 4 (truth b with p 0.05, third).
  close(m.top_k_accuracy, 4 / 5, 'top-2');
  const expectedLoss = -(Math.log(0.7) + Math.log(0.6) + Math.log(0.3) + Math.log(0.4) + Math.log(0.05)) / 5;
  assert.ok(Math.abs(m.log_loss - expectedLoss) < 1e-6, `${m.log_loss} vs ${expectedLoss}`);
  // Confidences 0.7 0.6 0.6 0.5 (right, right, wrong, wrong) fall in [0.5, 0.75): accuracy 0.5,
  // confidence 0.6; 0.8 (wrong) in [0.75, 1]: accuracy 0, confidence 0.8.
  const ece = (4 * Math.abs(0.5 - 0.6) + 1 * Math.abs(0 - 0.8)) / 5;
  assert.ok(Math.abs(m.expected_calibration_error - ece) < 1e-6, `${m.expected_calibration_error} vs ${ece}`);
  assert.equal(m.reliability.length, 4);
  assert.deepEqual(m.reliability.map((b) => b.count), [0, 0, 4, 1]);
  assert.deepEqual(m.majority_baseline, { label: 'a', accuracy: 3 / 5 });
});

test('summary.md shows genre names from the data as text: no HTML, no image, no broken table', async () => {
  const { summaryMarkdown } = await import('../pipeline/report/report.js');
  const labels = ['<script>alert(1)</script>', '![x](https://example.com/t.png)', 'sci|fi', 'drama'];
  const truth = [0, 1, 2, 3, 0, 1, 2, 3];
  const probs = Float32Array.from(truth.flatMap((t) => labels.map((_, l) => (l === t ? 0.7 : 0.1))));
  const metrics = computeMetrics(truth, probs, labels, { topK: 2, bins: 5, majority: 0.25 });
  const md = summaryMarkdown({ run: 'r', split: 'test', metrics, trainCounts: Object.fromEntries(labels.map((l) => [l, 2])), randomModel: false });
  assert.doesNotMatch(md, /<script|<img/);
  assert.doesNotMatch(md, /!\[x\]\(/, 'no image syntax survives');
  assert.match(md, /&lt;script&gt;alert\\\(1\\\)&lt;\/script&gt;/);
  const genreRows = md.split('\n').filter((l) => l.startsWith('| ') && / \| \d+ \|$/.test(l));
  assert.ok(genreRows.length >= 4, md);
  for (const row of genreRows) assert.equal(row.replace(/\\\|/g, '').split('|').length, 7, `one cell per column: ${row}`);
});

test('best and worst genres are marked only among genres with support, never through a tie, and F1 0 is never best', async () => {
  const { bestAndWorst } = await import('../pipeline/report/report.js');
  const g = (genre: string, f1: number) => ({ genre, f1, precision: f1, recall: f1, support: 10 });
  // The real sample's shape: a few genres learned, most at F1 0.
  const ranked = [g('drama', 0.6), g('documentary', 0.5), g('comedy', 0.2), ...['horror', 'western', 'war', 'music', 'sport'].map((n) => g(n, 0))];
  const marks = bestAndWorst(ranked, 3);
  assert.deepEqual(marks.best.map((r) => r.genre), ['drama', 'documentary', 'comedy']);
  assert.deepEqual(marks.worst, [], 'five genres tie at 0: none of them is "the worst three"');
  assert.deepEqual(marks.tiedWorst.map((r) => r.genre), ['sport', 'music', 'war', 'western', 'horror']);
  const tiedAtBestCut = bestAndWorst([g('a', 0.9), g('b', 0.5), g('c', 0.5), g('d', 0.1), g('e', 0.05), g('f', 0.01)], 2);
  assert.deepEqual(tiedAtBestCut.best.map((r) => r.genre), ['a'], 'b and c tie at the cut of two');
  assert.deepEqual(tiedAtBestCut.worst.map((r) => r.genre), ['f', 'e']);
  assert.deepEqual(bestAndWorst([g('x', 0), g('y', 0)], 3).best, [], 'F1 0 is never best');
});

test('the precision-recall curve equals the one from sorting rows by score, ties and all', async () => {
  const { curve } = await import('../pipeline/metrics/precision-recall.js');
  const { Rng } = await import('../pipeline/random.js');
  // The textbook walk: rows by score, highest first; rows that tie end one threshold together.
  const byRows = (scores: number[], positive: number[]) => {
    const order = scores.map((_, i) => i).sort((a, b) => scores[b]! - scores[a]!);
    const positives = positive.reduce((a, b) => a + b, 0);
    const recall: number[] = [];
    const precision: number[] = [];
    let tp = 0;
    let ap = 0;
    let previousRecall = 0;
    order.forEach((row, k) => {
      tp += positive[row]!;
      if (k + 1 < order.length && scores[order[k + 1]!] === scores[row]) return;
      recall.push(tp / positives);
      precision.push(tp / (k + 1));
      ap += (tp / positives - previousRecall) * (tp / (k + 1));
      previousRecall = tp / positives;
    });
    return { ap, recall, precision };
  };
  const rng = new Rng(9, 'pr-curve');
  for (const levels of [3, 20, 0]) {
    // Scores on a few levels tie often (0: continuous scores, no ties); the top and the bottom rows can be either class.
    const scores = Array.from({ length: 500 }, () => (levels ? Math.floor(rng.next() * levels) / levels : rng.next()));
    const positive = scores.map((s) => (rng.next() < 0.2 + s * 0.5 ? 1 : 0));
    assert.deepEqual(curve(scores, positive), byRows(scores, positive), `${levels} levels`);
    assert.deepEqual(curve(Float32Array.from(scores), positive), byRows(Array.from(Float32Array.from(scores)), positive), `${levels} levels, float32`);
  }
  assert.deepEqual(curve([0.3, 0.3, 0.3], [1, 1, 1]), { ap: 1, recall: [1], precision: [1] }, 'every row positive, one threshold');
  assert.ok(Number.isNaN(curve([0.1, 0.2], [0, 0]).ap), 'no positive row: undefined');
  // A NaN score matches no threshold: refused, not walked forever.
  assert.throws(() => curve([0.4, NaN, 0.1], [1, 0, 0]), /row 1 is NaN/);
  assert.throws(() => curve(Float32Array.from([NaN, NaN]), [1, 1]), /row 0 is NaN/);
});

test('evaluate refuses a model whose probabilities are not finite, naming the split and the rows', async () => {
  const { finiteProbabilities } = await import('../pipeline/evaluate/evaluate.js');
  const { UserError } = await import('../pipeline/errors.js');
  const fine = Float32Array.from([0.25, 0.75, 1, 0]);
  assert.equal(finiteProbabilities(fine, 2, 'test'), fine);
  const diverged = Float32Array.from([0.5, 0.5, NaN, NaN, 0.5, Infinity, 1, 0]);
  assert.throws(
    () => finiteProbabilities(diverged, 2, 'validation'),
    (error: unknown) => error instanceof UserError && /not finite for 2 validation row\(s\) \(the first: row 1\).*train\.optimizer\.lr/.test(error.message),
  );
});

test('average precision equals scikit-learn\'s example and, without ties, the mean precision at each positive\'s rank', async () => {
  const { averagePrecision, precisionRecall } = await import('../pipeline/metrics/precision-recall.js');
  // scikit-learn's average_precision_score docstring: y_true [0, 0, 1, 1], scores [0.1, 0.4, 0.35, 0.8] -> 0.8333.
  assert.ok(Math.abs(averagePrecision([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) - 0.8333333333333333) < 1e-12);
  // Ties are one threshold: two rows at 0.5, one positive -> precision 1/2 at recall 1.
  assert.equal(averagePrecision([0.5, 0.5], [1, 0]), 0.5);
  const { Rng } = await import('../pipeline/random.js');
  const rng = new Rng(5, 'ap');
  const scores = Array.from({ length: 300 }, () => rng.next());
  const positive = scores.map((s) => (rng.next() < s * 0.6 ? 1 : 0));
  const ranked = scores.map((s, i) => [s, positive[i]!] as const).sort((a, b) => b[0] - a[0]);
  let hits = 0;
  const precisions: number[] = [];
  ranked.forEach(([, p], i) => {
    if (p) precisions.push(++hits / (i + 1));
  });
  const independent = precisions.reduce((a, b) => a + b, 0) / precisions.length;
  assert.ok(Math.abs(averagePrecision(scores, positive) - independent) < 1e-12);
  // Per genre one against the rest; macro over the genres present; micro pools every pair.
  const probs = Float32Array.from([0.7, 0.2, 0.1, 0.1, 0.8, 0.1, 0.3, 0.3, 0.4, 0.6, 0.3, 0.1]);
  const pr = precisionRecall([0, 1, 0, 0], probs, ['a', 'b', 'c']);
  assert.deepEqual(Object.keys(pr.per_class), ['a', 'b'], 'c has no row: no AP');
  assert.ok(Math.abs(pr.macro - (pr.per_class.a! + pr.per_class.b!) / 2) < 1e-12);
  assert.ok(Math.abs(pr.micro - averagePrecision(Array.from(probs), [1, 0, 0, 0, 1, 0, 1, 0, 0, 1, 0, 0])) < 1e-12);
});
