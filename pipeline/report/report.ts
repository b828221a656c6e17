import { writeFileSync } from 'node:fs';
import { cpus, totalmem, platform, arch, release } from 'node:os';
import { basename, join } from 'node:path';
import * as vega from 'vega';
import { version as vegaLiteVersion } from 'vega-lite';
import sharp from 'sharp';
import YAML from 'yaml';
import { info, warn, formatCount } from '../log.js';
import type { Manifest, ManifestBody } from '../artifacts/store.js';
import type { Metrics } from '../metrics/index.js';
import { rowFileOf } from '../ingest/artifact.js';
import { topColumns } from '../evaluate/artifact.js';
import { REPORT_FILE, SUMMARY_FILE } from './artifact.js';
import type { ReportRun } from './signature.js';
import { confusionSpec, classDistributionSpec, learningCurveSpec, precisionRecallSpec, reliabilitySpec, renderChart, timingSpec, tokenLengthSpec } from './charts.js';
import { curve } from '../metrics/precision-recall.js';
import { card, pickGallery, posterDataUri, type GalleryMovie } from './gallery.js';
import { delta, escapeHtml, figure, fixed, page, section } from './html.js';
import { codeProvenance } from '../artifacts/provenance.js';
import { featurizerLabel } from './references.js';

/**
 * What a model that always answers the most frequent training genre would score on the same rows.
 * The evaluate stage picked that genre and scored its accuracy; the other figures follow from it.
 */
export function majorityBaseline(metrics: Metrics, trainCounts: Record<string, number>) {
  const { label, accuracy: share } = metrics.majority_baseline;
  const bySize = [...metrics.labels].sort((a, b) => (trainCounts[b] ?? 0) - (trainCounts[a] ?? 0) || a.localeCompare(b));
  const support = (genre: string) => metrics.per_class[genre]?.support ?? 0;
  const f1 = share > 0 ? (2 * share) / (1 + share) : 0;
  return {
    label,
    accuracy: share,
    top_k_accuracy: bySize.slice(0, metrics.top_k).reduce((a, l) => a + support(l), 0) / metrics.rows,
    macro_f1: f1 / metrics.labels.length,
    weighted_f1: share * f1,
  };
}

interface Headline {
  name: string;
  /** The metric's name in metrics.json and the gate baseline. */
  key: 'accuracy' | 'macro_f1' | 'weighted_f1' | 'top_k_accuracy';
  value: number;
  baseline: number;
  /** Its 95% interval (evaluate's bootstrap), when metrics.json has one. */
  interval?: [number, number];
}

export function headline(metrics: Metrics, trainCounts: Record<string, number>): Headline[] {
  const base = majorityBaseline(metrics, trainCounts);
  const iv = metrics.intervals;
  return [
    { name: 'accuracy', key: 'accuracy', value: metrics.accuracy, baseline: base.accuracy, interval: iv?.accuracy },
    { name: 'macro-F1', key: 'macro_f1', value: metrics.macro.f1, baseline: base.macro_f1, interval: iv?.macro_f1 },
    { name: 'weighted-F1', key: 'weighted_f1', value: metrics.weighted.f1, baseline: base.weighted_f1, interval: iv?.weighted_f1 },
    { name: `top-${metrics.top_k} accuracy`, key: 'top_k_accuracy', value: metrics.top_k_accuracy, baseline: base.top_k_accuracy, interval: iv?.top_k_accuracy },
  ];
}

/** "0.532 (0.516-0.548)": a figure with its 95% interval, when there is one. */
export function withInterval(value: number, interval: [number, number] | undefined, digits = 3): string {
  return interval ? `${value.toFixed(digits)} (${interval[0].toFixed(digits)}-${interval[1].toFixed(digits)})` : value.toFixed(digits);
}

/** Genres with test rows, by F1 (then support), best first. */
export function rankGenres(metrics: Metrics): { genre: string; f1: number; precision: number; recall: number; support: number }[] {
  return Object.entries(metrics.per_class)
    .filter(([, m]) => m.support > 0)
    .map(([genre, m]) => ({ genre, ...m }))
    .sort((a, b) => b.f1 - a.f1 || b.support - a.support || a.genre.localeCompare(b.genre));
}

/**
 * The genres worth marking best and worst: only genres with test rows, at most `count` each, and
 * never a cut through a tie (three of 23 genres at F1 0.000 are not "the worst three"); a genre
 * with F1 0 is never best. What a tie leaves unmarked is said as a tie.
 */
export function bestAndWorst(ranked: RankedGenre[], count: number): { best: RankedGenre[]; worst: RankedGenre[]; tiedWorst: RankedGenre[] } {
  const cleanCut = (list: RankedGenre[], strictlyBetter: (a: RankedGenre, b: RankedGenre) => boolean) => {
    let k = Math.min(count, list.length);
    while (k > 0 && k < list.length && !strictlyBetter(list[k - 1]!, list[k]!)) k--;
    return list.slice(0, k);
  };
  const half = Math.floor(ranked.length / 2);
  const best = cleanCut(ranked, (a, b) => a.f1 > b.f1).filter((g) => g.f1 > 0).slice(0, half);
  const ascending = [...ranked].reverse();
  const worst = cleanCut(ascending, (a, b) => a.f1 < b.f1).filter((g) => !best.includes(g)).slice(0, half);
  const lowest = ascending[0];
  const tiedWorst = !worst.length && lowest ? ascending.filter((g) => g.f1 === lowest.f1) : [];
  return { best, worst, tiedWorst };
}

