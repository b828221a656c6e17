/**
 * bench-train: training throughput of the configured network on N x D random inputs (default
 * 50,000 x 768, 27 labels), in rows/s per epoch, next to a bare TF.js `model.fit` loop on the
 * same backend in the same process. The pipeline's loop adds a seeded shuffle and a validation
 * pass per epoch; this shows what that costs. Writes artifacts/bench/train.json.
 */
import { writeBenchResults } from './bench-data.js';
import { runMain } from '../../pipeline/errors.js';
import { parseArgs } from '../../pipeline/cli.js';
import { formatCount, info } from '../../pipeline/log.js';
import { loadConfig } from '../../pipeline/config/index.js';
import { selectBackend, tf } from '../../pipeline/mlp/backend.js';
import { buildModel, predictProbabilities } from '../../pipeline/mlp/model.js';
import { Rng } from '../../pipeline/random.js';
import { computeMetrics } from '../../pipeline/metrics/index.js';

runMain(async () => {
  const args = await parseArgs('bench-train', 'Benchmark training throughput.', (y) =>
    y.option('rows', { type: 'number', default: 50_000 }).option('dim', { type: 'number', default: 768 }).option('labels', { type: 'number', default: 27 }).option('epochs', { type: 'number', default: 2 }),
  );
  const { config } = loadConfig(args.config, args.set);
  const backend = await selectBackend(config.train.backend);
  const rng = new Rng(1, 'bench');
  const { rows, dim, labels } = args;
  const x = Float32Array.from({ length: rows * dim }, () => rng.next() * 2 - 1);
  const y = Int32Array.from({ length: rows }, () => rng.int(labels));
  const validationRows = Math.round(rows / 9);
  const xVal = x.subarray(0, validationRows * dim);
  const yVal = y.subarray(0, validationRows);
  const xs = tf.tensor2d(x, [rows, dim]);
  const ys = tf.oneHot(tf.tensor1d(y, 'int32'), labels);
  const compile = () => {
    const model = buildModel(dim, labels, config.train, 1);
    model.compile({ optimizer: tf.train.adam(config.train.optimizer.lr), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
    return model;
  };

  // Bare: model.fit over the whole tensor, one call per epoch, nothing else.
  const bare = compile();
  await bare.fit(xs.slice(0, 2048), ys.slice(0, 2048), { epochs: 1, batchSize: config.train.batch_size, verbose: 0 });
  const bareRates: number[] = [];
  for (let e = 0; e < args.epochs; e++) {
    const t = performance.now();
    await bare.fit(xs, ys, { epochs: 1, batchSize: config.train.batch_size, shuffle: true, verbose: 0 });
    bareRates.push(rows / ((performance.now() - t) / 1000));
  }

  // Pipeline: what trainClassifier does per epoch (seeded permutation, fit, validation metrics).
  const model = compile();
  await model.fit(xs.slice(0, 2048), ys.slice(0, 2048), { epochs: 1, batchSize: config.train.batch_size, verbose: 0 });
  const order = new Rng(2, 'order');
  const pipelineRates: number[] = [];
  for (let e = 0; e < args.epochs; e++) {
    const t = performance.now();
    const permutation = tf.tensor1d(order.shuffle(Array.from({ length: rows }, (_, i) => i)), 'int32');
    const [px, py] = [tf.gather(xs, permutation), tf.gather(ys, permutation)];
    await model.fit(px, py, { epochs: 1, batchSize: config.train.batch_size, shuffle: false, verbose: 0 });
    tf.dispose([px, py, permutation]);
    computeMetrics(yVal, predictProbabilities(model, xVal, dim), Array.from({ length: labels }, (_, i) => String(i)), { topK: 1, bins: 1, majority: 0 });
    pipelineRates.push(rows / ((performance.now() - t) / 1000));
  }
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  const report = {
    backend,
    rows,
    dim,
    labels,
    layers: config.train.layers.map((l) => l.units),
    batch_size: config.train.batch_size,
    epochs: args.epochs,
    bare_fit_rows_per_second: Math.round(mean(bareRates)),
    pipeline_rows_per_second: Math.round(mean(pipelineRates)),
    pipeline_share_of_bare: Number((mean(pipelineRates) / mean(bareRates)).toFixed(3)),
    validation_rows_per_epoch: validationRows,
  };
  writeBenchResults(args.artifacts, 'train', report);
  info(`bench-train: pipeline ${formatCount(report.pipeline_rows_per_second)} rows/s vs bare model.fit ${formatCount(report.bare_fit_rows_per_second)} rows/s (${(report.pipeline_share_of_bare * 100).toFixed(1)}%)`);
});
