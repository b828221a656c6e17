import { availableParallelism } from 'node:os';
import { tf } from '../mlp/backend.js';
import { predictProbabilities } from '../mlp/model.js';
import { isSparse, pickRows, rowCount, type FeatureRows, type SparseRows } from '../mlp/rows.js';
import { SparseDenseLayer } from '../mlp/sparse.js';
import { ArrayOptimizer, type Parameter } from '../mlp/optimizer.js';
import { gradName, maskName, openNetSession, ort, scoringGraph, trainingGraph, weightName, type NetSpec } from '../mlp/onnx-net.js';
import type { TrainingData, TrainParams } from './train.js';

/**
 * How one optimizer step is computed. Three trainers share the epoch loop (train.ts):
 *
 * - ONNX Runtime (`onnxTrainer`, the default): the step's forward and backward passes in one ONNX
 *   graph (mlp/onnx-net.ts), the optimizer on typed arrays; on sparse rows the first layer is the
 *   sparse layer (mlp/sparse.ts) and the graph takes its outputs.
 * - TF.js on dense rows (`tfjsDenseTrainer`): optimizer.minimize on the whole model; batch norm
 *   layers and train.backend wasm, cpu or tensorflow train here.
 * - TF.js on sparse rows (`tfjsSparseTrainer`): the sparse layer, then the rest of the model in TF.js.
 *
 * All three compute what TF.js's layers would (dropout masks drawn as tf.dropout draws them, the
 * same loss and update rules), so a seed gives the same model on each, up to float rounding.
 */
export interface Trainer {
  /** One optimizer step on training rows `picks` at rate `lr`. */
  step(picks: number[], lr: number): Promise<void>;
  /** The loss summed over the rows stepped on since the last call, and how many were right; then 0 again. */
  epochTotals(): Promise<{ loss: number; correct: number }>;
  /** Brings the TF.js model's weights up to date (before it is scored, kept by early stopping, or saved). */
  sync(): Promise<void>;
  /** Class probabilities of `x` under the current weights (after `sync`). */
  probabilities(x: FeatureRows): Promise<Float32Array>;
  close(): Promise<void>;
}

/** Categorical cross-entropy on softmax outputs, with label smoothing. */
function smoothedCrossEntropy(smoothing: number, labels: number) {
  return (yTrue: tf.Tensor, yPred: tf.Tensor): tf.Tensor =>
    tf.tidy(() => {
      const target = smoothing > 0 ? yTrue.mul(1 - smoothing).add(smoothing / labels) : yTrue;
      return target.mul(yPred.clipByValue(1e-7, 1).log()).sum(-1).neg();
    });
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

/** Sums of a TF.js trainer's losses and correct counts, kept as tensors (nothing is read back until the epoch ends). */
class TensorTotals {
  private loss: tf.Scalar = tf.scalar(0);
  private correct: tf.Scalar = tf.scalar(0);

  add(loss: tf.Scalar, correct: tf.Scalar, rows: number): void {
    const [nextLoss, nextCorrect] = [this.loss.add(loss.mul(rows)) as tf.Scalar, this.correct.add(correct) as tf.Scalar];
    tf.dispose([this.loss, this.correct, loss, correct]);
    [this.loss, this.correct] = [nextLoss, nextCorrect];
  }

  async read(): Promise<{ loss: number; correct: number }> {
    const totals = { loss: (await this.loss.data())[0]!, correct: (await this.correct.data())[0]! };
    tf.dispose([this.loss, this.correct]);
    [this.loss, this.correct] = [tf.scalar(0), tf.scalar(0)];
    return totals;
  }
}

const tfjsProbabilities = (model: tf.LayersModel, data: TrainingData) => async (x: FeatureRows) => predictProbabilities(model, x, data.dim);

/**
 * TF.js on dense rows: one optimizer step per batch on the whole model in training mode (dropout
 * on), the loss as tfjs-layers' fit computes it (the mean of each row's loss times its class
 * weight, plus the L2 penalties).
 */
export function tfjsDenseTrainer(model: tf.LayersModel, optimizer: tf.Optimizer, data: TrainingData, train: TrainParams, weights: Record<number, number> | undefined): Trainer {
  const x = data.train.x as Float32Array;
  const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const lossOf = batchLoss(data, train, weights);
  const totals = new TensorTotals();
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
      totals.add(cost, correct!, picks.length);
    },
    epochTotals: () => totals.read(),
    async sync() {},
    probabilities: tfjsProbabilities(model, data),
    async close() {},
  };
}

