import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readParquet, writeParquet, type TableSchema } from '../parquet/index.js';
import type { Metrics } from '../metrics/index.js';
import { contract, port, type View } from '../artifacts/contract.js';
import type { Split } from '../ingest/artifact.js';

/**
 * The evaluate artifact, what the report, `make diff`, the gate and sweeps read:
 *
 *   predictions.parquet  one row per validation and test movie (PredictionRow); the file's
 *                        `genres` metadata gives the order of `probs`
 *   metrics.json         split -> Metrics, for the splits whose rows have genres (MetricsFile)
 *   submission.txt       `ID ::: GENRE` per test row, when the test rows have no genres
 *
 * Views: `predictions` and `metrics` (the report; diff, the gate and sweeps read metrics.json).
 */
const predictionsPath = (dir: string) => join(dir, 'predictions.parquet');
const metricsPath = (dir: string) => join(dir, 'metrics.json');
const submissionPath = (dir: string) => join(dir, 'submission.txt');

export type MetricsFile = Partial<Record<Split, Metrics>>;

/** The columns of the rank-th most probable genre (1-based), here and in `predict --output`. */
export const topColumns = (rank: number) => ({ genre: `top${rank}_genre` as const, prob: `top${rank}_prob` as const });

export interface PredictionRow {
  split: Split;
  id: string;
  title: string;
  description: string;
  true_genre: string | null;
  predicted_genre: string;
  correct: boolean | null;
  p_true: number | null;
  /** top1_genre, top1_prob, ... up to evaluate.top_k (`topColumns`). */
  [topColumn: `top${number}_${'genre' | 'prob'}`]: string | number;
  /** Every genre's probability, in the order of the file's `genres` metadata. */
  probs: number[];
}

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
  for (let rank = 1; rank <= topK; rank++) {
    const column = topColumns(rank);
    schema[column.genre] = { type: 'UTF8' };
    schema[column.prob] = { type: 'DOUBLE' };
  }
  // Every genre's probability, in the order the file's `genres` metadata lists: enough for PR and
  // ROC curves, thresholds or recalibration in pandas without rerunning the model.
  schema.probs = { type: 'DOUBLE', repeated: true };
  return schema;
}

export async function writePredictions(dir: string, rows: PredictionRow[], topK: number, genres: string[]): Promise<void> {
  await writeParquet(predictionsPath(dir), predictionSchema(topK), rows as never, { genres: JSON.stringify(genres), probs: 'probability of each genre, in the order of `genres`' });
}

export async function readPredictions(dir: string, split?: Split): Promise<PredictionRow[]> {
  const rows = await readParquet<PredictionRow>(predictionsPath(dir));
  return split ? rows.filter((r) => r.split === split) : rows;
}

export function writeMetrics(dir: string, metrics: MetricsFile): void {
  writeFileSync(metricsPath(dir), `${JSON.stringify(metrics, null, 2)}\n`);
}

/** The metrics of an evaluate artifact; empty when it has none (an old or partial folder). */
export function readMetricsFile(dir: string): MetricsFile {
  const path = metricsPath(dir);
  return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as MetricsFile) : {};
}

export function writeSubmission(dir: string, lines: string[]): void {
  writeFileSync(submissionPath(dir), lines.join('\n') + '\n');
}

export interface Predictions {
  read(split?: Split): Promise<PredictionRow[]>;
}
export const PREDICTIONS = port<Predictions>('predictions');
export const predictionsView: View<Predictions> = {
  port: PREDICTIONS,
  files: ['predictions.parquet'],
  open: (dir) => ({ read: (split) => readPredictions(dir, split) }),
};

export const METRICS = port<MetricsFile>('metrics');
export const metricsView: View<MetricsFile> = {
  port: METRICS,
  files: ['metrics.json'],
  open: (dir) => readMetricsFile(dir),
};

export const evaluateArtifact = contract('evaluate', import.meta.url, { predictionsView, metricsView });
