import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MessageReader, MessageHeader, tableFromIPC as arrowJsRead } from 'apache-arrow';
import { tableFromIPC as flechetteRead } from '@uwdata/flechette';
import { selectBackend, tf } from '../pipeline/mlp/backend.js';
import { SparseDenseLayer } from '../pipeline/mlp/sparse.js';
import { buildModel, predictProbabilities } from '../pipeline/mlp/model.js';
import { denseSlice, pickRows, sparseFromDense, type SparseRows } from '../pipeline/mlp/rows.js';
import { readTokens, readVectorFile, writeEmbeddings, writeSparseEmbeddings, writeTokens } from '../pipeline/arrow/index.js';
import { Rng } from '../pipeline/random.js';

/** A cell as plain JSON-able values (typed arrays and Arrow vectors as arrays). */
const plain = (v: unknown): unknown => (ArrayBuffer.isView(v) ? Array.from(v as Float32Array) : v && typeof v === 'object' && 'toArray' in v ? Array.from((v as { toArray(): Float32Array }).toArray()) : v);

/** Random sparse rows: each row a few columns of `width`, some rows empty. */
function randomRows(rows: number, width: number, seed: number): SparseRows {
  const rng = new Rng(seed, 'sparse-test');
  const dense = new Float32Array(rows * width);
  for (let r = 0; r < rows; r++) {
    if (r % 5 === 4) continue;
    for (let k = 0; k < 6; k++) dense[r * width + rng.int(width)] = rng.next() * 2 - 1;
  }
  return sparseFromDense(dense, width);
}

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tolerance: number, what: string) => {
  assert.equal(a.length, b.length, what);
  let worst = 0;
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i]! - b[i]!));
  assert.ok(worst <= tolerance, `${what}: differs by ${worst}`);
};

test('the sparse first layer equals a TF.js dense layer: outputs, gradients and an optimizer step of each kind', async () => {
  await selectBackend('wasm');
  const width = 40;
  const units = 7;
  const rows = randomRows(12, width, 3);
  const picks = [3, 0, 7, 4, 11, 3];
  const rng = new Rng(9, 'weights');
  const kernel = Float32Array.from({ length: width * units }, () => rng.next() - 0.5);
  const bias = Float32Array.from({ length: units }, () => rng.next() - 0.5);
  const outGrad = Float32Array.from({ length: picks.length * units }, () => rng.next() - 0.5);
  const x = tf.tensor2d(denseSlice(pickRows(rows, width, picks), width, 0, picks.length), [picks.length, width]);
  const r = tf.tensor2d(outGrad, [picks.length, units]);
  for (const [name, l2, threads] of [['adam', 0, 1], ['adam', 0, 2], ['sgd', 0, 1], ['rmsprop', 0, 1], ['adam', 0.01, 1], ['adam', 0.01, 3], ['rmsprop', 0, 2]] as const) {
    // threads > 1: the layer's loops split across worker threads sharing its memory.
    const layer = new SparseDenseLayer(kernel, bias, { name, momentum: 0.9 }, l2, { threads, parallelFrom: 0 });
    const w = tf.variable(tf.tensor2d(kernel, [width, units]));
    const b = tf.variable(tf.tensor1d(bias));
    const lr = 0.05;
    const optimizer = name === 'adam' ? tf.train.adam(lr) : name === 'sgd' ? tf.train.momentum(lr, 0.9) : tf.train.rmsprop(lr, 0.9, 0.9);
    // The loss is sum(outputs * r * scale) (+ the L2 penalty), so the outputs' gradient is r
    // times a scale that changes each step (with a constant gradient Adam's moments would not depend on its betas).
    for (let step = 0; step < 3; step++) {
      const scale = [1, -0.5, 2][step]!;
      const stepGrad = outGrad.map((g) => g * scale);
      const out = await layer.forward(rows, picks);
      close(out, tf.tidy(() => tf.matMul(x, w).add(b).dataSync()), 1e-5, `${name} step ${step}: outputs`);
      const { grads } = tf.variableGrads(() => tf.matMul(x, w).add(b).mul(r).mul(scale).sum().add(w.square().sum().mul(l2)) as tf.Scalar, [w, b]);
      if (step === 0) {
        // The gradients the layer applies: read them back through an SGD step without momentum.
        const probe = new SparseDenseLayer(layer.kernel, layer.bias, { name: 'sgd', momentum: 0 }, l2);
        await probe.forward(rows, picks);
        await probe.backward(stepGrad);
        await probe.step(1);
        close(Array.from(layer.kernel, (v, i) => v - probe.kernel[i]!), grads[w.name]!.dataSync(), 1e-5, `${name}: kernel gradient`);
        close(Array.from(layer.bias, (v, i) => v - probe.bias[i]!), grads[b.name]!.dataSync(), 1e-5, `${name}: bias gradient`);
      }
      optimizer.applyGradients(grads as tf.NamedTensorMap as never);
      tf.dispose(Object.values(grads));
      await layer.backward(stepGrad);
      await layer.step(lr);
      await layer.flush();
      close(layer.kernel, w.dataSync(), 1e-5, `${name} (l2 ${l2}, ${threads} threads) step ${step}: kernel after the step`);
      close(layer.bias, b.dataSync(), 1e-5, `${name} (l2 ${l2}) step ${step}: bias after the step`);
    }
    if (l2) assert.ok(Math.abs(layer.penalty() - l2 * w.square().sum().dataSync()[0]!) < 1e-6, 'the L2 penalty');
    await layer.close();
    tf.dispose([w, b]);
  }
  tf.dispose([x, r]);
});