/** The first layer of the model as a SparseDenseLayer, with the model's initial weights. */
function sparseFirstLayer(model: tf.LayersModel, train: TrainParams) {
  const [first] = model.layers;
  const [kernel, bias] = first!.getWeights();
  // Where the optimizer passes over every kernel weight (all but Adam without L2, which is lazy)
  // that pass is most of a step: split across the cores (each weight's update is its own).
  const layer = new SparseDenseLayer(kernel!.dataSync() as Float32Array, bias!.dataSync() as Float32Array, train.optimizer, train.layers[0]?.l2 ?? 0, { threads: availableParallelism() });
  const sync = async () => {
    await layer.flush();
    tf.tidy(() => first!.setWeights([tf.tensor2d(layer.kernel, kernel!.shape as [number, number]), tf.tensor1d(layer.bias)]));
  };
  return { layer, sync };
}

/**
 * TF.js on sparse rows: the first dense layer is a SparseDenseLayer (typed arrays, only the rows'
 * non-zeros computed, mlp/sparse.ts), the rest of the model TF.js. Per batch: the layer's outputs
 * become a tensor, TF.js gives the loss's gradients for its own weights and for those outputs, and
 * the layer takes the latter back. Its weights go into the model's first layer before the model
 * scores or is saved, so the classifier artifact is the same dense model either way.
 */
export function tfjsSparseTrainer(model: tf.LayersModel, optimizer: tf.Optimizer, data: TrainingData, train: TrainParams, weights: Record<number, number> | undefined): Trainer {
  const rows = data.train.x as SparseRows;
  const [, ...rest] = model.layers;
  const { layer, sync } = sparseFirstLayer(model, train);
  // The first layer's activation (linear before a batch norm; softmax when it is the output layer).
  const activation = tf.layers.activation({ activation: (train.layers[0] ? (train.layers[0].batch_norm ? 'linear' : train.layers[0].activation) : 'softmax') as never });
  const variables = rest.flatMap((l) => l.trainableWeights.map((w) => w.read() as tf.Variable));
  const lossOf = batchLoss(data, train, weights);
  const totals = new TensorTotals();
  return {
    async step(picks, lr) {
      const outputs = tf.variable(tf.tensor2d(await layer.forward(rows, picks), [picks.length, layer.units]), true);
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
      await layer.backward(outputGrad);
      const penalty = layer.penalty();
      await layer.step(lr);
      tf.dispose([outputs, ...Object.values(grads), ...batch.tensors]);
      const loss = penalty ? (value.add(penalty) as tf.Scalar) : value;
      if (penalty) value.dispose();
      totals.add(loss, correct!, picks.length);
    },
    epochTotals: () => totals.read(),
    sync,
    probabilities: tfjsProbabilities(model, data),
    close: () => layer.close(),
  };
}

/**
 * Dropout multipliers drawn as tf.dropout draws them (tfjs-layers' Dropout, training mode): one
 * tf.randomUniform per layer and step, in layer order, so that the seeded Math.random behind it
 * gives ONNX Runtime the masks TF.js would use; floor(u + keep) / keep in float32.
 */
function dropoutMask(rows: number, units: number, rate: number): Float32Array {
  const draw = tf.randomUniform([rows, units], 0, 1, 'float32');
  const uniform = draw.dataSync() as Float32Array;
  draw.dispose();
  const keep = Math.fround(1 - rate);
  const mask = new Float32Array(uniform.length);
  for (let i = 0; i < mask.length; i++) mask[i] = Math.floor(Math.fround(uniform[i]! + keep)) / keep;
  return mask;
}

/** Rows scored at once by ONNX Runtime (the activations of a batch stay in cache). */
const SCORING_BATCH = 512;

/**
 * ONNX Runtime: the model's dense layers as typed arrays (copied from the TF.js model, so its
 * seeded initialization is kept), one graph run per step for the loss and every gradient, then
 * the configured optimizer on the arrays. On sparse rows the first layer is a SparseDenseLayer
 * and the graph starts from its outputs. The TF.js model gets the weights back at `sync`.
 */
