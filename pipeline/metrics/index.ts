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
}

/**
 * @param truth   true label index per row
 * @param probs   row-major probabilities, `labels.length` per row
 * @param majority the most frequent training label (the baseline predicts it for every row)
 */
export function computeMetrics(truth: ArrayLike<number>, probs: Float32Array, labels: string[], options: { topK: number; bins: number; majority: number }): Metrics {
  const k = labels.length;
  const rows = truth.length;
  const predicted = new Int32Array(rows);
  const confusion = labels.map(() => new Array<number>(k).fill(0));
  let correct = 0;
  let topKCorrect = 0;
  let logLoss = 0;
  const binCount = new Array<number>(options.bins).fill(0);
  const binConfidence = new Array<number>(options.bins).fill(0);
  const binCorrect = new Array<number>(options.bins).fill(0);

  for (let r = 0; r < rows; r++) {
    const row = probs.subarray(r * k, (r + 1) * k);
    let best = 0;
    for (let j = 1; j < k; j++) if (row[j]! > row[best]!) best = j;
    predicted[r] = best;
    const t = truth[r]!;
    confusion[t]![best]!++;
    if (best === t) correct++;
    // Top-k: the true label is among the k most probable (ties broken by index, as argsort is stable).
    let above = 0;
    for (let j = 0; j < k; j++) if (row[j]! > row[t]! || (row[j] === row[t] && j < t)) above++;
    if (above < options.topK) topKCorrect++;
    // scikit-learn clips probabilities to [eps, 1 - eps] before the log.
    const p = Math.min(Math.max(row[t]! / sum(row), 1e-15), 1 - 1e-15);
    logLoss -= Math.log(p);
    const confidence = row[best]!;
    const bin = Math.min(options.bins - 1, Math.floor(confidence * options.bins));
    binCount[bin]!++;
    binConfidence[bin]! += confidence;
    if (best === t) binCorrect[bin]!++;
  }

  const perClass: Record<string, ClassMetrics> = {};
  const present: number[] = [];
  for (let i = 0; i < k; i++) {
    const tp = confusion[i]![i]!;
    const support = confusion[i]!.reduce((a, b) => a + b, 0);
    const predictedCount = confusion.reduce((a, row) => a + row[i]!, 0);
    const precision = predictedCount ? tp / predictedCount : 0;
    const recall = support ? tp / support : 0;
    const f1 = precision + recall ? (2 * precision * recall) / (precision + recall) : 0;
    perClass[labels[i]!] = { precision, recall, f1, support };
    if (support > 0 || predictedCount > 0) present.push(i);
  }
  const average = (weight: (i: number) => number): Averages => {
    const total = present.reduce((a, i) => a + weight(i), 0) || 1;
    const mean = (field: keyof Averages) => present.reduce((a, i) => a + perClass[labels[i]!]![field] * weight(i), 0) / total;
    return { precision: mean('precision'), recall: mean('recall'), f1: mean('f1') };
  };
  const reliability: ReliabilityBin[] = binCount.map((count, b) => ({
    lower: b / options.bins,
    upper: (b + 1) / options.bins,
    count,
    confidence: count ? binConfidence[b]! / count : 0,
    accuracy: count ? binCorrect[b]! / count : 0,
  }));
  const ece = reliability.reduce((a, bin) => a + (bin.count / Math.max(1, rows)) * Math.abs(bin.accuracy - bin.confidence), 0);
  let majorityCorrect = 0;
  for (let r = 0; r < rows; r++) if (truth[r] === options.majority) majorityCorrect++;

  return {
    rows,
    accuracy: rows ? correct / rows : 0,
    top_k: options.topK,
    top_k_accuracy: rows ? topKCorrect / rows : 0,
    macro: average(() => 1),
    weighted: average((i) => perClass[labels[i]!]!.support),
    per_class: perClass,
    confusion,
    labels,
    log_loss: rows ? logLoss / rows : 0,
    expected_calibration_error: ece,
    reliability,
    majority_baseline: { label: labels[options.majority]!, accuracy: rows ? majorityCorrect / rows : 0 },
  };
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
