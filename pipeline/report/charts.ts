import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { Metrics } from '../metrics/index.js';
import type { EpochRecord } from '../train/artifact.js';
import type { TokenStatsFile } from '../tokenize/artifact.js';

/**
 * The report's charts: Vega-Lite specs rendered to SVG in Node, so the page needs no script and
 * no network. Hover text comes from each mark's `description`, which Vega writes as an
 * aria-label; `renderChart` turns it into an SVG <title>, which browsers show as a tooltip.
 */

const FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
export const PALETTE = { model: '#3b5bdb', baseline: '#adb5bd', good: '#2b8a3e', bad: '#c92a2a', train: '#3b5bdb', test: '#f08c00' };

const CONFIG = {
  font: FONT,
  view: { stroke: null },
  axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 500, gridColor: '#eef0f3', domainColor: '#ced4da', tickColor: '#ced4da' },
  legend: { labelFontSize: 11, titleFontSize: 12, orient: 'top' },
  title: { fontSize: 13, fontWeight: 600, anchor: 'start' },
} as const;

export async function renderChart(spec: TopLevelSpec): Promise<string> {
  const vegaSpec = compile({ ...spec, config: { ...CONFIG, ...(spec.config ?? {}) } } as TopLevelSpec).spec;
  const view = new vega.View(vega.parse(vegaSpec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg
    .replace(/<path aria-label="([^"]*)" role="graphics-symbol"([^>]*?)\/>/g, '<path aria-label="$1" role="graphics-symbol"$2><title>$1</title></path>')
    .replace(/^<svg /, '<svg role="img" ');
}

const percent = (x: number) => `${(100 * x).toFixed(1)}%`;

export type ConfusionNormalization = 'true' | 'pred' | 'all' | 'none';

const NORMALIZED = { true: 'share of true genre', pred: 'share of predicted genre', all: 'share of all movies', none: 'movies' } as const;

/**
 * Rows are the true genre, columns the predicted one, as scikit-learn's ConfusionMatrixDisplay
 * draws them. Genres are ordered by support (most test movies first), every non-empty cell shows
 * its count (a printout or a CI preview keeps them), and the colour is the count normalized as
 * `report.confusion_normalize` says: by row (`true`, the default: rare genres stay readable), by
 * column (`pred`), over all cells (`all`) or not at all (`none`).
 */
export function confusionSpec(metrics: Metrics, normalize: ConfusionNormalization = 'true', width = 760): TopLevelSpec {
  const { confusion } = metrics;
  const rowTotal = metrics.labels.map((_, i) => confusion[i]!.reduce((a, b) => a + b, 0));
  const colTotal = metrics.labels.map((_, j) => confusion.reduce((a, row) => a + row[j]!, 0));
  const all = rowTotal.reduce((a, b) => a + b, 0);
  const order = metrics.labels.map((label, i) => ({ label, i })).sort((a, b) => rowTotal[b.i]! - rowTotal[a.i]! || a.label.localeCompare(b.label));
  const labels = order.map((o) => o.label);
  const values = order.flatMap(({ label: truth, i }) =>
    order.map(({ label: predicted, i: j }) => {
      const count = confusion[i]![j]!;
      const denominator = normalize === 'true' ? rowTotal[i]! : normalize === 'pred' ? colTotal[j]! : normalize === 'all' ? all : 1;
      const value = denominator ? count / denominator : 0;
      const shown = normalize === 'none' ? String(count) : `${count} of ${denominator} (${percent(value)})`;
      return { truth, predicted, count, value, hover: `true ${truth}, predicted ${predicted}: ${shown}` };
    }),
  );
  // Sized to its card: the cells share the width, within what keeps a count legible.
  const cell = Math.max(16, Math.min(40, Math.floor(width / labels.length)));
  const maxValue = normalize === 'none' ? Math.max(1, ...values.map((v) => v.value)) : normalize === 'all' ? Math.max(1e-9, ...values.map((v) => v.value)) : 1;
  return {
    data: { values },
    width: cell * labels.length,
    height: cell * labels.length,
    layer: [
      {
        mark: { type: 'rect', stroke: 'white', strokeWidth: 0.5 },
        encoding: {
          x: { field: 'predicted', type: 'nominal', sort: labels, title: 'predicted genre (most test movies first)', axis: { labelAngle: -50 } },
          y: { field: 'truth', type: 'nominal', sort: labels, title: 'true genre' },
          // Empty cells stay white, so the few that matter stand out in a 27 x 27 matrix.
          color: { condition: { test: 'datum.count === 0', value: '#f8f9fa' }, field: 'value', type: 'quantitative', title: NORMALIZED[normalize], scale: { scheme: 'blues', domain: [0, maxValue] }, legend: { titleLimit: 240 } },
          description: { field: 'hover' },
        },
      },
      {
        // Counts in the cells themselves, not only on hover.
        mark: { type: 'text' as const, fontSize: cell >= 24 ? 10 : 8 },
        transform: [{ filter: 'datum.count > 0' }],
        encoding: {
          x: { field: 'predicted', type: 'nominal' as const, sort: labels },
          y: { field: 'truth', type: 'nominal' as const, sort: labels },
          text: { field: 'count', type: 'quantitative' as const },
          color: { condition: { test: `datum.value > ${maxValue / 2}`, value: 'white' }, value: '#212529' },
        },
      },
    ],
  } as TopLevelSpec;
}

/** Loss, accuracy and validation macro-F1 per epoch, with a rule at the epoch whose weights were kept. */
export function learningCurveSpec(history: EpochRecord[], keptEpoch: number | null): TopLevelSpec {
  const long = history.flatMap((h) => [
    { epoch: h.epoch, panel: 'loss', series: 'train', value: h.loss },
    ...(h.val_loss !== null && h.val_loss !== undefined ? [{ epoch: h.epoch, panel: 'loss', series: 'validation', value: h.val_loss }] : []),
    { epoch: h.epoch, panel: 'accuracy', series: 'train', value: h.accuracy },
    ...(h.val_accuracy !== null && h.val_accuracy !== undefined ? [{ epoch: h.epoch, panel: 'accuracy', series: 'validation', value: h.val_accuracy }] : []),
    ...(h.val_macro_f1 !== null && h.val_macro_f1 !== undefined ? [{ epoch: h.epoch, panel: 'validation macro-F1', series: 'validation', value: h.val_macro_f1 }] : []),
  ]);
  const panel = (name: string) => ({
    // Three panels across the section's width at 1366 px.
    width: 330,
    height: 160,
    title: name,
    layer: [
      {
        data: { values: long.filter((d) => d.panel === name).map((d) => ({ ...d, hover: `epoch ${d.epoch} ${d.series} ${name}: ${d.value.toFixed(4)}` })) },
        mark: { type: 'line' as const, point: true },
        encoding: {
          x: { field: 'epoch', type: 'quantitative' as const, axis: { tickMinStep: 1 } },
          y: { field: 'value', type: 'quantitative' as const, title: null, scale: { zero: false } },
          color: { field: 'series', type: 'nominal' as const, title: null, scale: { domain: ['train', 'validation'], range: [PALETTE.train, PALETTE.test] } },
          description: { field: 'hover' },
        },
      },
      ...(keptEpoch
        ? [
            {
              data: { values: [{ epoch: keptEpoch, hover: `weights kept from epoch ${keptEpoch}` }] },
              mark: { type: 'rule' as const, strokeDash: [4, 3], color: '#868e96' },
              encoding: { x: { field: 'epoch', type: 'quantitative' as const }, description: { field: 'hover' } },
            },
          ]
        : []),
    ],
  });
  return { hconcat: ['loss', 'accuracy', 'validation macro-F1'].map(panel), resolve: { scale: { color: 'shared' } } } as TopLevelSpec;
}

/** Accuracy against mean confidence per bin; a calibrated model sits on the diagonal. */
export function reliabilitySpec(metrics: Metrics): TopLevelSpec {
  const bins = metrics.reliability.filter((b) => b.count > 0).map((b) => ({
    ...b,
    middle: (b.lower + b.upper) / 2,
    hover: `confidence ${b.lower.toFixed(2)}–${b.upper.toFixed(2)}: ${b.count} rows, accuracy ${percent(b.accuracy)}, mean confidence ${percent(b.confidence)}`,
  }));
  // Below the diagram, how many movies each bin holds: one movie at 0.9 confidence is no evidence.
  const histogram = {
    width: 360,
    height: 70,
    data: { values: bins },
    layer: [
      {
        mark: { type: 'bar' as const, color: PALETTE.baseline },
        encoding: {
          x: { field: 'lower', type: 'quantitative' as const, bin: 'binned' as const, scale: { domain: [0, 1] }, title: 'confidence (top-1 probability)' },
          x2: { field: 'upper' },
          y: { field: 'count', type: 'quantitative' as const, title: 'movies' },
          description: { field: 'hover' },
        },
      },
      {
        mark: { type: 'text' as const, dy: -5, fontSize: 9 },
        encoding: { x: { field: 'middle', type: 'quantitative' as const }, y: { field: 'count', type: 'quantitative' as const }, text: { field: 'count', type: 'quantitative' as const } },
      },
    ],
  };
  const diagram = {
    width: 360,
    height: 220,
    title: `expected calibration error ${metrics.expected_calibration_error.toFixed(3)}`,
    layer: [
      {
        data: { values: bins },
        mark: { type: 'bar', color: PALETTE.model, opacity: 0.85 },
        encoding: {
          x: { field: 'lower', type: 'quantitative', bin: 'binned', scale: { domain: [0, 1] }, title: 'confidence (top-1 probability)' },
          x2: { field: 'upper' },
          y: { field: 'accuracy', type: 'quantitative', scale: { domain: [0, 1] }, title: 'accuracy' },
          description: { field: 'hover' },
        },
      },
      {
        data: { values: [{ x: 0, y: 0 }, { x: 1, y: 1 }] },
        mark: { type: 'line', strokeDash: [4, 3], color: '#868e96' },
        encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'y', type: 'quantitative' } },
      },
      {
        // The count on each bar too: the diagram alone must not hide how little a bar may rest on.
        data: { values: bins },
        mark: { type: 'text', dy: -5, fontSize: 9, color: '#495057' },
        encoding: { x: { field: 'middle', type: 'quantitative' }, y: { field: 'accuracy', type: 'quantitative' }, text: { field: 'count', type: 'quantitative' } },
      },
    ],
  };
  return { vconcat: [diagram, histogram] } as TopLevelSpec;
}