type RankedGenre = ReturnType<typeof rankGenres>[number];

/**
 * Text from the data as one Markdown table cell that shows exactly that text: no HTML (a
 * `<script>` or a remote `<img>` in a genre name stays text), no link or image syntax, no `|`
 * that would split the row. CI job summaries render this file.
 */
export function markdownText(text: string): string {
  return text
    .replace(/[\r\n]+/g, ' ')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/([\\`*_[\]()!|#~])/g, '\\$1');
}

/**
 * The headline metric's figure in the previous build of this run and in the gate baseline, on the
 * same split: what "did this retrain change anything" is answered by.
 */
export interface Deltas {
  previous?: { id: string; metrics: Metrics };
  baseline?: { path: string; values: Partial<Record<Headline['key'], { value: number; tolerance: number }>> };
}

const HEADLINE_READ: Record<Headline['key'], (m: Metrics) => number> = {
  accuracy: (m) => m.accuracy,
  macro_f1: (m) => m.macro.f1,
  weighted_f1: (m) => m.weighted.f1,
  top_k_accuracy: (m) => m.top_k_accuracy,
};

/** "vs previous build a2d55038 +0.004 · vs gate baseline 0.905 +0.000", per headline metric. */
function deltaParts(h: Headline, deltas: Deltas): { previous?: number; baseline?: { value: number; tolerance: number } } {
  return {
    previous: deltas.previous ? h.value - HEADLINE_READ[h.key](deltas.previous.metrics) : undefined,
    baseline: deltas.baseline?.values[h.key],
  };
}

/** The CI job summary: the headline against the baseline, and the five best and worst genres. */
export function summaryMarkdown(options: { run: string; split: string; metrics: Metrics; trainCounts: Record<string, number>; randomModel: boolean; featurizer?: string; references?: ReferenceColumn[]; deltas?: Deltas }): string {
  const { metrics } = options;
  const lines = [`## Genre classifier: run \`${options.run}\` (${options.split} split, ${formatCount(metrics.rows)} movies)`, ''];
  if (options.randomModel) lines.push('> **Random-weight demo model**: these figures show the pipeline works, not what BERT can do.', '');
  lines.push('| metric | model (95% interval) | majority baseline | difference |', '|---|---:|---:|---:|');
  for (const h of headline(metrics, options.trainCounts)) lines.push(`| ${h.name} | ${withInterval(h.value, h.interval)} | ${h.baseline.toFixed(3)} | ${h.value - h.baseline >= 0 ? '+' : ''}${(h.value - h.baseline).toFixed(3)} |`);
  const deltas = options.deltas ?? {};
  const signed3 = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(3)}`;
  if (deltas.previous) {
    const parts = headline(metrics, options.trainCounts).map((h) => `${h.name} ${signed3(deltaParts(h, deltas).previous!)}`);
    lines.push('', `**Against the previous build** (\`${deltas.previous.id}\`, \`make diff A=${deltas.previous.id.slice(-8)} B=${options.run}\` for the paired test): ${parts.join(' · ')}`);
  }
  if (deltas.baseline) {
    const parts = headline(metrics, options.trainCounts).flatMap((h) => {
      const b = deltaParts(h, deltas).baseline;
      return b ? [`${h.name} ${signed3(h.value - b.value)} (baseline ${b.value.toFixed(3)}, tolerance ${b.tolerance})`] : [];
    });
    if (parts.length) lines.push('', `**Against the gate baseline** (\`${markdownText(basename(deltas.baseline.path))}\`): ${parts.join(' · ')}`);
  }
  if (options.references?.length) {
    const figures = (m: Metrics) => `${m.accuracy.toFixed(3)} / ${m.macro.f1.toFixed(3)}`;
    const others = options.references.map((r) => `\`${r.run}\` (${markdownText(r.featurizer)}) ${figures(r.metrics)}`);
    lines.push('', `**Beside other runs** (accuracy / macro-F1 on the same rows): this run (${markdownText(options.featurizer ?? 'unknown')}) ${figures(metrics)} · ${others.join(' · ')} · majority ${metrics.majority_baseline.accuracy.toFixed(3)}`);
  }
  const ranked = rankGenres(metrics);
  const table = (title: string, rows: typeof ranked) => [
    '',
    `**${title}**`,
    '',
    '| genre | F1 | precision | recall | support |',
    '|---|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${markdownText(r.genre)} | ${r.f1.toFixed(3)} | ${r.precision.toFixed(3)} | ${r.recall.toFixed(3)} | ${r.support} |`),
  ];
  const { best, worst, tiedWorst } = bestAndWorst(ranked, 5);
  lines.push(...(best.length ? table('Best genres', best) : ['', '**Best genres**: none stands out (no genre has F1 above 0 without a tie at the cut).']));
  if (worst.length) lines.push(...table('Worst genres', worst));
  else if (tiedWorst.length) lines.push('', `**Worst genres**: ${tiedWorst.length} genres tie at F1 ${tiedWorst[0]!.f1.toFixed(3)}: ${tiedWorst.map((g) => markdownText(g.genre)).join(', ')}.`);
  return `${lines.join('\n')}\n`;
}