export async function onnxTrainer(model: tf.LayersModel, data: TrainingData, train: TrainParams, weights: Record<number, number> | undefined): Promise<Trainer> {
  const sparse = isSparse(data.train.x);
  const dense = model.layers.filter((l) => l.getClassName() === 'Dense');
  const first = sparse ? 1 : 0;
  const sparseLayer = sparse ? sparseFirstLayer(model, train) : undefined;
  const spec: NetSpec = { inputWidth: sparse ? (dense[0]!.getWeights()[1]!.shape[0] as number) : data.dim, labels: data.labels.length, layers: train.layers, firstOutside: sparse };
  const [session, scoring] = await Promise.all([openNetSession(trainingGraph(spec)), openNetSession(scoringGraph(spec))]);
  // Weights and gradients of the layers the graph holds, in the optimizer's memory: ONNX Runtime
  // reads the weights and writes the gradients in place, the optimizer's loops update them there.
  const held = dense.slice(first).map((layer, j) => ({ layer, index: j + first, dims: layer.getWeights().map((w) => w.shape as number[]) }));
  const optimizer = new ArrayOptimizer(
    train.optimizer,
    held.flatMap(({ layer, index }) => {
      const [kernel, bias] = layer.getWeights().map((w) => w.dataSync() as Float32Array);
      return [
        { weights: kernel!, l2: train.layers[index]?.l2 ?? 0 },
        { weights: bias!, l2: 0 },
      ] as Parameter[];
    }),
  );
  const layers = held.map(({ layer, index, dims }, j) => {
    const [kernel, bias] = [optimizer.arrays[2 * j]!, optimizer.arrays[2 * j + 1]!];
    return {
      layer,
      params: [kernel, bias],
      feeds: { [weightName(index, 'kernel')]: new ort.Tensor('float32', kernel.weights, dims[0]), [weightName(index, 'bias')]: new ort.Tensor('float32', bias.weights, dims[1]) },
      fetches: { [gradName(index, 'kernel')]: new ort.Tensor('float32', kernel.grads, dims[0]), [gradName(index, 'bias')]: new ort.Tensor('float32', bias.grads, dims[1]) },
    };
  });
  const weightFeeds = Object.assign({}, ...layers.map((l) => l.feeds)) as Record<string, ort.Tensor>;
  const gradFetches = Object.assign({}, ...layers.map((l) => l.fetches)) as Record<string, ort.Tensor>;
  const labels = data.labels.length;
  const smoothing = train.label_smoothing;
  let [lossSum, correctSum] = [0, 0];

  /** Each row's one-hot label, smoothed, times its class weight and 1 / rows (the graph sums). */
  const targets = (picks: number[]) => {
    const target = new Float32Array(picks.length * labels);
    picks.forEach((r, b) => {
      const y = data.train.y[r]!;
      const scale = (weights?.[y] ?? 1) / picks.length;
      for (let j = 0; j < labels; j++) target[b * labels + j] = ((j === y ? 1 - smoothing : 0) + smoothing / labels) * scale;
    });
    return target;
  };
  const inputOf = (x: Float32Array, rows: number) => new ort.Tensor('float32', x, [rows, spec.inputWidth]);

  return {
    async step(picks, lr) {
      const n = picks.length;
      const input = sparseLayer ? await sparseLayer.layer.forward(data.train.x as SparseRows, picks) : (pickRows(data.train.x, data.dim, picks) as Float32Array);
      const feeds: Record<string, ort.Tensor> = { ...weightFeeds, [sparse ? 'z0' : 'x']: inputOf(input, n), target: new ort.Tensor('float32', targets(picks), [n, labels]) };
      train.layers.forEach((l, i) => {
        if (l.dropout > 0) feeds[maskName(i)] = new ort.Tensor('float32', dropoutMask(n, l.units, l.dropout), [n, l.units]);
      });
      const out = await session.run(feeds, { ...gradFetches, loss: null, penalty: null, predicted: null, ...(sparse ? { grad_z0: null } : {}) });
      let loss = (out.loss!.data as Float32Array)[0]! + (out.penalty!.data as Float32Array)[0]!;
      const predicted = out.predicted!.data as BigInt64Array;
      for (let b = 0; b < n; b++) if (Number(predicted[b]) === data.train.y[picks[b]!]) correctSum++;
      if (sparseLayer) {
        await sparseLayer.layer.backward(out.grad_z0!.data as Float32Array);
        loss += sparseLayer.layer.penalty();
        await sparseLayer.layer.step(lr);
      }
      lossSum += loss * n;
      optimizer.step(lr);
    },
    async epochTotals() {
      const totals = { loss: lossSum, correct: correctSum };
      [lossSum, correctSum] = [0, 0];
      return totals;
    },
    async sync() {
      await sparseLayer?.sync();
      tf.tidy(() => {
        for (const { layer, params } of layers) layer.setWeights(params.map((p, k) => tf.tensor(p.weights, layer.getWeights()[k]!.shape)));
      });
    },
    async probabilities(x) {
      const rows = rowCount(x, data.dim);
      const out = new Float32Array(rows * labels);
      for (let start = 0; start < rows; start += SCORING_BATCH) {
        const end = Math.min(rows, start + SCORING_BATCH);
        const input = sparseLayer ? sparseLayer.layer.outputs(x as SparseRows, start, end) : (x as Float32Array).subarray(start * data.dim, end * data.dim);
        const result = await scoring.run({ ...weightFeeds, [sparse ? 'z0' : 'x']: inputOf(input, end - start) });
        out.set(result.probabilities!.data as Float32Array, start * labels);
      }
      return out;
    },
    async close() {
      await sparseLayer?.layer.close();
      await Promise.all([session.release(), scoring.release()]);
    },
  };
}
