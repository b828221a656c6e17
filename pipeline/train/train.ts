import { availableParallelism } from 'node:os';
import { UserError } from '../errors.js';
import { formatCount, info, warn } from '../log.js';
import { Rng } from '../random.js';
import { validationScores as scoresOf } from '../metrics/index.js';
import type { TrainConfig } from '../config/index.js';
import type { ManifestBody } from '../artifacts/store.js';
import { selectBackend, tf } from '../mlp/backend.js';
import { buildModel, fitStandardization, predictProbabilities, standardize, type Standardization } from '../mlp/model.js';
import { featuresBySplit } from '../embed/artifact.js';
import { denseSlice, isSparse, pickRows, type FeatureRows, type SparseRows } from '../mlp/rows.js';
import { SparseDenseLayer } from '../mlp/sparse.js';
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
  const backend = await selectBackend(run.settings.backend);
  const data = trainingData(run, train);
  const { model, history, bestEpoch } = await fitClassifier(data, train, seed);
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

/** The model trained on `data` (the seed also drives dropout: seed Math.random first, as trainClassifier does). */
export async function fitClassifier(data: TrainingData, train: TrainParams, seed: number) {
  const { model, optimizer } = compiledModel(data, train, seed);
  return { model, ...(await fitEpochs(model, optimizer, data, train, seed)) };
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

/** One batch's optimizer step: the mean loss and the correct count, as tensors not yet read. */
interface Trainer {
  step(picks: number[]): Promise<{ loss: tf.Scalar; correct: tf.Scalar }>;
  /** Brings the model's weights up to date (before it scores validation rows or is saved). */
  sync(): void;
  close(): Promise<void>;
}

/**
 * Dense rows: one optimizer step per batch on the whole model in training mode (dropout on), the
 * loss as tfjs-layers' fit computes it (the mean of each row's loss times its class weight, plus
 * the L2 penalties). Nothing is read back from the backend until the epoch ends: the loss and the
 * correct count stay tensors, summed across batches.
 */
function denseTrainer(model: tf.LayersModel, optimizer: tf.Optimizer, data: TrainingData, train: TrainParams, weights: Record<number, number> | undefined): Trainer {
  const x = data.train.x as Float32Array;
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const lossOf = batchLoss(data, train, weights);
  return {
    async step(picks) {
      const input = tf.tensor2d(pickRows(x, data.dim, picks) as Float32Array, [picks.length, data.dim]);
      const batch = lossOf(picks);
      let correct: tf.Scalar | undefined;
      const cost = optimizer.minimize(
        () => {
          const probs = model.apply(input, { training: true }) as tf.Tensor;
          correct = tf.keep(batch.correct(probs));
          return model.calculateLosses().reduce((total, penalty) => total.add(penalty), batch.loss(probs));
        },
        true,
        variables,
      )!;
      tf.dispose([input, ...batch.tensors]);
      return { loss: cost, correct: correct! };
    },
    sync() {},
    async close() {},
  };
}

/**
 * Sparse rows: the first dense layer is a SparseDenseLayer (typed arrays, only the rows' non-zeros
 * computed, mlp/sparse.ts), the rest of the model TF.js. Per batch: the layer's outputs become a
 * tensor, TF.js gives the loss's gradients for its own weights and for those outputs, and the
 * layer takes the latter back. Its weights go into the model's first layer before the model scores
 * or is saved, so the classifier artifact is the same dense model either way.
 */
function sparseTrainer(model: tf.LayersModel, optimizer: tf.Optimizer, data: TrainingData, train: TrainParams, weights: Record<number, number> | undefined): Trainer {
  const rows = data.train.x as SparseRows;
  const [first, ...rest] = model.layers;
  const [kernel, bias] = first!.getWeights();
  // Where the optimizer passes over every kernel weight (all but Adam without L2, which is lazy)
  // that pass is most of a step: split across the cores (each weight's update is its own).
  const threads = availableParallelism();
  const layer = new SparseDenseLayer(kernel!.dataSync() as Float32Array, bias!.dataSync() as Float32Array, train.optimizer, train.layers[0]?.l2 ?? 0, { threads });
  // The first layer's activation (linear before a batch norm; softmax when it is the output layer).
  const activation = tf.layers.activation({ activation: (train.layers[0] ? (train.layers[0].batch_norm ? 'linear' : train.layers[0].activation) : 'softmax') as never });
  const variables = rest.flatMap((l) => l.trainableWeights.map((w) => w.read() as tf.Variable));
  const lossOf = batchLoss(data, train, weights);
  const optimizerLr = optimizer as unknown as { learningRate: number };
  return {
    async step(picks) {
      const outputs = tf.variable(tf.tensor2d(layer.forward(rows, picks), [picks.length, layer.units]), true);
      const batch = lossOf(picks);
      let correct: tf.Scalar | undefined;
      const { value, grads } = tf.variableGrads(() => {
        let h = activation.apply(outputs) as tf.Tensor;
        for (const l of rest) h = l.apply(h, { training: true }) as tf.Tensor;
        correct = tf.keep(batch.correct(h));
        return rest.flatMap((l) => l.calculateLosses()).reduce((total, penalty) => total.add(penalty), batch.loss(h));
      }, [...variables, outputs]);
      const outputGrad = grads[outputs.name]!.dataSync() as Float32Array;
      optimizer.applyGradients(Object.fromEntries(variables.map((v) => [v.name, grads[v.name]!])));
      layer.backward(rows, picks, outputGrad);
      const penalty = layer.penalty();
      await layer.step(optimizerLr.learningRate);
      tf.dispose([outputs, ...Object.values(grads), ...batch.tensors]);
      const loss = penalty ? (value.add(penalty) as tf.Scalar) : value;
      if (penalty) value.dispose();
      return { loss, correct: correct! };
    },
    close: () => layer.close(),
    sync() {
      layer.flush();
      tf.tidy(() => first!.setWeights([tf.tensor2d(layer.kernel, kernel!.shape as [number, number]), tf.tensor1d(layer.bias)]));
    },
  };
}

/** A batch's labels (and class weights) as tensors, its loss and its correct count given the probabilities. */
function batchLoss(data: TrainingData, train: TrainParams, weights: Record<number, number> | undefined) {
  const loss = smoothedCrossEntropy(train.label_smoothing, data.labels.length);
  return (picks: number[]) => {
    const truth = tf.tensor1d(Int32Array.from(picks, (r) => data.train.y[r]!), 'int32');
    const target = tf.oneHot(truth, data.labels.length);
    const rowWeights = weights && tf.tensor1d(Float32Array.from(picks, (r) => weights[data.train.y[r]!]!));
    return {
      tensors: [truth, target, ...(rowWeights ? [rowWeights] : [])],
      loss: (probs: tf.Tensor) => {
        const perRow = loss(target, probs);
        return (rowWeights ? perRow.mul(rowWeights) : perRow).mean() as tf.Scalar;
      },
      correct: (probs: tf.Tensor) => probs.argMax(-1).equal(truth).sum().cast('float32') as tf.Scalar,
    };
  };
}

/** The epoch loop: a seeded shuffle, one pass, the validation scores, one line; early stopping. */
async function fitEpochs(model: tf.LayersModel, optimizer: tf.Optimizer, data: TrainingData, train: TrainParams, seed: number) {
  const weights = classWeights(train.class_weights, data.train.y, data.labels);
  const rows = data.train.y.length;
  const trainer = (isSparse(data.train.x) ? sparseTrainer : denseTrainer)(model, optimizer, data, train, weights);
  const order = new Rng(seed, 'epoch-order');
  const stopping = new EarlyStopping(model, train.early_stopping);
  const history: EpochRecord[] = [];
  for (let epoch = 1; epoch <= train.epochs; epoch++) {
    const lr = learningRate(train, epoch);
    // Optimizers read their rate at each step; tfjs has no public setter but for SGD.
    (optimizer as unknown as { learningRate: number }).learningRate = lr;
    const started = performance.now();
    const permutation = order.shuffle(Array.from({ length: rows }, (_, i) => i));
    let lossSum: tf.Scalar = tf.scalar(0);
    let correctSum: tf.Scalar = tf.scalar(0);
    for (let start = 0; start < rows; start += train.batch_size) {
      const picks = permutation.slice(start, start + train.batch_size);
      const { loss, correct } = await trainer.step(picks);
      const [nextLoss, nextCorrect] = [lossSum.add(loss.mul(picks.length)) as tf.Scalar, correctSum.add(correct) as tf.Scalar];
      tf.dispose([lossSum, correctSum, loss, correct]);
      [lossSum, correctSum] = [nextLoss, nextCorrect];
    }
    const [lossTotal, correctTotal] = [(await lossSum.data())[0]!, (await correctSum.data())[0]!];
    tf.dispose([lossSum, correctSum]);
    trainer.sync();
    const val = data.validation && validationScores(model, data.validation, data);
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

function validationScores(model: tf.LayersModel, validation: { x: FeatureRows; y: Int32Array }, data: TrainingData) {
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