/** A reference run's figures on the same split, for the columns beside this run's. */
interface ReferenceColumn {
  run: string;
  featurizer: string;
  metrics: Metrics;
}

/** How many rows of the split the model predicted as each genre (the confusion matrix's column sums). */
function predictedCounts(metrics: Metrics): Record<string, number> {
  return Object.fromEntries(metrics.labels.map((l, j) => [l, metrics.confusion.reduce((n, row) => n + row[j]!, 0)]));
}

/**
 * scikit-learn's classification_report (a row per genre, then accuracy, macro and weighted
 * averages) with what explains it: each genre's training rows and how often it was predicted. A
 * genre never predicted says so instead of a precision of 0, which would read as predicted wrongly.
 */
function perClassTable(metrics: Metrics, references: ReferenceColumn[] = [], trainCounts: Record<string, number> = {}): string {
  const predicted = predictedCounts(metrics);
  const ranked = rankGenres(metrics);
  const marks = bestAndWorst(ranked, 3);
  const best = new Set(marks.best.map((r) => r.genre));
  const worst = new Set(marks.worst.map((r) => r.genre));
  const absent = metrics.labels.filter((l) => !(metrics.per_class[l]?.support > 0));
  // Each reference run's F1 for the genre (or its average), after this run's support column.
  const referenceCells = (value: (m: Metrics) => number | undefined) => references.map((r) => `<td class="reference">${value(r.metrics) === undefined ? '–' : fixed(value(r.metrics)!)}</td>`).join('');
  const average = (name: string, pick: (m: Metrics) => { precision: number; recall: number; f1: number }) =>
    `<tr class="average" data-row="${name}"><td>${name}</td><td>${fixed(pick(metrics).precision)}</td><td>${fixed(pick(metrics).recall)}</td><td>${fixed(pick(metrics).f1)}</td><td>${metrics.rows}</td><td></td><td></td>${referenceCells((m) => pick(m).f1)}</tr>`;
  const summaryRows =
    `<tr class="average" data-row="accuracy"><td>accuracy</td><td></td><td></td><td>${fixed(metrics.accuracy)}</td><td>${metrics.rows}</td><td></td><td></td>${referenceCells((m) => m.accuracy)}</tr>` +
    average('macro avg', (m) => m.macro) +
    average('weighted avg', (m) => m.weighted);
  const tie = marks.tiedWorst.length ? `<p class="note">No genre is marked worst: ${marks.tiedWorst.length} genres tie at F1 ${fixed(marks.tiedWorst[0]!.f1)}.</p>` : '';
  const rows = ranked
    .map(
      (r) =>
        `<tr class="${best.has(r.genre) ? 'best' : worst.has(r.genre) ? 'worst' : ''}" data-genre="${escapeHtml(r.genre)}"><td>${escapeHtml(r.genre)}</td>` +
        (predicted[r.genre] ? `<td>${fixed(r.precision)}</td>` : `<td class="never" title="no row was predicted as ${escapeHtml(r.genre)}">never predicted</td>`) +
        `<td>${fixed(r.recall)}</td><td>${fixed(r.f1)} <span class="bar" style="width:${Math.round(80 * r.f1)}px"></span></td><td>${r.support}</td>` +
        `<td data-column="train-rows">${formatCount(trainCounts[r.genre] ?? 0)}</td><td data-column="predicted">${formatCount(predicted[r.genre] ?? 0)}</td>${referenceCells((m) => m.per_class[r.genre]?.f1)}</tr>`,
    )
    .join('');
  return (
    `<table class="per-class"><thead><tr><th>genre</th><th>precision</th><th>recall</th><th>F1</th><th>support</th><th>train rows</th><th>predicted</th>` +
    references.map((r) => `<th class="reference">F1 ${escapeHtml(r.run)}<br>${escapeHtml(r.featurizer)}</th>`).join('') +
    `</tr></thead><tbody>${rows}</tbody><tfoot>${summaryRows}</tfoot></table>` +
    tie +
    imbalanceNote(ranked, trainCounts, predicted) +
    (absent.length ? `<p class="note">No test rows: ${absent.map(escapeHtml).join(', ')}.</p>` : '')
  );
}

/** One line when the genres at F1 0 are the rare ones in training: the usual cause, and the setting that weighs them up. */
function imbalanceNote(ranked: { genre: string; f1: number }[], trainCounts: Record<string, number>, predicted: Record<string, number>): string {
  const zero = ranked.filter((r) => r.f1 === 0);
  if (!zero.length) return '';
  const counts = Object.values(trainCounts).sort((a, b) => a - b);
  const median = counts[Math.floor(counts.length / 2)] ?? 0;
  const rare = zero.filter((r) => (trainCounts[r.genre] ?? 0) < median);
  if (rare.length < zero.length / 2) return '';
  const most = Math.max(...zero.map((r) => trainCounts[r.genre] ?? 0));
  const never = zero.filter((r) => !predicted[r.genre]).length;
  return `<p class="note imbalance">${zero.length} genre${zero.length > 1 ? 's' : ''} score F1 0 (${never} never predicted); they have at most ${formatCount(most)} training rows each, against a median of ${formatCount(median)}: the classifier rarely gains by naming them. <code>train.class_weights: balanced</code> weighs rare genres up (at some cost in accuracy).</p>`;
}