test('scoring more rows than the layer\'s memory holds grows it, and the outputs stay the dense product', () => {
  const width = 40;
  const units = 7;
  // 60,000 rows of outputs are 1.7 MB, more than the memory the layer starts with beyond its weights.
  const rows = randomRows(60_000, width, 4);
  const rng = new Rng(2, 'grow');
  const kernel = Float32Array.from({ length: width * units }, () => rng.next() - 0.5);
  const bias = Float32Array.from({ length: units }, () => rng.next() - 0.5);
  const layer = new SparseDenseLayer(kernel, bias, { name: 'adam', momentum: 0 }, 0);
  const few = layer.outputs(rows, 100, 120);
  const all = layer.outputs(rows, 0, 60_000);
  assert.deepEqual(all.subarray(100 * units, 120 * units), few, 'rows 100-120 alike either way');
  const expected = new Float32Array(all.length);
  for (let r = 0; r < 60_000; r++) {
    for (let u = 0; u < units; u++) {
      let sum = bias[u]!;
      for (let k = rows.indptr[r]!; k < rows.indptr[r + 1]!; k++) sum += rows.values[k]! * kernel[rows.indices[k]! * units + u]!;
      expected[r * units + u] = sum;
    }
  }
  close(all, expected, 1e-5, 'outputs of 60,000 rows');
});

test('scoring sparse rows through the first layer\'s non-zeros gives the dense model\'s probabilities, for every kind of net', async () => {
  await selectBackend('wasm');
  const width = 50;
  const rows = randomRows(300, width, 8);
  const dense = denseSlice(rows, width, 0, 300);
  const hidden = (activation: string, extra = {}) => ({ units: 9, activation, dropout: 0.2, batch_norm: false, l2: 0, ...extra });
  const nets = {
    'two hidden layers, relu then gelu': [hidden('relu'), hidden('gelu', { dropout: 0 })],
    'batch norm after the first layer': [hidden('tanh', { batch_norm: true })],
    'no hidden layer (the first layer is the softmax)': [],
  };
  for (const [what, layers] of Object.entries(nets)) {
    const model = buildModel(width, 5, { layers: layers as never }, 3);
    // Batch norm with moving statistics that are not the identity, so that it counts.
    for (const layer of model.layers.filter((l) => l.getClassName() === 'BatchNormalization')) layer.setWeights(layer.getWeights().map((w, i) => tf.fill(w.shape, [1.5, 0.2, -0.3, 2][i]!)));
    // Batches of 64 so that a batch boundary falls inside the rows.
    const fromSparse = predictProbabilities(model, rows, width, null, 64);
    const fromDense = predictProbabilities(model, dense, width, null, 64);
    close(fromSparse, fromDense, 1e-6, what);
    assert.ok(Math.max(...fromSparse) - Math.min(...fromSparse) > 0.05, `${what}: the probabilities vary`);
    model.dispose();
  }
});

test('lazy Adam (only the rows a batch reads, the steps they sat out caught up) equals Adam over every weight at every step', async () => {
  const width = 300;
  const units = 18; // four lanes at a time and a scalar tail of two (assembly/sparse-kernels.ts)
  // Few columns a row among many: most kernel rows sit out most steps, some for dozens of them;
  // values near 0 give weights whose v is so small that Adam's epsilon counts.
  const rows = randomRows(200, width, 5);
  const rng = new Rng(3, 'lazy');
  const kernel = Float32Array.from({ length: width * units }, () => rng.next() - 0.5);
  const bias = Float32Array.from({ length: units }, () => rng.next() - 0.5);
  const lazy = new SparseDenseLayer(kernel, bias, { name: 'adam', momentum: 0 }, 0);
  const dense = new SparseDenseLayer(kernel, bias, { name: 'adam', momentum: 0 }, 0, { dense: true });
  // The same lazy layer with its loops split across two threads: the same bits.
  const split = new SparseDenseLayer(kernel, bias, { name: 'adam', momentum: 0 }, 0, { threads: 2, parallelFrom: 0 });
  for (let step = 0; step < 60; step++) {
    const picks = Array.from({ length: 8 }, () => rng.int(200));
    const outGrad = Float32Array.from({ length: picks.length * units }, () => rng.next() - 0.5);
    // The outputs read the caught-up rows: the dense layer's at every step, not only at the end.
    const outputs = await lazy.forward(rows, picks);
    close(outputs, await dense.forward(rows, picks), 1e-5, `step ${step}: outputs`);
    assert.deepEqual(await split.forward(rows, picks), outputs, `step ${step}: outputs on two threads`);
    const lr = step < 30 ? 0.01 : 0.003;
    for (const layer of [lazy, dense, split]) {
      await layer.backward(outGrad);
      await layer.step(lr);
    }
  }
  await lazy.flush();
  await split.flush();
  assert.deepEqual(split.kernel, lazy.kernel, 'two threads give the kernel one does');
  await split.close();
  close(lazy.kernel, dense.kernel, 1e-5, 'the kernel after 60 steps and a flush');
  close(lazy.bias, dense.bias, 1e-6, 'the bias');
  assert.ok(Array.from(dense.kernel, (v, i) => Math.abs(v - kernel[i]!)).filter((m) => m > 1e-3).length > width, 'the weights moved');
});

