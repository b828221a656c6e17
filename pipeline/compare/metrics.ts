import type { Metrics } from '../metrics/index.js';
import { readMetricsFile } from '../evaluate/artifact.js';

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

/** Positive when `b` is better than `a`. */
export function improvement(name: MetricName, a: number, b: number): number {
  return METRICS[name].higherIsBetter ? b - a : a - b;
}
