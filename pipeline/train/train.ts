import { UserError } from '../errors.js';
import { formatCount, info } from '../log.js';
import { Rng } from '../random.js';
import { validationScores as scoresOf } from '../metrics/index.js';
import type { TrainConfig } from '../config/index.js';
import type { ManifestBody } from '../artifacts/store.js';
import { selectBackend, tf } from '../mlp/backend.js';
import { buildModel, fitStandardization, predictProbabilities, standardize, type Standardization } from '../mlp/model.js';
import { featuresBySplit } from '../embed/artifact.js';
import { writeClassifier, type EpochRecord } from './artifact.js';
import type { TrainRun } from './signature.js';

/** The training settings the build sees: train.* without the backend (a setting), train.seed possibly unset. */
type TrainParams = TrainRun['params']['train'];

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

/** Categorical cross-entropy on softmax outputs, with label smoothing. */
function smoothedCrossEntropy(smoothing: number, labels: number) {
  return (yTrue: tf.Tensor, yPred: tf.Tensor): tf.Tensor =>
    tf.tidy(() => {
      const target = smoothing > 0 ? yTrue.mul(1 - smoothing).add(smoothing / labels) : yTrue;
      return target.mul(yPred.clipByValue(1e-7, 1).log()).sum(-1).neg();
    });
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
function seedMathRandom(seed: number): void {
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
  const backend = await selectBackend(run.settings.backend);
  const data = trainingData(run, train);
  const { model, optimizer } = compiledModel(data, train, seed);
  const { history, bestEpoch } = await fitEpochs(model, optimizer, data, train, seed);
  await writeClassifier(run.dir, { model, stats: data.stats, genres: data.labels }, history);
  // The model holds the best epoch's weights only when they were restored; otherwise the last epoch's.
  const kept = train.early_stopping?.restore_best && bestEpoch ? bestEpoch : history.length;
  const last = history[kept - 1]!;
  return {
    rows: { train: data.train.y.length, validation: data.validation?.y.length ?? 0, epochs: history.length },
    timings: { rows_per_second: Math.round(history.reduce((a, h) => a + h.rows_per_second, 0) / history.length) },
    versions: { tfjs: tf.version.tfjs },
    details: {
      backend,
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

/** The training and validation rows, standardized with statistics of the training rows only. */
interface TrainingData {
  dim: number;
  labels: string[];
  stats: Standardization | null;
  train: { x: Float32Array; y: Int32Array };
  validation?: { x: Float32Array; y: Int32Array };
}

function trainingData(run: TrainRun, train: TrainParams): TrainingData {
  const features = featuresBySplit(run.inputs.vectors, run.inputs.splits, run.inputs.genres);
  const { dim, labels } = features;
  const rows = features.splits.train;
  if (!rows?.y.length) throw new UserError('train: the ingest artifact has no training rows');
  const stats = train.standardize ? fitStandardization(rows.x, dim) : null;
  const validation = features.splits.validation;
  return {
    dim,
    labels,
    stats,
    train: { x: standardize(rows.x, dim, stats), y: rows.y },
    validation: validation && { x: standardize(validation.x, dim, stats), y: validation.y },
  };
}

function compiledModel(data: TrainingData, train: TrainParams, seed: number) {
  const model = buildModel(data.dim, data.labels.length, train, seed);
  const optimizer = makeOptimizer(train);
  model.compile({ optimizer, loss: smoothedCrossEntropy(train.label_smoothing, data.labels.length), metrics: ['accuracy'] });
  const layers = train.layers.map((l) => l.units).join(' -> ');
  info(`train: ${data.dim} -> ${layers} -> ${data.labels.length} (${formatCount(model.countParams())} parameters), ${formatCount(data.train.y.length)} rows, ${formatCount(data.validation?.y.length ?? 0)} validation`);
  return { model, optimizer };
}

/** The epoch loop: a seeded shuffle, one pass, the validation scores, one line; early stopping. */
async function fitEpochs(model: tf.LayersModel, optimizer: tf.Optimizer, data: TrainingData, train: TrainParams, seed: number) {
  const weights = classWeights(train.class_weights, data.train.y, data.labels);
  const rows = data.train.y.length;
  const xAll = tf.tensor2d(data.train.x, [rows, data.dim]);
  const yAll = tf.oneHot(tf.tensor1d(data.train.y, 'int32'), data.labels.length);
  const order = new Rng(seed, 'epoch-order');
  const stopping = new EarlyStopping(model, train.early_stopping);
  const history: EpochRecord[] = [];
  for (let epoch = 1; epoch <= train.epochs; epoch++) {
    const lr = learningRate(train, epoch);
    // Optimizers read their rate at each step; tfjs has no public setter but for SGD.
    (optimizer as unknown as { learningRate: number }).learningRate = lr;
    const started = performance.now();
    const permutation = tf.tensor1d(order.shuffle(Array.from({ length: rows }, (_, i) => i)), 'int32');
    const [xs, ys] = [tf.gather(xAll, permutation), tf.gather(yAll, permutation)];
    const fit = await model.fit(xs, ys, { epochs: 1, batchSize: train.batch_size, shuffle: false, classWeight: weights, verbose: 0, yieldEvery: 'never' });
    tf.dispose([xs, ys, permutation]);
    const val = data.validation && validationScores(model, data.validation, data);
    const seconds = (performance.now() - started) / 1000;
    const record: EpochRecord = {
      epoch,
      loss: fit.history.loss![0] as number,
      accuracy: fit.history.acc![0] as number,
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
  stopping.restoreBest();
  tf.dispose([xAll, yAll]);
  return { history, bestEpoch: stopping.best.epoch };
}

function validationScores(model: tf.LayersModel, validation: { x: Float32Array; y: Int32Array }, data: TrainingData) {
  const m = scoresOf(validation.y, predictProbabilities(model, validation.x, data.dim), data.labels);
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
