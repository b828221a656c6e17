import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import { formatCount, info } from '../log.js';
import { Rng } from '../random.js';
import { writeParquet } from '../parquet/index.js';
import { computeMetrics } from '../metrics/index.js';
import type { TrainConfig } from '../config/index.js';
import type { ManifestBody } from '../artifacts/store.js';
import type { StageRun } from '../stage-run.js';
import { selectBackend, tf } from './backend.js';
import { buildModel, fitStandardization, predictProbabilities, saveModel, standardize } from './model.js';
import { loadFeatures } from './features.js';

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

/** The learning rate of an epoch (1-based) under the configured schedule. */
export function learningRate(train: TrainConfig, epoch: number): number {
  const { lr } = train.optimizer;
  const s = train.schedule;
  if (s.name === 'step') return lr * s.gamma ** Math.floor((epoch - 1) / s.step_epochs);
  if (s.name === 'cosine') return s.min_lr + 0.5 * (lr - s.min_lr) * (1 + Math.cos((Math.PI * (epoch - 1)) / Math.max(1, train.epochs - 1)));
  return lr;
}

function makeOptimizer(train: TrainConfig): tf.Optimizer {
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
 * model/ (TF.js layers format), standardize.json, labels.json and history.parquet.
 */
export async function trainClassifier(run: StageRun): Promise<ManifestBody> {
  const { config } = run.loaded;
  const train = config.train;
  const seed = train.seed ?? config.seed;
  seedMathRandom(seed);
  const backend = await selectBackend(train.backend);
  const features = await loadFeatures(run.inputs.ingest!.dir, run.inputs.embed!.dir);
  const { dim, labels } = features;
  const trainSplit = features.splits.train;
  if (!trainSplit?.y.length) throw new UserError('train: the ingest artifact has no training rows');
  const validation = features.splits.validation;
  const stats = train.standardize ? fitStandardization(trainSplit.x, dim) : null;
  const xTrain = standardize(trainSplit.x, dim, stats);
  const xVal = validation ? standardize(validation.x, dim, stats) : undefined;

  const model = buildModel(dim, labels.length, train, seed);
  const optimizer = makeOptimizer(train);
  model.compile({ optimizer, loss: smoothedCrossEntropy(train.label_smoothing, labels.length), metrics: ['accuracy'] });
  const parameters = model.countParams();
  info(`train: ${dim} -> ${train.layers.map((l) => l.units).join(' -> ')} -> ${labels.length} (${formatCount(parameters)} parameters), ${formatCount(trainSplit.y.length)} rows, ${formatCount(validation?.y.length ?? 0)} validation`);

  const weights = classWeights(train.class_weights, trainSplit.y, labels);
  const xAll = tf.tensor2d(xTrain, [trainSplit.y.length, dim]);
  const yAll = tf.oneHot(tf.tensor1d(trainSplit.y, 'int32'), labels.length);
  const order = new Rng(seed, 'epoch-order');
  const history: EpochRecord[] = [];
  const monitor = train.early_stopping?.monitor ?? 'val_loss';
  let best = { epoch: 0, score: -Infinity, weights: [] as tf.Tensor[] };
  let stale = 0;

  for (let epoch = 1; epoch <= train.epochs; epoch++) {
    const lr = learningRate(train, epoch);
    // Optimizers read their rate at each step; tfjs has no public setter but for SGD.
    (optimizer as unknown as { learningRate: number }).learningRate = lr;
    const started = performance.now();
    const permutation = tf.tensor1d(order.shuffle(Array.from({ length: trainSplit.y.length }, (_, i) => i)), 'int32');
    const [xs, ys] = [tf.gather(xAll, permutation), tf.gather(yAll, permutation)];
    const fit = await model.fit(xs, ys, { epochs: 1, batchSize: train.batch_size, shuffle: false, classWeight: weights, verbose: 0, yieldEvery: 'never' });
    tf.dispose([xs, ys, permutation]);
    let val: { loss: number; accuracy: number; macroF1: number } | undefined;
    if (validation && xVal) {
      const m = computeMetrics(validation.y, predictProbabilities(model, xVal, dim), labels, { topK: 1, bins: 1, majority: 0 });
      val = { loss: m.log_loss, accuracy: m.accuracy, macroF1: m.macro.f1 };
    }
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
      rows_per_second: trainSplit.y.length / seconds,
    };
    history.push(record);
    const steps = Math.ceil(trainSplit.y.length / train.batch_size);
    info(
      `train: epoch ${epoch}/${train.epochs}  loss ${record.loss.toFixed(4)}  acc ${record.accuracy.toFixed(3)}` +
        (val ? `  val_loss ${val.loss.toFixed(4)}  val_acc ${val.accuracy.toFixed(3)}  val_macro_f1 ${val.macroF1.toFixed(3)}` : '') +
        `  lr ${lr.toPrecision(3)}  ${formatCount(record.rows_per_second)} rows/s  ${((seconds * 1000) / steps).toFixed(1)} ms/step`,
    );
    if (!val || !train.early_stopping) continue;
    const score = monitor === 'val_loss' ? -val.loss : val.macroF1;
    if (score > best.score) {
      tf.dispose(best.weights);
      best = { epoch, score, weights: train.early_stopping.restore_best ? model.getWeights().map((w) => w.clone()) : [] };
      stale = 0;
    } else if (++stale >= train.early_stopping.patience) {
      info(`train: early stop after epoch ${epoch}: ${monitor} has not improved for ${stale} epochs (best: epoch ${best.epoch})`);
      break;
    }
  }
  if (train.early_stopping?.restore_best && best.weights.length) {
    model.setWeights(best.weights);
    info(`train: restored the weights of epoch ${best.epoch}`);
  }
  tf.dispose([xAll, yAll, ...best.weights]);

  await saveModel(model, join(run.dir, 'model'));
  writeFileSync(join(run.dir, 'standardize.json'), JSON.stringify(stats));
  writeFileSync(join(run.dir, 'labels.json'), `${JSON.stringify({ labels }, null, 2)}\n`);
  await writeParquet(join(run.dir, 'history.parquet'), HISTORY_SCHEMA, history as never);
  // The model holds the best epoch's weights only when they were restored; otherwise the last epoch's.
  const kept = train.early_stopping?.restore_best && best.epoch ? best.epoch : history.length;
  const last = history[kept - 1]!;
  return {
    rows: { train: trainSplit.y.length, validation: validation?.y.length ?? 0, epochs: history.length },
    timings: { rows_per_second: Math.round(history.reduce((a, h) => a + h.rows_per_second, 0) / history.length) },
    versions: { tfjs: tf.version.tfjs },
    details: {
      backend,
      parameters,
      input_dim: dim,
      labels: labels.length,
      best_epoch: best.epoch || null,
      kept_epoch: kept,
      early_stopped: history.length < train.epochs,
      val_loss: last.val_loss,
      val_accuracy: last.val_accuracy,
      val_macro_f1: last.val_macro_f1,
    },
  };
}
