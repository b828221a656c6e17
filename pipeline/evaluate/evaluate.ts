import { info } from '../log.js';
import { UserError } from '../errors.js';
import { selectBackend } from '../mlp/backend.js';
import type { ManifestBody } from '../artifacts/store.js';
import { rowFileOf, type Genres, type Movies } from '../ingest/artifact.js';
import { featuresBySplit, type SplitFeatures } from '../embed/artifact.js';
import { computeMetrics, topK, type Metrics } from '../metrics/index.js';
import { BOOTSTRAP_SAMPLES, bootstrapIntervals, rowFacts } from '../metrics/bootstrap.js';
import { precisionRecall } from '../metrics/precision-recall.js';
import type { EvaluateRun } from './signature.js';
import { topColumns, writeMetrics, writePredictions, writeSubmission, type MetricsFile, type PredictionRow } from './artifact.js';

export { predictionSchema } from './artifact.js';

/**
 * Scores the trained model on the validation and test splits: predictions.parquet (top-k with
 * probabilities per movie) and metrics.json. A test split without genres gets predictions and a
 * Kaggle-style submission.txt (`ID ::: GENRE`) instead of metrics.
 */
export async function evaluate(run: EvaluateRun): Promise<ManifestBody> {
  const { classifier, genres, movies } = run.inputs;
  // Two genres have no third most probable one: top-k is at most the number of genres.
  const k = Math.min(run.params.evaluate.top_k, genres.labels.length);
  await selectBackend(run.settings.backend, 'evaluate');
  const features = featuresBySplit(run.inputs.vectors, run.inputs.splits, genres);
  const { labels, dim } = features;
  const scoring = { topK: k, bins: run.params.evaluate.calibration_bins, majority: majorityLabel(genres) };
  // Every split's figures with their 95% intervals (a seeded bootstrap over the split's rows).
  const scored = (y: Int32Array, probs: Float32Array): Metrics => ({
    ...computeMetrics(y, probs, labels, scoring),
    average_precision: precisionRecall(y, probs, labels),
    intervals: bootstrapIntervals(rowFacts(y, probs, labels.length, k)),
  });
  const probabilities = async (part: SplitFeatures, split: string) => finiteProbabilities(await classifier.predict(part.x, dim), labels.length, split);
  const hasGenres = (part: SplitFeatures) => part.y.every((y) => y >= 0);

  const metrics: MetricsFile = {};
  // The training rows are scored too (metrics only, no predictions): train against validation
  // and test is the first overfitting check a reader makes.
  const train = features.splits.train;
  if (train?.rows.length && hasGenres(train)) metrics.train = scored(train.y, await probabilities(train, 'train'));
  const predictions: PredictionRow[] = [];
  let submission: string[] | undefined;
  for (const split of ['validation', 'test'] as const) {
    const part = features.splits[split];
    if (!part?.rows.length) continue;
    const probs = await probabilities(part, split);
    if (hasGenres(part)) metrics[split] = scored(part.y, probs);
    const rows = await predictionRows(movies, split, part, probs, labels, k);
    predictions.push(...rows);
    if (split === 'test' && !hasGenres(part)) submission = rows.map((r) => `${r.id} ::: ${r.predicted_genre}`);
  }
  await writePredictions(run.dir, predictions, k, labels);
  writeMetrics(run.dir, metrics);
  if (submission) writeSubmission(run.dir, submission);
  logMetrics(metrics, k);
  return {
    rows: Object.fromEntries(Object.entries(features.splits).filter(([s]) => s !== 'train').map(([s, p]) => [s, p!.rows.length])),
    details: {
      test_accuracy: metrics.test?.accuracy,
      test_macro_f1: metrics.test?.macro.f1,
      majority_baseline: metrics.test?.majority_baseline.accuracy,
      submission: Boolean(submission),
      intervals: `95%, percentile bootstrap over each split's rows, ${BOOTSTRAP_SAMPLES} resamples, seed 0`,
    },
  };
}

/**
 * The probabilities as scored, refused with one message when any is not finite: a model whose
 * training diverged gives NaN, and neither its metrics nor its predictions would mean anything.
 */
export function finiteProbabilities(probs: Float32Array, genres: number, split: string): Float32Array {
  const rows = new Set<number>();
  for (let i = 0; i < probs.length; i++) if (!Number.isFinite(probs[i])) rows.add(Math.floor(i / genres));
  if (rows.size) {
    throw new UserError(
      `evaluate: the model's probabilities are not finite for ${rows.size} ${split} row(s) (the first: row ${rows.values().next().value}): ` +
        'its training diverged; retrain with a lower train.optimizer.lr (or train.standardize: true)',
    );
  }
  return probs;
}

/** The most frequent genre of the training rows: what the majority baseline answers. */
function majorityLabel({ labels, counts }: Genres): number {
  return labels.reduce((best, l, i) => (counts[l]!.train > counts[labels[best]!]!.train ? i : best), 0);
}

/** One prediction row per movie of the split, with its title and description from ingest. */
async function predictionRows(movies: Movies, split: 'validation' | 'test', part: SplitFeatures, probs: Float32Array, labels: string[], k: number): Promise<PredictionRow[]> {
  const meta = await movies.read(rowFileOf(split), ['id', 'title', 'description']);
  return Array.from(part.rows, (row, i) => {
    const p = probs.subarray(i * labels.length, (i + 1) * labels.length);
    const top = topK(p, k);
    const truth = part.y[i]!;
    const record: PredictionRow = {
      split,
      id: meta[row]!.id,
      title: meta[row]!.title,
      description: meta[row]!.description,
      true_genre: truth >= 0 ? labels[truth]! : null,
      predicted_genre: labels[top[0]!]!,
      correct: truth >= 0 ? truth === top[0] : null,
      p_true: truth >= 0 ? p[truth]! : null,
      probs: Array.from(p),
    };
    top.forEach((label, j) => {
      const column = topColumns(j + 1);
      record[column.genre] = labels[label]!;
      record[column.prob] = p[label]!;
    });
    return record;
  });
}

function logMetrics(metrics: MetricsFile, k: number): void {
  for (const [split, m] of Object.entries(metrics)) {
    info(
      `evaluate: ${split}  accuracy ${m.accuracy.toFixed(3)}${m.intervals ? ` [${m.intervals.accuracy.map((x) => x.toFixed(3)).join(', ')}]` : ''}  top-${k} ${m.top_k_accuracy.toFixed(3)}  macro-F1 ${m.macro.f1.toFixed(3)}  ` +
        `weighted-F1 ${m.weighted.f1.toFixed(3)}  log loss ${m.log_loss.toFixed(3)}  ECE ${m.expected_calibration_error.toFixed(3)}  ` +
        `(majority baseline ${m.majority_baseline.accuracy.toFixed(3)})`,
    );
  }
}
