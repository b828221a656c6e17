import { test } from 'node:test';
import assert from 'node:assert/strict';
import { selectBackend, tf } from '../pipeline/mlp/backend.js';
import { sparseFromDense, type FeatureRows } from '../pipeline/mlp/rows.js';
import { loadConfig } from '../pipeline/config/index.js';
import { Rng } from '../pipeline/random.js';
import { fitClassifier, seedMathRandom, selectEngine, type Engine, type TrainingData, type TrainParams } from '../pipeline/train/train.js';

// ONNX Runtime's training step (mlp/onnx-net.ts, train/trainers.ts) is a second implementation of
// what TF.js computes: the same seeded net trained a few steps by each must end with the same
// weights (float rounding apart), dropout masks and all.

const { config } = loadConfig('configs/default.yaml', []);

/** Rows whose label depends on them, some of them sparse-looking (zeros), split train/validation. */
function dataset(dim: number, labels: number, rows: number, sparse: boolean): TrainingData {
  const rng = new Rng(5, 'onnx-trainer-test');
  const x = Float32Array.from({ length: rows * dim }, () => (sparse && rng.next() < 0.8 ? 0 : rng.next() * 2 - 1));
  const y = Int32Array.from({ length: rows }, (_, r) => Math.abs(Math.floor((x[r * dim]! - x[r * dim + 1]! + x[r * dim + 2]!) * labels)) % labels);
  const validation = 16;
  const rowsOf = (from: number, to: number): FeatureRows => (sparse ? sparseFromDense(x.slice(from * dim, to * dim), dim) : x.slice(from * dim, to * dim));
  return {
    dim,
    labels: Array.from({ length: labels }, (_, i) => `g${i}`),
    stats: null,
    train: { x: rowsOf(validation, rows), y: y.slice(validation) },
    validation: { x: rowsOf(0, validation), y: y.slice(0, validation) },
  };
}

async function trained(data: TrainingData, train: TrainParams, engine: Engine) {
  seedMathRandom(11);
  const { model, history } = await fitClassifier(data, train, 11, engine);
  const weights = model.getWeights().map((w) => w.dataSync() as Float32Array);
  model.dispose();
  return { weights, history };
}

async function assertSameTraining(data: TrainingData, overrides: Partial<TrainParams>, what: string) {
  const train = { ...config.train, epochs: 2, batch_size: 16, early_stopping: null, ...overrides } as TrainParams;
  const reference = await trained(data, train, 'wasm');
  const onnx = await trained(data, train, 'onnxruntime');
  let worst = 0;
  let moved = 0;
  reference.weights.forEach((w, i) => {
    for (let k = 0; k < w.length; k++) worst = Math.max(worst, Math.abs(w[k]! - onnx.weights[i]![k]!));
  });
  // The initial weights, to be sure training moved them.
  seedMathRandom(11);
  const untrained = (await fitClassifier(data, { ...train, epochs: 1, optimizer: { ...train.optimizer, lr: 1e-12 } }, 11, 'wasm')).model;
  untrained.getWeights().forEach((w, i) => {
    const before = w.dataSync();
    for (let k = 0; k < before.length; k++) moved = Math.max(moved, Math.abs(before[k]! - reference.weights[i]![k]!));
  });
  untrained.dispose();
  assert.ok(moved > 1e-3, `${what}: training moved the weights (by ${moved})`);
  assert.ok(worst < 2e-5, `${what}: ONNX Runtime's weights differ from TF.js's by ${worst}`);
  reference.history.forEach((h, i) => {
    const o = onnx.history[i]!;
    assert.ok(Math.abs(h.loss - o.loss) < 1e-4 * Math.max(1, h.loss), `${what}: epoch ${h.epoch} training loss ${o.loss} vs ${h.loss}`);
    assert.ok(Math.abs(h.val_loss! - o.val_loss!) < 1e-4 * Math.max(1, h.val_loss!), `${what}: epoch ${h.epoch} validation loss ${o.val_loss} vs ${h.val_loss}`);
    assert.equal(o.accuracy, h.accuracy, `${what}: epoch ${h.epoch} training accuracy`);
  });
}

test('ONNX Runtime trains as TF.js does: every activation, dropout, L2, label smoothing, class weights, each optimizer', async () => {
  await selectBackend('wasm');
  const data = dataset(12, 4, 112, false);
  const layer = (activation: string, extra = {}) => ({ units: 10, activation, dropout: 0.25, batch_norm: false, l2: 0, ...extra });
  for (const activation of ['relu', 'gelu', 'tanh', 'sigmoid', 'elu', 'selu', 'swish', 'linear']) {
    await assertSameTraining(data, { layers: [layer(activation), layer(activation, { units: 6, dropout: 0 })] as TrainParams['layers'] }, activation);
  }
  const relu = [layer('relu', { l2: 0.01 }), layer('relu', { units: 6 })] as TrainParams['layers'];
  await assertSameTraining(data, { layers: relu, label_smoothing: 0.1, class_weights: 'balanced' }, 'L2, label smoothing and class weights');
  await assertSameTraining(data, { layers: relu, optimizer: { name: 'sgd', lr: 0.05, momentum: 0.9 } }, 'SGD with momentum');
  await assertSameTraining(data, { layers: relu, optimizer: { name: 'rmsprop', lr: 0.003, momentum: 0.5 } }, 'RMSprop');
  await assertSameTraining(data, { layers: [] }, 'no hidden layer');
});

test('on sparse rows ONNX Runtime takes the sparse first layer outputs and trains as TF.js does', async () => {
  await selectBackend('wasm');
  const data = dataset(40, 5, 112, true);
  const layers = [{ units: 12, activation: 'relu', dropout: 0.3, batch_norm: false, l2: 0 }] as TrainParams['layers'];
  await assertSameTraining(data, { layers, standardize: false }, 'sparse rows, lazy Adam');
  await assertSameTraining(data, { layers: [{ ...layers[0]!, l2: 0.001 }, { ...layers[0]!, units: 6 }], standardize: false, optimizer: { name: 'rmsprop', lr: 0.003, momentum: 0.9 } }, 'sparse rows, RMSprop, L2, two layers');
  await assertSameTraining(data, { layers: [], standardize: false }, 'sparse rows, no hidden layer');
  assert.equal(tf.getBackend(), 'wasm');
});

test('auto trains through ONNX Runtime unless the net has batch norm; asking ONNX Runtime for one names the field', async () => {
  const bn = [{ units: 8, activation: 'relu', dropout: 0, batch_norm: true, l2: 0 }] as TrainParams['layers'];
  assert.equal(await selectEngine('auto', { layers: config.train.layers }), 'onnxruntime');
  assert.equal(await selectEngine('wasm', { layers: config.train.layers }), 'wasm');
  assert.equal(await selectEngine('auto', { layers: bn }), 'wasm');
  await assert.rejects(selectEngine('onnxruntime', { layers: bn }), /train\.backend: onnxruntime cannot train this net \(batch_norm/);
});