/** The largest off-diagonal cells of the confusion matrix, in words. */
function topConfusions(metrics: Metrics, count = 8): string {
  const cells = metrics.labels.flatMap((truth, i) => metrics.labels.map((pred, j) => ({ truth, pred, n: metrics.confusion[i]![j]!, of: metrics.per_class[truth]?.support ?? 0 }))).filter((c) => c.truth !== c.pred && c.n > 0);
  cells.sort((a, b) => b.n - a.n || a.truth.localeCompare(b.truth) || a.pred.localeCompare(b.pred));
  if (!cells.length) return '';
  const items = cells.slice(0, count).map((c) => `<li data-confusion="${escapeHtml(c.truth)}:${escapeHtml(c.pred)}"><b>${escapeHtml(c.truth)}</b> taken for <b>${escapeHtml(c.pred)}</b>: ${formatCount(c.n)} of ${formatCount(c.of)} (${Math.round((100 * c.n) / Math.max(1, c.of))}%)</li>`);
  return `<h3>Most frequent confusions</h3><ol class="confusions">${items.join('')}</ol>`;
}

/**
 * This run beside the reference runs and the majority baseline on the same split: one line a
 * reader quotes ("TF-IDF 0.490 vs random-weight BERT 0.367 vs majority 0.264"), then the table.
 */
function referenceTable(split: string, metrics: Metrics, featurizer: string, run: string, references: ReferenceColumn[], chosen: 'named' | 'same data' = 'named'): string {
  const rows = [{ run, featurizer, metrics, self: true }, ...references.map((r) => ({ ...r, self: false }))];
  const line = [...rows.map((r) => `${escapeHtml(r.featurizer)} ${fixed(r.metrics.accuracy)}`), `majority ${fixed(metrics.majority_baseline.accuracy)}`].join(' vs ');
  const body = rows
    .map(
      (r) =>
        `<tr data-run="${escapeHtml(r.run)}"${r.self ? ' class="self"' : ''}><td>${escapeHtml(r.run)}${r.self ? ' (this run)' : ''}</td><td>${escapeHtml(r.featurizer)}</td>` +
        `<td>${fixed(r.metrics.accuracy)}</td><td>${fixed(r.metrics.macro.f1)}</td><td>${fixed(r.metrics.top_k_accuracy)} (top-${r.metrics.top_k})</td><td>${formatCount(r.metrics.rows)}</td></tr>`,
    )
    .join('');
  const majority = `<tr data-run="majority baseline"><td>majority baseline</td><td>always ${escapeHtml(metrics.majority_baseline.label)}</td><td>${fixed(metrics.majority_baseline.accuracy)}</td><td></td><td></td><td>${formatCount(metrics.rows)}</td></tr>`;
  return (
    `<h3>Beside other runs (${escapeHtml(split)} split)</h3><p class="versus">Accuracy: ${line}</p>` +
    `<table class="references"><thead><tr><th>run</th><th>vectors</th><th>accuracy</th><th>macro-F1</th><th>top-k accuracy</th><th>movies</th></tr></thead><tbody>${body}${majority}</tbody></table>` +
    `<p class="note" data-context="${chosen}">${
      chosen === 'named'
        ? 'The runs <code>report.reference_runs</code> names.'
        : 'Every other run in this store evaluated on the same data (the same movies and genres), by name; <code>report.reference_runs</code> names the ones to show instead.'
    } <code>make diff A=${escapeHtml(run)} B=&lt;run&gt;</code> tests a difference row by row.</p>`
  );
}

/** Train, validation and test side by side: a model far better on train than on the others overfits. */
function splitTable(all: Partial<Record<'train' | 'validation' | 'test', Metrics>>): string {
  const rows = (['train', 'validation', 'test'] as const)
    .filter((s) => all[s])
    .map((s) => {
      const m = all[s]!;
      const cell = (value: number, interval?: [number, number]) => `<td>${fixed(value)}${interval ? ` <span class="interval">${fixed(interval[0])}-${fixed(interval[1])}</span>` : ''}</td>`;
      return `<tr data-split="${s}"><td>${s}</td><td>${formatCount(m.rows)}</td>${cell(m.accuracy, m.intervals?.accuracy)}${cell(m.macro.f1, m.intervals?.macro_f1)}${cell(m.log_loss, m.intervals?.log_loss)}</tr>`;
    })
    .join('');
  return `<h3>Every split</h3><table class="splits"><thead><tr><th>split</th><th>movies</th><th>accuracy</th><th>macro-F1</th><th>log loss</th></tr></thead><tbody>${rows}</tbody></table>`;
}

