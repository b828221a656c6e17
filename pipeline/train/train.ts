import { availableParallelism } from 'node:os';
import { UserError } from '../errors.js';
import { detail, formatCount, info, warn } from '../log.js';
import { Rng } from '../random.js';
import { validationScores as scoresOf } from '../metrics/index.js';
import type { TrainConfig } from '../config/index.js';
import type { ManifestBody } from '../artifacts/store.js';
import { selectBackend, tf } from '../mlp/backend.js';
import { buildModel, fitStandardization, standardize, type Standardization } from '../mlp/model.js';
import { featuresBySplit } from '../embed/artifact.js';
import { denseSlice, isSparse, type FeatureRows } from '../mlp/rows.js';
import { ort, unsupportedBy } from '../mlp/onnx-net.js';
import { onnxTrainer, tfjsDenseTrainer, tfjsSparseTrainer, type Trainer } from './trainers.js';
import { writeClassifier, type EpochRecord } from './artifact.js';
import type { TrainRun } from './signature.js';

/** The training settings the build sees: train.* without the backend (a setting), train.seed possibly unset. */
export type TrainParams = TrainRun['params']['train'];

export { HISTORY_SCHEMA, type EpochRecord } from './artifact.js';

/** The learning rate of an epoch (1-based) under the configured schedule. */
export function learningRate(train: Pick<TrainConfig, 'optimizer' | 'schedule' | 'epochs'>, epoch: number): number {
  const { lr } = train.optimizer;
  const s = train.schedule;
  if (s.name === 'step') return lr * s.gamma ** Math.floor((epoch - 1) / s.step_epochs);
  if (s.name === 'cosine') return s.min_lr + 0.5 * (lr - s.min_lr) * (1 + Math.cos((Math.PI * (epoch - 1)) / Math.max(1, train.epochs - 1)));
  return lr;
}

function makeOptimizer(train: TrainParams): tf.Optimizer {
  const { name, lr, momentum } = train.optimizer;
  if (name === 'sgd') return tf.train.momentum(lr, momentum);
  if (name === 'rmsprop') return tf.train.rmsprop(lr, 0.9, momentum);
  return tf.train.adam(lr);
}

/** Class weights as model.fit takes them: `balanced` is n / (classes * count), as scikit-learn computes it. */
export function classWeights(setting: TrainConfig['class_weights'], y: Int32Array, labels: string[]): Record<number, number> | undefined {
  if (setting === 'none') return undefined;
  const counts = new Array<number>(labels.length).fill(0);
  for (const label of y) counts[label]!++;
  if (setting === 'balanced') return Object.fromEntries(counts.map((c, i) => [i, c ? y.length / (labels.length * c) : 0]));
  for (const genre of Object.keys(setting)) if (!labels.includes(genre)) throw new UserError(`train.class_weights.${genre}: not a genre of the training data (${labels.join(', ')})`);
  return Object.fromEntries(labels.map((l, i) => [i, setting[l] ?? 1]));
}

/**
 * tfjs draws dropout masks and shuffles from Math.random when no seed is given. Within the train
 * process, Math.random is replaced by a generator seeded from the config, so that one seed gives
 * the same weights and metrics on the same backend.
 */
export function seedMathRandom(seed: number): void {
  const rng = new Rng(seed, 'tfjs');
  Math.random = () => rng.next();
}

/**
 * Trains the MLP on the train split, watching the validation split each epoch, and writes
 * the train artifact (`artifact.ts`): model/, standardize.json, genres.json and history.parquet.
 */
export async function trainClassifier(run: TrainRun): Promise<ManifestBody> {
  const { train } = run.params;
  const seed = ('seed' in train ? train.seed : null) ?? run.params.seed;
  seedMathRandom(seed);
  const engine = await selectEngine(run.settings.backend, train);
  const data = trainingData(run, train);
  const { model, history, bestEpoch } = await fitClassifier(data, train, seed, engine);
  await writeClassifier(run.dir, { model, stats: data.stats, genres: data.labels }, history);
  // The model holds the best epoch's weights only when they were restored; otherwise the last epoch's.
  const kept = train.early_stopping?.restore_best && bestEpoch ? bestEpoch : history.length;
  const last = history[kept - 1]!;
  return {
    rows: { train: data.train.y.length, validation: data.validation?.y.length ?? 0, epochs: history.length },
    timings: { rows_per_second: Math.round(history.reduce((a, h) => a + h.rows_per_second, 0) / history.length) },
    versions: { tfjs: tf.version.tfjs, ...(engine === 'onnxruntime' ? { onnxruntime: ort.env.versions.common } : {}) },
    details: {
      backend: engine,
      parameters: model.countParams(),
      input_dim: data.dim,
      labels: data.labels.length,
      best_epoch: bestEpoch || null,
      kept_epoch: kept,
      early_stopped: history.length < train.epochs,
      val_loss: last.val_loss,
      val_accuracy: last.val_accuracy,
      val_macro_f1: last.val_macro_f1,
    },
  };
}