/**
 * Share of each genre in train and test, side by side, genres ordered by their training rows
 * (most first), each train bar labelled with its count: the genres with a handful of rows, which
 * usually score 0, are the ones at the right.
 */
export function classDistributionSpec(counts: Record<string, Record<string, number>>, labels: string[]): TopLevelSpec {
  const totals: Record<string, number> = {};
  for (const label of labels) for (const [split, n] of Object.entries(counts[label] ?? {})) totals[split] = (totals[split] ?? 0) + n;
  const bySupport = [...labels].sort((a, b) => (counts[b]?.train ?? 0) - (counts[a]?.train ?? 0) || a.localeCompare(b));
  const values = bySupport.flatMap((genre) =>
    ['train', 'test']
      .filter((split) => totals[split])
      .map((split) => {
        const n = counts[genre]?.[split] ?? 0;
        return { genre, split, n, share: n / totals[split]!, hover: `${genre} in ${split}: ${n} rows (${percent(n / totals[split]!)})` };
      }),
  );
  // Headroom above the tallest bar, so that its count label stays inside the chart.
  const top = Math.max(0, ...values.map((v) => v.share)) * 1.15;
  const x = { field: 'genre', type: 'nominal', sort: bySupport, title: null, axis: { labelAngle: -50 } };
  const y = { field: 'share', type: 'quantitative', axis: { format: '%' }, title: 'share of split', scale: { domain: [0, top || 1] } };
  // The same two slots per genre in both layers, so that a count sits over its train bar.
  const xOffset = { field: 'split', type: 'nominal', sort: ['train', 'test'], scale: { domain: ['train', 'test'] } };
  return {
    data: { values },
    width: Math.max(260, labels.length * 24),
    height: 180,
    layer: [
      {
        mark: { type: 'bar' },
        encoding: {
          x,
          xOffset,
          y,
          color: { field: 'split', type: 'nominal', title: null, sort: ['train', 'test'], scale: { domain: ['train', 'test'], range: [PALETTE.train, PALETTE.test] } },
          description: { field: 'hover' },
        },
      },
      {
        transform: [{ filter: "datum.split === 'train'" }],
        mark: { type: 'text', dy: -4, fontSize: 8, color: '#495057' },
        encoding: { x, xOffset, y, text: { field: 'n', type: 'quantitative' } },
      },
    ],
  } as TopLevelSpec;
}