function headlineCards(metrics: Metrics, trainCounts: Record<string, number>, deltas: Deltas = {}, run = ''): string {
  const versus = (h: Headline) => {
    const { previous, baseline } = deltaParts(h, deltas);
    return (
      (previous !== undefined ? `<div class="versus" data-versus="previous">previous build ${delta(previous)}</div>` : '') +
      (baseline ? `<div class="versus" data-versus="gate" title="the gate baseline's value and tolerance">gate ${fixed(baseline.value)} ${delta(h.value - baseline.value)}</div>` : '')
    );
  };
  const notes = [
    deltas.previous ? `“previous build” is this run's build ${escapeHtml(deltas.previous.id)} (<code>make diff A=${escapeHtml(deltas.previous.id.slice(-8))} B=${escapeHtml(run)}</code> tests the change row by row)` : '',
    deltas.baseline ? `“gate” is the committed baseline ${escapeHtml(basename(deltas.baseline.path))} that <code>make gate</code> checks` : '',
  ].filter(Boolean);
  return (
    `<div class="headline">` +
    headline(metrics, trainCounts)
      .map(
        (h) =>
          `<div class="metric" data-metric="${escapeHtml(h.name)}"><div class="label">${escapeHtml(h.name)}</div><div class="value">${fixed(h.value)}</div>` +
          (h.interval ? `<div class="interval" title="95% interval, bootstrap over the split's rows">95% ${fixed(h.interval[0])}-${fixed(h.interval[1])}</div>` : '') +
          `<div class="baseline">majority baseline ${fixed(h.baseline)} ${delta(h.value - h.baseline)}</div>${versus(h)}</div>`,
      )
      .join('') +
    `</div><p class="note">The baseline always answers the most frequent training genre (<b>${escapeHtml(metrics.majority_baseline.label)}</b>). ` +
    `Log loss ${fixed(metrics.log_loss)}, expected calibration error ${fixed(metrics.expected_calibration_error)}, ${formatCount(metrics.rows)} movies.${notes.length ? ` ${notes.join('; ')}.` : ''}</p>`
  );
}

/** The previous build's and the gate baseline's figures on the report's split, when there are any. */
function deltasOf({ context, split }: ReportInputs): Deltas {
  const deltas: Deltas = {};
  const previous = context.previous?.metrics[split];
  if (context.previous && previous) deltas.previous = { id: context.previous.id, metrics: previous };
  if (context.baseline && context.baseline.split === split) {
    const values = Object.fromEntries(Object.entries(context.baseline.metrics).filter(([k, v]) => k in HEADLINE_READ && typeof v?.value === 'number'));
    if (Object.keys(values).length) deltas.baseline = { path: context.baseline.path, values };
  }
  return deltas;
}

function timingsTable(manifests: Record<string, Manifest>): string {
  const rows = Object.entries(manifests).map(([stage, m]) => {
    const rowCount = Object.entries(m.rows).filter(([k]) => ['train', 'validation', 'test'].includes(k)).reduce((a, [, n]) => a + n, 0);
    const rowsPerSecond = m.timings.rows_per_second ?? (m.timings.seconds ? rowCount / m.timings.seconds : undefined);
    const how = [m.details.provider && `provider ${m.details.provider}`, m.details.threads && `${m.details.threads} threads`, m.details.backend && `backend ${m.details.backend}`, m.details.workers && `${m.details.workers} workers`]
      .filter(Boolean)
      .join(', ');
    return (
      `<tr><td>${stage}</td><td>${fixed(m.timings.seconds, 2)}</td><td>${rowsPerSecond ? formatCount(Math.round(rowsPerSecond)) : '–'}</td>` +
      `<td>${m.timings.tokens_per_second ? formatCount(Math.round(m.timings.tokens_per_second)) : '–'}</td><td>${m.timings.gflops_per_second ? fixed(m.timings.gflops_per_second, 1) : '–'}</td>` +
      `<td>${m.timings.peak_rss_mb ? `${m.timings.peak_rss_mb} MB` : '–'}</td><td style="text-align:left">${escapeHtml(how)}</td><td style="text-align:left">${escapeHtml(m.created_at)}</td></tr>`
    );
  });
  return `<table><thead><tr><th>stage</th><th>seconds</th><th>rows/s</th><th>tokens/s</th><th>GFLOP/s</th><th>peak RSS</th><th style="text-align:left">how</th><th style="text-align:left">built</th></tr></thead><tbody>${rows.join('')}</tbody></table>`;
}

function keyValues(entries: [string, unknown][]): string {
  return `<table class="kv">${entries.map(([k, v]) => `<tr><td>${escapeHtml(k)}</td><td><code>${escapeHtml(v)}</code></td></tr>`).join('')}</table>`;
}

export function reportVersions(): Record<string, string> {
  return { vega: vega.version, 'vega-lite': vegaLiteVersion, sharp: sharp.versions.sharp ?? 'unknown' };
}

/**
 * Builds report.html (self-contained) and summary.md from the run's artifacts. Reads only what the
 * upstream stages published; trains and predicts nothing.
 */
