import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { info } from '../log.js';
import { readParquet, writeParquet, type TableSchema } from '../parquet/index.js';
import { loadModel, predictProbabilities, standardize, type Standardization } from '../mlp/model.js';
import { loadFeatures } from '../mlp/features.js';
import { selectBackend } from '../mlp/backend.js';
import type { ManifestBody } from '../artifacts/store.js';
import type { StageRun } from '../stage-run.js';
import type { Split } from '../ingest/rows.js';
import type { LabelsFile } from '../ingest/index.js';
import { computeMetrics, topK, type Metrics } from '../metrics/index.js';

export function predictionSchema(topK: number): TableSchema {
  const schema: TableSchema = {
    split: { type: 'UTF8' },
    id: { type: 'UTF8' },
    title: { type: 'UTF8' },
    description: { type: 'UTF8' },
    true_genre: { type: 'UTF8', optional: true },
    predicted_genre: { type: 'UTF8' },
    correct: { type: 'BOOLEAN', optional: true },
    p_true: { type: 'DOUBLE', optional: true },
  };
  for (let k = 1; k <= topK; k++) {
    schema[`top${k}_genre`] = { type: 'UTF8' };
    schema[`top${k}_prob`] = { type: 'DOUBLE' };
  }
  // Every genre's probability, in the order the file's `genres` metadata lists: enough for PR and
  // ROC curves, thresholds or recalibration in pandas without rerunning the model.
  schema.probs = { type: 'DOUBLE', repeated: true };
  return schema;
}


/**
 * Scores the trained model on the validation and test splits: predictions.parquet (top-k with
 * probabilities per movie) and metrics.json. A test split without genres gets predictions and a
 * Kaggle-style submission.txt (`ID ::: GENRE`) instead of metrics.
 */
export async function evaluate(run: StageRun): Promise<ManifestBody> {
  const { config } = run.loaded;
  const k = config.evaluate.top_k;
  await selectBackend(config.train.backend, 'evaluate');
  const trainDir = run.inputs.train!.dir;
  const model = await loadModel(join(trainDir, 'model'));
  const stats = JSON.parse(readFileSync(join(trainDir, 'standardize.json'), 'utf8')) as Standardization | null;
  const features = await loadFeatures(run.inputs.ingest!.dir, run.inputs.embed!.dir);
  const { labels, dim } = features;
  const counts = (JSON.parse(readFileSync(join(run.inputs.ingest!.dir, 'labels.json'), 'utf8')) as LabelsFile).counts;
  const majority = labels.reduce((best, l, i) => (counts[l]!.train > counts[labels[best]!]!.train ? i : best), 0);

  const metrics: Partial<Record<Split, Metrics>> = {};
  const predictions: Record<string, unknown>[] = [];
  let submission: string[] | undefined;
  // The training rows are scored too (metrics only, no predictions): train against validation
  // and test is the first overfitting check a reader makes.
  const train = features.splits.train;
  if (train?.rows.length && train.y.every((y) => y >= 0)) {
    metrics.train = computeMetrics(train.y, predictProbabilities(model, standardize(train.x, dim, stats), dim), labels, { topK: k, bins: config.evaluate.calibration_bins, majority });
  }
  for (const split of ['validation', 'test'] as const) {
    const part = features.splits[split];
    if (!part?.rows.length) continue;
    const meta = await readParquet<{ id: string; title: string; description: string }>(join(run.inputs.ingest!.dir, split === 'test' ? 'test.parquet' : 'train.parquet'), ['id', 'title', 'description']);
    const probs = predictProbabilities(model, standardize(part.x, dim, stats), dim);
    const hasGenres = part.y.every((y) => y >= 0);
    if (hasGenres) metrics[split] = computeMetrics(part.y, probs, labels, { topK: k, bins: config.evaluate.calibration_bins, majority });
    else if (split === 'test') submission = [];
    part.rows.forEach((row, i) => {
      const p = probs.subarray(i * labels.length, (i + 1) * labels.length);
      const top = topK(p, k);
      const record: Record<string, unknown> = {
        split,
        id: meta[row]!.id,
        title: meta[row]!.title,
        description: meta[row]!.description,
        true_genre: part.y[i]! >= 0 ? labels[part.y[i]!] : null,
        predicted_genre: labels[top[0]!],
        correct: part.y[i]! >= 0 ? part.y[i] === top[0] : null,
        p_true: part.y[i]! >= 0 ? p[part.y[i]!] : null,
      };
      top.forEach((label, j) => {
        record[`top${j + 1}_genre`] = labels[label];
        record[`top${j + 1}_prob`] = p[label];
      });
      record.probs = Array.from(p);
      predictions.push(record);
      submission?.push(`${meta[row]!.id} ::: ${labels[top[0]!]}`);
    });
  }
  await writeParquet(join(run.dir, 'predictions.parquet'), predictionSchema(k), predictions, { genres: JSON.stringify(labels), probs: 'probability of each genre, in the order of `genres`' });
  writeFileSync(join(run.dir, 'metrics.json'), `${JSON.stringify(metrics, null, 2)}\n`);
  if (submission) writeFileSync(join(run.dir, 'submission.txt'), submission.join('\n') + '\n');
  for (const [split, m] of Object.entries(metrics)) {
    info(
      `evaluate: ${split}  accuracy ${m.accuracy.toFixed(3)}  top-${k} ${m.top_k_accuracy.toFixed(3)}  macro-F1 ${m.macro.f1.toFixed(3)}  ` +
        `weighted-F1 ${m.weighted.f1.toFixed(3)}  log loss ${m.log_loss.toFixed(3)}  ECE ${m.expected_calibration_error.toFixed(3)}  ` +
        `(majority baseline ${m.majority_baseline.accuracy.toFixed(3)})`,
    );
  }
  return {
    rows: Object.fromEntries(Object.entries(features.splits).filter(([s]) => s !== 'train').map(([s, p]) => [s, p!.rows.length])),
    details: {
      test_accuracy: metrics.test?.accuracy,
      test_macro_f1: metrics.test?.macro.f1,
      majority_baseline: metrics.test?.majority_baseline.accuracy,
      submission: Boolean(submission),
    },
  };
}
