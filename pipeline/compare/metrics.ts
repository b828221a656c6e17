import type { Metrics } from '../metrics/index.js';
import { readMetricsFile, readPredictions, type PredictionRow } from '../evaluate/artifact.js';
import { rowFacts, type RowFacts } from '../metrics/bootstrap.js';

/**
 * The headline metrics by the names that sweeps, `diff` and the gate use, with which direction
 * is better. One list, so a leaderboard, a diff and a baseline file all speak the same names.
 */
export const METRICS = {
  accuracy: { read: (m: Metrics) => m.accuracy, higherIsBetter: true },
  top_k_accuracy: { read: (m: Metrics) => m.top_k_accuracy, higherIsBetter: true },
  macro_f1: { read: (m: Metrics) => m.macro.f1, higherIsBetter: true },
  macro_precision: { read: (m: Metrics) => m.macro.precision, higherIsBetter: true },
  macro_recall: { read: (m: Metrics) => m.macro.recall, higherIsBetter: true },
  weighted_f1: { read: (m: Metrics) => m.weighted.f1, higherIsBetter: true },
  log_loss: { read: (m: Metrics) => m.log_loss, higherIsBetter: false },
  ece: { read: (m: Metrics) => m.expected_calibration_error, higherIsBetter: false },
} as const;

export type MetricName = keyof typeof METRICS;
export const METRIC_NAMES = Object.keys(METRICS) as MetricName[];
export const SPLITS = ['validation', 'test'] as const;
export type MetricSplit = (typeof SPLITS)[number];

/** `validation.macro_f1` -> its parts; the error names the choices. */
export function parseMetricRef(ref: string): { split: MetricSplit; name: MetricName } | string {
  const [split, name, ...rest] = ref.split('.');
  if (rest.length || !SPLITS.includes(split as MetricSplit) || !METRIC_NAMES.includes(name as MetricName)) {
    return `expected <split>.<metric> with split ${SPLITS.join(' or ')} and metric one of ${METRIC_NAMES.join(', ')}, got "${ref}"`;
  }
  return { split: split as MetricSplit, name: name as MetricName };
}

/** An evaluate artifact's metrics as split -> name -> value (splits without genres are absent). */
export function readMetrics(evaluateDir: string): Partial<Record<MetricSplit, Record<MetricName, number>>> {
  const all = readMetricsFile(evaluateDir);
  const out: Partial<Record<MetricSplit, Record<MetricName, number>>> = {};
  for (const split of SPLITS) {
    const m = all[split];
    if (m) out[split] = Object.fromEntries(METRIC_NAMES.map((name) => [name, METRICS[name].read(m)])) as Record<MetricName, number>;
  }
  return out;
}

/** The 95% bootstrap intervals of an evaluate artifact's headline metrics, split -> name -> [lo, hi] (absent for a metric without one, e.g. ece). */
export function readIntervals(evaluateDir: string): Partial<Record<MetricSplit, Partial<Record<MetricName, [number, number]>>>> {
  const all = readMetricsFile(evaluateDir);
  const out: Partial<Record<MetricSplit, Partial<Record<MetricName, [number, number]>>>> = {};
  for (const split of SPLITS) if (all[split]?.intervals) out[split] = all[split]!.intervals as Partial<Record<MetricName, [number, number]>>;
  return out;
}

/** Positive when `b` is better than `a`. */
export function improvement(name: MetricName, a: number, b: number): number {
  return METRICS[name].higherIsBetter ? b - a : a - b;
}

/**
 * Two evaluate artifacts' rows of one split, ready for a paired comparison, when they scored the
 * same movies with the same true genres over the same genre list; otherwise why not.
 */
export async function pairedRows(dirA: string, dirB: string, split: MetricSplit, read: (dir: string, split: MetricSplit) => Promise<PredictionRow[]> = readPredictions): Promise<{ a: RowFacts; b: RowFacts } | { reason: string }> {
  const [metricsA, metricsB] = [readMetricsFile(dirA)[split], readMetricsFile(dirB)[split]];
  if (!metricsA || !metricsB) return { reason: `a run has no ${split} metrics` };
  if (JSON.stringify(metricsA.labels) !== JSON.stringify(metricsB.labels)) return { reason: 'the runs have different genre lists' };
  const [rowsA, rowsB] = await Promise.all([read(dirA, split), read(dirB, split)]);
  if (rowsA.length !== rowsB.length || rowsA.some((r, i) => r.id !== rowsB[i]!.id || r.true_genre !== rowsB[i]!.true_genre)) return { reason: `the runs scored different ${split} rows (another data set or split)` };
  const labels = metricsA.labels;
  const facts = (rows: PredictionRow[], k: number) => rowFacts(Int32Array.from(rows, (r) => labels.indexOf(r.true_genre!)), Float32Array.from(rows.flatMap((r) => r.probs)), labels.length, k);
  return { a: facts(rowsA, metricsA.top_k), b: facts(rowsB, metricsB.top_k) };
}