export async function buildReport(run: ReportRun): Promise<ManifestBody> {
  const { report: settings, run: runName } = run.params;
  const inputs = await readReportInputs(run);
  const { metrics, split, labelsFile, manifests } = inputs;
  const report = new ReportSections();
  await scoreSections(report, inputs, settings.confusion_normalize);
  await trainingSection(report, inputs);
  await dataSection(report, inputs);
  if (metrics) await precisionRecallSection(report, run, split, metrics);
  const movies = await galleryMovies(run, metrics ? split : 'test');
  const gallery = await galleryBody(run, movies);
  report.add('gallery', 'Gallery of predictions', gallery.html, 'Bars show the top-3 probabilities; green marks the true genre.');
  report.add('timings', 'Stage timings', `<div class="charts">${await report.chart('timings', timingSpec(inputs.stages.map((s) => ({ stage: s, seconds: manifests[s]!.timings.seconds ?? 0 }))))}</div>${timingsTable(manifests)}`);
  report.add('provenance', 'Provenance', provenanceBody(run, inputs.stages, manifests));

  const banner = inputs.randomModel
    ? '<b>Random-weight demo model.</b> This run used a BERT model with random weights (made by the project, not trained): its vectors carry which words a plot has, not what they mean. The figures show the pipeline works, not what BERT can do. See the README for the real model.'
    : undefined;
  const subtitle = `run <b>${escapeHtml(runName)}</b> · ${formatCount(movies.length)} ${metrics ? split : 'test'} movies, ${labelsFile.labels.length} genres · ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC`;
  const html = page({ title: 'Movie genre classifier', subtitle, banner, nav: report.nav, body: report.sections.join('\n') });
  writeFileSync(join(run.dir, REPORT_FILE), html);
  const summary = metrics
    ? summaryMarkdown({ run: runName, split, metrics, trainCounts: inputs.trainCounts, randomModel: inputs.randomModel, featurizer: inputs.featurizer, references: referenceColumns(inputs), deltas: deltasOf(inputs) })
    : `## Genre classifier: run \`${runName}\`\n\nNo genres in the validation or test split: nothing to score.\n`;
  writeFileSync(join(run.dir, SUMMARY_FILE), summary);
  info(`report: ${report.charts.length} charts, ${gallery.cards} gallery cards (${gallery.posters} with posters), ${(html.length / 1024).toFixed(0)} KiB`);
  return {
    rows: { cards: gallery.cards, charts: report.charts.length },
    versions: reportVersions(),
    details: { charts: report.charts, posters: gallery.posters, posters_missing: gallery.missing, random_model: inputs.randomModel, split },
  };
}

/** What the report reads from the upstream artifacts. */
async function readReportInputs(run: ReportRun) {
  // Every stage the run depends on, in pipeline order, with its manifest (timings, provenance).
  const manifests = run.upstream;
  const stages = Object.keys(manifests);
  const allMetrics = run.inputs.metrics;
  const split = allMetrics.test ? ('test' as const) : ('validation' as const);
  const labelsFile = run.inputs.genres;
  return {
    stages,
    manifests,
    allMetrics,
    split,
    metrics: allMetrics[split],
    labelsFile,
    trainCounts: Object.fromEntries(Object.entries(labelsFile.counts).map(([l, c]) => [l, c.train ?? 0])),
    tokenStats: run.inputs.tokenStats,
    history: run.inputs.history,
    // What made the vectors decides: a TF-IDF run over a random model's tokenizer is not a random model's run.
    randomModel: Boolean(manifests.embed!.details.random_model),
    run: run.params.run,
    featurizer: featurizerLabel(manifests.embed!),
    references: run.sources.references.references,
    context: run.sources.references,
  };
}
type ReportInputs = Awaited<ReturnType<typeof readReportInputs>>;

/** The page's sections in order, with the navigation and the names of the charts drawn. */
class ReportSections {
  readonly sections: string[] = [];
  readonly nav: [string, string][] = [];
  readonly charts: string[] = [];

  add(id: string, title: string, body: string, note = ''): void {
    this.nav.push([id, title]);
    this.sections.push(section(id, title, body, note));
  }

  async chart(name: string, spec: Parameters<typeof renderChart>[0], caption = ''): Promise<string> {
    this.charts.push(name);
    return figure(name, await renderChart(spec), caption);
  }
}

/** The reference runs' figures on this run's split; one without that split's metrics (no genres there) has nothing to compare. */
function referenceColumns({ references, split, context }: ReportInputs): ReferenceColumn[] {
  // Validation rows are drawn by the seed: a run chosen by its data, on another split, scored other rows.
  const comparable = references.filter((r) => split !== 'validation' || r.sameSplits || context.chosen === 'named');
  return comparable.flatMap((r) => (r.metrics[split] ? [{ run: r.run, featurizer: r.featurizer, metrics: r.metrics[split]! }] : []));
}