/**
 * What computes the training steps: ONNX Runtime (`onnxruntime`) or TF.js on the backend named
 * (`tensorflow`, `wasm`, `cpu`). `auto` takes ONNX Runtime where it can train the net (all but
 * batch norm), else TF.js's best backend. TF.js is loaded either way: the model is a TF.js model.
 */
export type Engine = 'onnxruntime' | Awaited<ReturnType<typeof selectBackend>>;

export async function selectEngine(setting: TrainConfig['backend'], train: Pick<TrainParams, 'layers'>): Promise<Engine> {
  const unsupported = unsupportedBy(train.layers);
  if (setting === 'onnxruntime' && unsupported) throw new UserError(`train.backend: onnxruntime cannot train this net (${unsupported}); use auto, wasm, cpu or tensorflow`);
  const backend = await selectBackend(setting);
  if (setting === 'onnxruntime' || (setting === 'auto' && !unsupported)) {
    info(`train: ONNX Runtime ${ort.env.versions.common} on cpu with ${availableParallelism()} threads (one graph per step: forward, loss, backward)`);
    return 'onnxruntime';
  }
  if (setting === 'auto') detail(`train: not ONNX Runtime: ${unsupported}`);
  return backend;
}

/** The model trained on `data` (the seed also drives dropout: seed Math.random first, as trainClassifier does). */
export async function fitClassifier(data: TrainingData, train: TrainParams, seed: number, engine: Engine = 'onnxruntime') {
  const { model, optimizer } = compiledModel(data, train, seed);
  const weights = classWeights(train.class_weights, data.train.y, data.labels);
  const trainer =
    engine === 'onnxruntime' ? await onnxTrainer(model, data, train, weights) : (isSparse(data.train.x) ? tfjsSparseTrainer : tfjsDenseTrainer)(model, optimizer, data, train, weights);
  return { model, ...(await fitEpochs(model, optimizer, trainer, data, train, seed)) };
}

/** The training and validation rows, standardized with statistics of the training rows only. */
export interface TrainingData {
  dim: number;
  labels: string[];
  stats: Standardization | null;
  train: { x: FeatureRows; y: Int32Array };
  validation?: { x: FeatureRows; y: Int32Array };
}

function trainingData(run: TrainRun, train: TrainParams): TrainingData {
  const features = featuresBySplit(run.inputs.vectors, run.inputs.splits, run.inputs.genres);
  const { dim, labels } = features;
  const rows = features.splits.train;
  if (!rows?.y.length) throw new UserError('train: the ingest artifact has no training rows');
  const validation = features.splits.validation;
  if (features.sparse && train.standardize) {
    // Subtracting each column's mean fills every zero: the rows would be dense from here on.
    warn(`train: warning: train.standardize makes the ${formatCount(dim)}-wide sparse rows dense (slow, ${formatCount((rows.y.length * dim * 4) / 2 ** 20)} MiB); set train.standardize: false to train on them sparse`);
    const dense = (x: FeatureRows, n: number) => denseSlice(x, dim, 0, n);
    const trainRows = dense(rows.x, rows.y.length);
    const stats = fitStandardization(trainRows, dim);
    return { dim, labels, stats, train: { x: standardize(trainRows, dim, stats), y: rows.y }, validation: validation && { x: standardize(dense(validation.x, validation.y.length), dim, stats), y: validation.y } };
  }
  const stats = train.standardize ? fitStandardization(rows.x as Float32Array, dim) : null;
  const scaled = (x: FeatureRows) => (isSparse(x) ? x : standardize(x, dim, stats));
  return { dim, labels, stats, train: { x: scaled(rows.x), y: rows.y }, validation: validation && { x: scaled(validation.x), y: validation.y } };
}

function compiledModel(data: TrainingData, train: TrainParams, seed: number) {
  const model = buildModel(data.dim, data.labels.length, train, seed);
  const optimizer = makeOptimizer(train);
  const layers = train.layers.map((l) => l.units).join(' -> ');
  const sparse = isSparse(data.train.x) ? `, sparse input (${formatCount(data.train.x.indices.length / data.train.y.length)} non-zeros a row)` : '';
  info(`train: ${data.dim} -> ${layers} -> ${data.labels.length} (${formatCount(model.countParams())} parameters), ${formatCount(data.train.y.length)} rows, ${formatCount(data.validation?.y.length ?? 0)} validation${sparse}`);
  return { model, optimizer };
}

