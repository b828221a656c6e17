import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readParquet, writeParquet } from '../parquet/index.js';
import { loadModel, predictProbabilities, saveModel, sparseProductOf, type Standardization } from '../mlp/model.js';
import type { SparseProduct } from '../mlp/sparse.js';
import { isSparse, type FeatureRows } from '../mlp/rows.js';
import type { tf } from '../mlp/backend.js';
import { contract, port, type View } from '../artifacts/contract.js';

/**
 * The train artifact, what evaluate, predict and the report read:
 *
 *   model/            the MLP in TF.js layers format (model.json + weights.bin)
 *   standardize.json  per-feature mean and std fitted on the training rows, or null
 *   genres.json       { "genres": [...] }: the genre of each of the model's outputs, in order
 *   history.parquet   one row per epoch (EpochRecord)
 *
 * Views: `classifier` (what evaluate and predict score with) and `history` (the report's curves).
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

/** A trained model as train writes it. */
export interface TrainedModel {
  model: tf.LayersModel;
  stats: Standardization | null;
  genres: string[];
}

export async function writeClassifier(dir: string, trained: TrainedModel, history: EpochRecord[]): Promise<void> {
  await saveModel(trained.model, modelDir(dir));
  writeFileSync(standardizePath(dir), JSON.stringify(trained.stats));
  writeFileSync(genresPath(dir), `${JSON.stringify({ genres: trained.genres }, null, 2)}\n`);
  await writeParquet(historyPath(dir), HISTORY_SCHEMA, history as never);
}

/**
 * What evaluate and predict score with: vectors in, a probability per genre out. The same object
 * for both, so a description gets the same probabilities in predict as in evaluate. The model
 * loads on first use, on the TF.js backend the reader selected.
 */
export interface Classifier {
  genres: string[];
  /** Probabilities, `genres.length` per row, of feature rows of width `dim` (dense or sparse). */
  predict(vectors: FeatureRows, dim: number): Promise<Float32Array>;
  /** Writes its files into another artifact (a stage after train that wraps the classifier). */
  save(dir: string): void;
}

export const CLASSIFIER = port<Classifier>('classifier');

export function openClassifier(dir: string): Classifier {
  const stats = JSON.parse(readFileSync(standardizePath(dir), 'utf8')) as Standardization | null;
  let model: Promise<tf.LayersModel> | undefined;
  // On sparse rows, the first layer's weights as a SparseProduct, made once (the model does not change).
  let sparseFirst: SparseProduct | undefined;
  return {
    genres: (JSON.parse(readFileSync(genresPath(dir), 'utf8')) as { genres: string[] }).genres,
    async predict(vectors, dim) {
      model ??= loadModel(modelDir(dir));
      const loaded = await model;
      if (isSparse(vectors) && !stats) sparseFirst ??= sparseProductOf(loaded);
      return predictProbabilities(loaded, vectors, dim, stats, undefined, sparseFirst);
    },
    save(to) {
      cpSync(modelDir(dir), modelDir(to), { recursive: true });
      for (const path of [standardizePath, genresPath]) cpSync(path(dir), path(to));
    },
  };
}

export const classifierView: View<Classifier> = {
  port: CLASSIFIER,
  files: ['model/', 'standardize.json', 'genres.json'],
  open: (dir) => openClassifier(dir),
};

export const HISTORY = port<EpochRecord[]>('history');
export const historyView: View<EpochRecord[]> = {
  port: HISTORY,
  files: ['history.parquet'],
  open: (dir) => readParquet<EpochRecord>(historyPath(dir)),
};

export const trainArtifact = contract('train', import.meta.url, { classifierView, historyView });