/** Headline, per-genre table and confusion matrix; or a note when no split has genres. */
async function scoreSections(report: ReportSections, inputs: ReportInputs, normalize: 'true' | 'pred' | 'all' | 'none'): Promise<void> {
  const { metrics, split, allMetrics, trainCounts } = inputs;
  if (!metrics) {
    report.add('headline', 'Headline', '<p>This run has no genres for its validation or test rows, so there is nothing to score; the gallery shows its predictions.</p>');
    return;
  }
  const references = referenceColumns(inputs);
  const versus = references.length ? referenceTable(split, metrics, inputs.featurizer, inputs.run, references, inputs.context.chosen) : '';
  report.add('headline', `Headline (${split} split)`, headlineCards(metrics, trainCounts, deltasOf(inputs), inputs.run) + versus + splitTable(allMetrics));
  const referenceNote = references.length ? ' The last columns are the reference runs\' F1 on the same rows.' : '';
  report.add('per-class', 'Per genre', perClassTable(metrics, references, trainCounts), `Sorted by F1; up to three best and worst genres are marked (never through a tie). Train rows: the genre's rows in the training split; predicted: how many ${split} rows the model named it.${referenceNote}`);
  const how = { true: 'Each row is one true genre and its colours sum to 100%', pred: 'Each column is one predicted genre and its colours sum to 100%', all: 'Colours are shares of all test movies', none: 'Colours are counts' }[normalize];
  report.add('confusion', 'Confusion matrix', (await report.chart('confusion', confusionSpec(metrics, normalize), `${how}; every cell shows its count, genres ordered by support; hover a cell for the share.`)) + topConfusions(metrics));
}

async function trainingSection(report: ReportSections, { manifests, history }: ReportInputs): Promise<void> {
  const train = manifests.train!;
  // Artifacts from before kept_epoch existed recorded the kept epoch as best_epoch.
  const keptEpoch = ((train.details.kept_epoch ?? train.details.best_epoch) as number | undefined) ?? null;
  const stopped = train.details.early_stopped ? `Early stopping ended training after ${history.length} epochs and kept the weights of epoch ${keptEpoch} (dashed line).` : `Trained for all ${history.length} epochs; the dashed line marks the weights kept (epoch ${keptEpoch}).`;
  report.add('training', 'Training', await report.chart('learning-curves', learningCurveSpec(history, keptEpoch), stopped));
}

async function dataSection(report: ReportSections, { metrics, labelsFile, tokenStats }: ReportInputs): Promise<void> {
  const calibration = metrics ? await report.chart('reliability', reliabilitySpec(metrics), 'Bars: accuracy per confidence bin, with the number of movies in it; dashed: perfect calibration. Below: how many movies fall in each bin.') : '';
  const classes = await report.chart('class-distribution', classDistributionSpec(labelsFile.counts as Record<string, Record<string, number>>, labelsFile.labels), 'Share of each genre per split, most training rows first; the number over each train bar is its rows.');
  // Only encoders that read token ids cut descriptions; TF-IDF reads every word.
  const lengths = tokenStats ? await report.chart('token-lengths', tokenLengthSpec(tokenStats), 'Longer descriptions are cut at max_length.') : '';
  report.add('data', 'Data and calibration', `<div class="charts">${classes}${lengths}${calibration}</div>`);
}

/** The gallery's cards: a seeded sample, the surest mistakes, the least sure right answers, each with its poster or a tile. */
async function galleryBody(run: ReportRun, movies: GalleryMovie[]): Promise<{ html: string; cards: number; posters: number; missing: string[] }> {
  const { report: settings, seed } = run.params;
  const picked = pickGallery(movies, settings.gallery, settings.mistakes, seed, settings.least_confident);
  let posters = 0;
  const missing: string[] = [];
  const posterSources = {
    imagesDir: run.sources.posters,
    dataRoot: run.inputs.movies.dataRoot,
    width: settings.image_width,
    maxBytes: settings.poster_max_bytes,
    allowPrivateUrls: settings.allow_private_poster_urls,
    onMissing: (id: string, reason: string) => {
      missing.push(id);
      warn(`report: warning: no poster for movie ${id} (${reason}); showing a tile`);
    },
  };
  const cards = async (list: GalleryMovie[]) => {
    const html = [];
    for (const movie of list) {
      const poster = await posterDataUri(movie, posterSources);
      if (poster) posters++;
      html.push(card(movie, poster, settings.excerpt_chars));
    }
    return `<div class="gallery">${html.join('')}</div>`;
  };
  const html =
    `<h3>${picked.sample.length} movies drawn at random (seed ${seed})</h3>${await cards(picked.sample)}` +
    (picked.mistakes.length ? `<h3>The ${picked.mistakes.length} most confident mistakes</h3>${await cards(picked.mistakes)}` : '') +
    (picked.unsure.length ? `<h3 id="least-confident">The ${picked.unsure.length} right answers the model was least sure of</h3>${await cards(picked.unsure)}` : '');
  return { html, cards: picked.sample.length + picked.mistakes.length + picked.unsure.length, posters, missing };
}

/**
 * Which artifacts, data, model, code, versions and machine made the report, what made the
 * results (each stage's slice of the config, as its key holds it) and how each stage ran (its
 * settings: threads, providers, backend, which change speed and never a figure). Both come from
 * the manifests, never from the config this report was asked for: a setting that is not in a key
 * is not shown as if it made the result.
 */
