import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readParquet, writeParquet } from '../parquet/index.js';
import { loadModel, saveModel, type Standardization } from '../mlp/model.js';
import type { tf } from '../mlp/backend.js';

/**
 * The train artifact, what evaluate, predict and the report read:
 *
 *   model/            the MLP in TF.js layers format (model.json + weights.bin)
 *   standardize.json  per-feature mean and std fitted on the training rows, or null
 *   genres.json       { "genres": [...] }: the genre of each of the model's outputs, in order
 *   history.parquet   one row per epoch (EpochRecord)
 */
const modelDir = (dir: string) => join(dir, 'model');
const standardizePath = (dir: string) => join(dir, 'standardize.json');
const genresPath = (dir: string) => join(dir, 'genres.json');
const historyPath = (dir: string) => join(dir, 'history.parquet');

export interface EpochRecord {
  epoch: number;
  loss: number;
  accuracy: number;
  val_loss: number | null;
  val_accuracy: number | null;
  val_macro_f1: number | null;
  learning_rate: number;
  seconds: number;
  rows_per_second: number;
}

export const HISTORY_SCHEMA = {
  epoch: { type: 'INT32' },
  loss: { type: 'DOUBLE' },
  accuracy: { type: 'DOUBLE' },
  val_loss: { type: 'DOUBLE', optional: true },
  val_accuracy: { type: 'DOUBLE', optional: true },
  val_macro_f1: { type: 'DOUBLE', optional: true },
  learning_rate: { type: 'DOUBLE' },
  seconds: { type: 'DOUBLE' },
  rows_per_second: { type: 'DOUBLE' },
} as const;

/** A trained classifier as the artifact holds it. */
export interface Classifier {
  model: tf.LayersModel;
  stats: Standardization | null;
  genres: string[];
}

export async function writeClassifier(dir: string, classifier: Classifier, history: EpochRecord[]): Promise<void> {
  await saveModel(classifier.model, modelDir(dir));
  writeFileSync(standardizePath(dir), JSON.stringify(classifier.stats));
  writeFileSync(genresPath(dir), `${JSON.stringify({ genres: classifier.genres }, null, 2)}\n`);
  await writeParquet(historyPath(dir), HISTORY_SCHEMA, history as never);
}

/** The classifier of a train artifact (a TF.js backend must be selected first). */
export async function readClassifier(dir: string): Promise<Classifier> {
  return {
    model: await loadModel(modelDir(dir)),
    stats: JSON.parse(readFileSync(standardizePath(dir), 'utf8')) as Standardization | null,
    genres: (JSON.parse(readFileSync(genresPath(dir), 'utf8')) as { genres: string[] }).genres,
  };
}

export const readHistory = (dir: string): Promise<EpochRecord[]> => readParquet<EpochRecord>(historyPath(dir));