/** The epoch loop: a seeded shuffle, one pass, the validation scores, one line; early stopping. */
async function fitEpochs(model: tf.LayersModel, optimizer: tf.Optimizer, trainer: Trainer, data: TrainingData, train: TrainParams, seed: number) {
  const rows = data.train.y.length;
  const order = new Rng(seed, 'epoch-order');
  const stopping = new EarlyStopping(model, train.early_stopping);
  const history: EpochRecord[] = [];
  for (let epoch = 1; epoch <= train.epochs; epoch++) {
    const lr = learningRate(train, epoch);
    // Optimizers read their rate at each step; tfjs has no public setter but for SGD.
    (optimizer as unknown as { learningRate: number }).learningRate = lr;
    const started = performance.now();
    const permutation = order.shuffle(Array.from({ length: rows }, (_, i) => i));
    for (let start = 0; start < rows; start += train.batch_size) await trainer.step(permutation.slice(start, start + train.batch_size), lr);
    const { loss: lossTotal, correct: correctTotal } = await trainer.epochTotals();
    await trainer.sync();
    const val = data.validation && (await validationScores(trainer, data.validation, data));
    const seconds = (performance.now() - started) / 1000;
    const record: EpochRecord = {
      epoch,
      loss: lossTotal / rows,
      accuracy: correctTotal / rows,
      val_loss: val?.loss ?? null,
      val_accuracy: val?.accuracy ?? null,
      val_macro_f1: val?.macroF1 ?? null,
      learning_rate: lr,
      seconds,
      rows_per_second: rows / seconds,
    };
    history.push(record);
    logEpoch(record, train, Math.ceil(rows / train.batch_size));
    if (val && stopping.shouldStop(epoch, val)) break;
  }
  await trainer.close();
  stopping.restoreBest();
  return { history, bestEpoch: stopping.best.epoch };
}

async function validationScores(trainer: Trainer, validation: { x: FeatureRows; y: Int32Array }, data: TrainingData) {
  const m = scoresOf(validation.y, await trainer.probabilities(validation.x), data.labels);
  return { loss: m.log_loss, accuracy: m.accuracy, macroF1: m.macro_f1 };
}

function logEpoch(record: EpochRecord, train: TrainParams, steps: number): void {
  const val = record.val_loss === null ? '' : `  val_loss ${record.val_loss.toFixed(4)}  val_acc ${record.val_accuracy!.toFixed(3)}  val_macro_f1 ${record.val_macro_f1!.toFixed(3)}`;
  info(
    `train: epoch ${record.epoch}/${train.epochs}  loss ${record.loss.toFixed(4)}  acc ${record.accuracy.toFixed(3)}${val}` +
      `  lr ${record.learning_rate.toPrecision(3)}  ${formatCount(record.rows_per_second)} rows/s  ${((record.seconds * 1000) / steps).toFixed(1)} ms/step`,
  );
}

/** Keeps the best epoch's score (and weights, when they are to be restored) and counts epochs without progress. */
class EarlyStopping {
  best = { epoch: 0, score: -Infinity, weights: [] as tf.Tensor[] };
  private stale = 0;

  constructor(
    private readonly model: tf.LayersModel,
    private readonly settings: TrainParams['early_stopping'],
  ) {}

  shouldStop(epoch: number, val: { loss: number; macroF1: number }): boolean {
    if (!this.settings) return false;
    const monitor = this.settings.monitor ?? 'val_loss';
    const score = monitor === 'val_loss' ? -val.loss : val.macroF1;
    if (score > this.best.score) {
      tf.dispose(this.best.weights);
      this.best = { epoch, score, weights: this.settings.restore_best ? this.model.getWeights().map((w) => w.clone()) : [] };
      this.stale = 0;
      return false;
    }
    if (++this.stale < this.settings.patience) return false;
    info(`train: early stop after epoch ${epoch}: ${monitor} has not improved for ${this.stale} epochs (best: epoch ${this.best.epoch})`);
    return true;
  }

  restoreBest(): void {
    if (this.settings?.restore_best && this.best.weights.length) {
      this.model.setWeights(this.best.weights);
      info(`train: restored the weights of epoch ${this.best.epoch}`);
    }
    tf.dispose(this.best.weights);
  }
}