/** Tokens per description in bins of 8, with the truncation length marked. */
export function tokenLengthSpec(stats: TokenStatsFile): TopLevelSpec {
  const values = Object.entries(stats.splits).flatMap(([split, s]) =>
    s.histogram.map((n, k) => ({ split, lower: 8 * k, upper: 8 * k + 8, share: s.rows ? n / s.rows : 0, hover: `${split}: ${n} rows with ${8 * k}–${8 * k + 7} tokens` })),
  );
  const truncated = Object.entries(stats.splits).map(([split, s]) => `${split} ${percent(s.truncated_fraction)}`).join(', ');
  return {
    width: 420,
    height: 180,
    title: `truncated at ${stats.max_length} tokens: ${truncated}`,
    layer: [
      {
        data: { values },
        mark: { type: 'bar', opacity: 0.6, binSpacing: 0 },
        encoding: {
          x: { field: 'lower', type: 'quantitative', bin: 'binned', title: 'tokens per description (with [CLS] and [SEP])' },
          x2: { field: 'upper' },
          y: { field: 'share', type: 'quantitative', stack: null, axis: { format: '%' }, title: 'share of split' },
          color: { field: 'split', type: 'nominal', title: null, scale: { domain: ['train', 'test'], range: [PALETTE.train, PALETTE.test] } },
          description: { field: 'hover' },
        },
      },
      {
        data: { values: [{ x: stats.max_length, hover: `max_length ${stats.max_length}` }] },
        mark: { type: 'rule', strokeDash: [4, 3], color: PALETTE.bad },
        encoding: { x: { field: 'x', type: 'quantitative' }, description: { field: 'hover' } },
      },
    ],
  } as TopLevelSpec;
}

