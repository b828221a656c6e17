/**
 * Classification metrics with scikit-learn's conventions (`classification_report`,
 * `log_loss`): a class never predicted has precision 0, not NaN; macro and weighted averages run
 * over the classes that occur in the true or the predicted labels.
 */
export interface ClassMetrics {
  precision: number;
  recall: number;
  f1: number;
  support: number;
}

export interface Averages {
  precision: number;
  recall: number;
  f1: number;
}

export interface ReliabilityBin {
  lower: number;
  upper: number;
  count: number;
  confidence: number;
  accuracy: number;
}

export interface Metrics {
  rows: number;
  accuracy: number;
  top_k: number;
  top_k_accuracy: number;
  macro: Averages;
  weighted: Averages;
  per_class: Record<string, ClassMetrics>;
  /** confusion[i][j]: rows of true label i predicted as j, in `labels` order. */
  confusion: number[][];
  labels: string[];
  log_loss: number;
  expected_calibration_error: number;
  reliability: ReliabilityBin[];
  majority_baseline: { label: string; accuracy: number };
  /** Average precision, one genre against the rest (metrics/precision-recall.ts), when evaluate computed it. */
  average_precision?: { macro: number; micro: number; per_class: Record<string, number> };
  /** 95% intervals of the headline metrics (metrics/bootstrap.ts), when evaluate computed them. */
  intervals?: Record<'accuracy' | 'macro_f1' | 'macro_precision' | 'macro_recall' | 'weighted_f1' | 'top_k_accuracy' | 'log_loss', [number, number]>;
}

/**
 * @param truth   true label index per row
 * @param probs   row-major probabilities, `labels.length` per row
 * @param majority the most frequent training label (the baseline predicts it for every row)
 */
export function computeMetrics(truth: ArrayLike<number>, probs: Float32Array, labels: string[], options: { topK: number; bins: number; majority: number }): Metrics {
  const rows = truth.length;
  const tally = tallyRows(truth, probs, labels.length);
  const ranks = tallyRanks(truth, probs, labels.length, options);
  const { perClass, present } = perClassMetrics(tally.confusion, labels);
  const reliability = ranks.bins.map((bin, b) => ({
    lower: b / options.bins,
    upper: (b + 1) / options.bins,
    count: bin.count,
    confidence: bin.count ? bin.confidence / bin.count : 0,
    accuracy: bin.count ? bin.correct / bin.count : 0,
  }));
  const ece = reliability.reduce((a, bin) => a + (bin.count / Math.max(1, rows)) * Math.abs(bin.accuracy - bin.confidence), 0);
  let majorityCorrect = 0;
  for (let r = 0; r < rows; r++) if (truth[r] === options.majority) majorityCorrect++;
  const share = (count: number) => (rows ? count / rows : 0);
  return {
    rows,
    accuracy: share(tally.correct),
    top_k: options.topK,
    top_k_accuracy: share(ranks.topKCorrect),
    macro: average(perClass, present, labels, () => 1),
    weighted: average(perClass, present, labels, (i) => perClass[labels[i]!]!.support),
    per_class: perClass,
    confusion: tally.confusion,
    labels,
    log_loss: share(tally.logLoss),
    expected_calibration_error: ece,
    reliability,
    majority_baseline: { label: labels[options.majority]!, accuracy: share(majorityCorrect) },
  };
}

/**
 * What training watches each epoch on the validation rows: log loss, accuracy and macro-F1, the
 * same arithmetic as computeMetrics. Apart from it so that train's key covers these three and
 * not the calibration or top-k code that only evaluate runs.
 */
export function validationScores(truth: ArrayLike<number>, probs: Float32Array, labels: string[]): { log_loss: number; accuracy: number; macro_f1: number } {
  const rows = truth.length;
  const tally = tallyRows(truth, probs, labels.length);
  const { perClass, present } = perClassMetrics(tally.confusion, labels);
  return { log_loss: rows ? tally.logLoss / rows : 0, accuracy: rows ? tally.correct / rows : 0, macro_f1: average(perClass, present, labels, () => 1).f1 };
}

/** Precision, recall and F1 averaged over the classes present, each weighted by `weight`. */
function average(perClass: Record<string, ClassMetrics>, present: number[], labels: string[], weight: (i: number) => number): Averages {
  const total = present.reduce((a, i) => a + weight(i), 0) || 1;
  const mean = (field: keyof Averages) => present.reduce((a, i) => a + perClass[labels[i]!]![field] * weight(i), 0) / total;
  return { precision: mean('precision'), recall: mean('recall'), f1: mean('f1') };
}

/** One pass over the rows: the confusion matrix, hits and the summed log loss. */
function tallyRows(truth: ArrayLike<number>, probs: Float32Array, k: number) {
  const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  let correct = 0;
  let logLoss = 0;
  for (let r = 0; r < truth.length; r++) {
    const row = probs.subarray(r * k, (r + 1) * k);
    const best = argmax(row);
    const t = truth[r]!;
    confusion[t]![best]!++;
    if (best === t) correct++;
    // scikit-learn clips probabilities to [eps, 1 - eps] before the log.
    const p = Math.min(Math.max(row[t]! / sum(row), 1e-15), 1 - 1e-15);
    logLoss -= Math.log(p);
  }
  return { confusion, correct, logLoss };
}

/** A second pass for evaluate: top-k hits and the confidence bins of the reliability diagram. */
function tallyRanks(truth: ArrayLike<number>, probs: Float32Array, k: number, options: { topK: number; bins: number }) {
  const bins = Array.from({ length: options.bins }, () => ({ count: 0, confidence: 0, correct: 0 }));
  let topKCorrect = 0;
  for (let r = 0; r < truth.length; r++) {
    const row = probs.subarray(r * k, (r + 1) * k);
    const best = argmax(row);
    const t = truth[r]!;
    // Top-k: the true label is among the k most probable (ties broken by index, as argsort is stable).
    let above = 0;
    for (let j = 0; j < k; j++) if (row[j]! > row[t]! || (row[j] === row[t] && j < t)) above++;
    if (above < options.topK) topKCorrect++;
    const confidence = row[best]!;
    const bin = bins[Math.min(options.bins - 1, Math.floor(confidence * options.bins))]!;
    bin.count++;
    bin.confidence += confidence;
    if (best === t) bin.correct++;
  }
  return { bins, topKCorrect };
}

function argmax(row: Float32Array): number {
  let best = 0;
  for (let j = 1; j < row.length; j++) if (row[j]! > row[best]!) best = j;
  return best;
}

/** Precision, recall, F1 and support per class, and which classes occur in the true or predicted labels. */
function perClassMetrics(confusion: number[][], labels: string[]) {
  const perClass: Record<string, ClassMetrics> = {};
  const present: number[] = [];
  for (let i = 0; i < labels.length; i++) {
    const tp = confusion[i]![i]!;
    const support = confusion[i]!.reduce((a, b) => a + b, 0);
    const predictedCount = confusion.reduce((a, row) => a + row[i]!, 0);
    const precision = predictedCount ? tp / predictedCount : 0;
    const recall = support ? tp / support : 0;
    const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
    perClass[labels[i]!] = { precision, recall, f1, support };
    if (support > 0 || predictedCount > 0) present.push(i);
  }
  return { perClass, present };
}

function sum(values: Float32Array): number {
  let total = 0;
  for (const v of values) total += v;
  return total;
}

/** The k most probable labels of one row, best first. */
export function topK(row: Float32Array, k: number): number[] {
  return Array.from(row.keys())
    .sort((a, b) => row[b]! - row[a]! || a - b)
    .slice(0, k);
}