test('sparse rows round-trip through their Arrow file, and both readers agree with the writer', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sparse-'));
  const rows = randomRows(9, 30, 4);
  const path = join(dir, 'train.arrow');
  writeSparseEmbeddings(path, rows, { rowIds: Array.from({ length: 9 }, (_, i) => `m${i}`), metadata: { featurizer: 'test' } });
  const back = readVectorFile(path);
  assert.ok('indptr' in back);
  assert.deepEqual(back, rows);
  const table = flechetteRead(readFileSync(path));
  assert.equal(table.schema.metadata?.get('width'), '30');
  assert.equal(table.schema.metadata?.get('layout'), 'sparse');
  for (let r = 0; r < 9; r++) {
    assert.deepEqual(Array.from(table.getChild('indices')!.at(r) as Int32Array), Array.from(rows.indices.subarray(rows.indptr[r], rows.indptr[r + 1])), `row ${r} columns`);
    assert.deepEqual(Array.from(table.getChild('values')!.at(r) as Float32Array), Array.from(rows.values.subarray(rows.indptr[r], rows.indptr[r + 1])), `row ${r} values`);
  }
});

test('every kind of Arrow file the project writes opens in a second implementation, as a file and as the stream inside it', () => {
  const dir = mkdtempSync(join(tmpdir(), 'arrow-'));
  const ids = ['a', 'b', 'c'];
  const files = {
    tokens: join(dir, 'tokens.arrow'),
    dense: join(dir, 'dense.arrow'),
    slice: join(dir, 'slice.arrow'),
    sparse: join(dir, 'sparse.arrow'),
  };
  writeTokens(files.tokens, { ids: Int32Array.from([101, 7, 102, 101, 102, 101, 5, 6, 102]), offsets: Int32Array.from([0, 3, 5, 9]), truncated: Uint8Array.from([0, 0, 1]) }, { rowIds: ids, metadata: { tokenizer: 'test' } });
  writeEmbeddings(files.dense, { vectors: Float32Array.from({ length: 12 }, (_, i) => i / 4), hidden: 4 }, { rowIds: ids, metadata: { model: 'test' } });
  writeEmbeddings(files.slice, { vectors: Float32Array.from({ length: 8 }, (_, i) => -i), hidden: 4, rowIndex: Int32Array.from([2, 0]) });
  writeSparseEmbeddings(files.sparse, sparseFromDense(Float32Array.from([0, 1, 0, 0, 0, 0, 2, 3, 0]), 3), { rowIds: ids, metadata: {} });
  for (const [kind, path] of Object.entries(files)) {
    const bytes = readFileSync(path);
    // The format: magic, then a stream that starts with the Schema message (arrow-rs's stream reader insists).
    assert.equal(bytes.subarray(0, 6).toString('latin1'), 'ARROW1');
    assert.equal(new MessageReader(bytes.subarray(8)).readMessage()!.headerType, MessageHeader.Schema, `${kind}: the embedded stream starts with its schema`);
    const reference = arrowJsRead(bytes);
    for (const [how, table] of [['file', flechetteRead(bytes)], ['stream', flechetteRead(bytes.subarray(8))]] as const) {
      assert.equal(table.numRows, reference.numRows, `${kind} as a ${how}`);
      assert.deepEqual(table.schema.fields.map((f) => f.name), reference.schema.fields.map((f) => f.name), `${kind} as a ${how}: columns`);
      for (const field of reference.schema.fields) {
        const ours = Array.from({ length: table.numRows }, (_, r) => plain(table.getChild(field.name)!.at(r)));
        const theirs = Array.from({ length: reference.numRows }, (_, r) => plain(reference.getChild(field.name)!.get(r)));
        assert.deepEqual(ours, theirs, `${kind} as a ${how}: column ${field.name}`);
      }
    }
  }
  assert.deepEqual(readTokens(files.tokens).ids, Int32Array.from([101, 7, 102, 101, 102, 101, 5, 6, 102]));
});