/** Wall-clock seconds per stage. */
export function timingSpec(stages: { stage: string; seconds: number }[]): TopLevelSpec {
  return {
    data: { values: stages.map((s) => ({ ...s, hover: `${s.stage}: ${s.seconds.toFixed(2)} s` })) },
    width: 360,
    height: 22 * stages.length,
    mark: { type: 'bar', color: PALETTE.model },
    encoding: {
      y: { field: 'stage', type: 'nominal', sort: stages.map((s) => s.stage), title: null },
      x: { field: 'seconds', type: 'quantitative', title: 'seconds (when the artifact was built)' },
      description: { field: 'hover' },
    },
  } as TopLevelSpec;
}

/** One genre's precision-recall curve for the small multiples. */
export interface GenreCurve {
  genre: string;
  support: number;
  ap: number;
  recall: number[];
  precision: number[];
}

/**
 * Precision-recall curves per genre, one small chart each, ordered by support (each titled with
 * its average precision and test rows). A step line, as average precision integrates it; at most
 * 80 points a genre.
 */
export function precisionRecallSpec(curves: GenreCurve[]): TopLevelSpec {
  const values = curves.flatMap((c) => {
    const step = Math.max(1, Math.ceil(c.recall.length / 80));
    const title = titleOf(c);
    const points = [{ recall: 0, precision: c.precision[0] ?? 1 }, ...c.recall.map((r, i) => ({ recall: r, precision: c.precision[i]! })).filter((_, i) => i % step === 0 || i === c.recall.length - 1)];
    return points.map((p) => ({ ...p, title, hover: `${c.genre}: recall ${p.recall.toFixed(2)}, precision ${p.precision.toFixed(2)}` }));
  });
  return {
    data: { values },
    facet: { field: 'title', type: 'nominal', title: null, sort: curves.map(titleOf), header: { labelFontSize: 10, labelLimit: 0 } },
    columns: 6,
    spec: {
      width: 125,
      height: 90,
      mark: { type: 'line', interpolate: 'step-after', color: PALETTE.model, strokeWidth: 1.5 },
      encoding: {
        x: { field: 'recall', type: 'quantitative', scale: { domain: [0, 1] }, axis: { tickCount: 2, title: 'recall' } },
        y: { field: 'precision', type: 'quantitative', scale: { domain: [0, 1] }, axis: { tickCount: 2, title: 'precision' } },
        description: { field: 'hover' },
      },
    },
    resolve: { axis: { x: 'independent', y: 'independent' } },
  } as TopLevelSpec;
}

const titleOf = (c: GenreCurve) => `${c.genre} AP ${c.ap.toFixed(2)} (${c.support})`;