function provenanceBody(run: ReportRun, stages: readonly string[], manifests: Record<string, Manifest>): string {
  // The code of each artifact is shown with the artifact (stages can be built at different commits).
  const { git_commit: _commit, git_dirty: _dirty, ...versions } = Object.assign({}, ...stages.map((s) => manifests[s]!.versions), reportVersions()) as Record<string, string>;
  const codeOf = (v: Record<string, string>) => {
    if (!v.git_commit) return ', code: not recorded';
    if (!/^[0-9a-f]{40}$/.test(v.git_commit)) return `, code: ${v.git_commit}`;
    return `, code ${v.git_commit.slice(0, 12)}${v.git_dirty?.startsWith('yes') ? ' with uncommitted changes' : v.git_dirty === 'no' ? '' : ` (dirty: ${v.git_dirty})`}`;
  };
  const sources = Object.assign({}, ...stages.map((s) => manifests[s]!.sources)) as Record<string, string>;
  const cpu = cpus();
  const madeBy = [...stages.map((s) => [s, manifests[s]!.params] as const), ['report', run.params] as const];
  const ranWith = stages.map((s) => [s, manifests[s]!.settings] as const).filter(([, settings]) => settings && Object.keys(settings).length);
  const yamlBlock = (entries: readonly (readonly [string, unknown])[]) => `<pre>${escapeHtml(YAML.stringify(Object.fromEntries(entries)))}</pre>`;
  return (
    `<h3>Artifacts</h3>${keyValues([
      ...stages.map((s): [string, unknown] => [s, `${manifests[s]!.key}  (stage v${manifests[s]!.stage_version}, ${manifests[s]!.created_at}${codeOf(manifests[s]!.versions)})`]),
      ['report', `${run.key}${codeOf(codeProvenance() as unknown as Record<string, string>)}`],
    ])}` +
    `<h3>Data and model checksums (sha256)</h3>${keyValues(Object.entries(sources))}` +
    `<h3>Versions</h3>${keyValues(Object.entries(versions))}` +
    `<h3>Machine that built the report</h3>${keyValues([
      ['cpu', `${cpu.length} × ${cpu[0]?.model ?? 'unknown'}`],
      ['memory', `${(totalmem() / 1024 ** 3).toFixed(1)} GiB`],
      ['system', `${platform()} ${release()} ${arch()}`],
    ])}` +
    `<h3>What made these results</h3><p class="note">Each stage's part of the config, as its key holds it: change one of these and that stage and those after it are rebuilt.</p><div data-section="made-by">${yamlBlock(madeBy)}</div>` +
    (ranWith.length ? `<h3>How each stage ran</h3><p class="note">Settings that change speed, never a figure (threads, providers, batch sizes, backend): not part of any key, shown as the artifact recorded them.</p><div data-section="ran-with">${yamlBlock(ranWith)}</div>` : '')
  );
}

/** Precision-recall curves per genre from the split's probabilities, ordered by support, with average precision. */
async function precisionRecallSection(report: ReportSections, run: ReportRun, split: 'validation' | 'test', metrics: Metrics): Promise<void> {
  const predictions = await run.inputs.predictions.read(split);
  const labels = metrics.labels;
  const genres = labels.filter((l) => (metrics.per_class[l]?.support ?? 0) > 0).sort((a, b) => metrics.per_class[b]!.support - metrics.per_class[a]!.support || a.localeCompare(b));
  const curves = genres.map((genre) => {
    const j = labels.indexOf(genre);
    const { ap, recall, precision } = curve(predictions.map((p) => p.probs[j]!), predictions.map((p) => (p.true_genre === genre ? 1 : 0)));
    return { genre, support: metrics.per_class[genre]!.support, ap, recall, precision };
  });
  const ap = metrics.average_precision;
  const summary = ap ? `Average precision: macro ${fixed(ap.macro)} (the mean over genres), micro ${fixed(ap.micro)} (every movie and genre pooled). ` : '';
  report.add('precision-recall', 'Precision-recall', await report.chart('precision-recall', precisionRecallSpec(curves), `${summary}Each genre against the rest, by its probability; titles give its average precision and ${split} rows. A curve that stays high to the right finds that genre's movies without naming others.`));
}

/** The split's predictions joined with their years, descriptions and posters from ingest. */
async function galleryMovies(run: ReportRun, split: 'validation' | 'test'): Promise<GalleryMovie[]> {
  const predictions = await run.inputs.predictions.read(split);
  const source = await run.inputs.movies.read(rowFileOf(split), ['id', 'year', 'description', 'image']);
  const byId = new Map(source.map((r) => [r.id, r]));
  // As many ranked genres as evaluate wrote.
  const topK = Object.keys(predictions[0] ?? {}).filter((column) => /^top\d+_genre$/.test(column)).length;
  return predictions.map((p) => ({
    id: p.id,
    title: p.title,
    year: byId.get(p.id)?.year ?? null,
    description: byId.get(p.id)?.description ?? '',
    true_genre: p.true_genre ?? null,
    predicted_genre: p.predicted_genre,
    correct: p.correct ?? null,
    top: Array.from({ length: Math.min(3, topK) }, (_, i) => {
      const column = topColumns(i + 1);
      return { genre: p[column.genre] as string, prob: p[column.prob] as number };
    }),
    image: byId.get(p.id)?.image ?? null,
  }));
}
