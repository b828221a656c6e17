/**
 * bench-int8: the embed stage in fp32 and in int8 (quantized in the pipeline from the same
 * model.onnx) on one data folder, in one run: rows/s of each, the time to quantize, the cosine
 * between each row's fp32 and int8 vector (min, median), and what the difference does to the
 * classifier: train and evaluate on each set of vectors with the same seed, then the share of
 * test movies both classifiers give the same top genre, and each one's accuracy.
 *
 *   make model-bert-base
 *   make bench-int8 BENCH_DATA=../shared/data/imdb-genre-sample BENCH_MODEL=models/bert-base-random
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runStageProgram, writeBenchResults } from './bench-data.js';
import { runMain } from '../../pipeline/errors.js';
import { parseArgs } from '../../pipeline/cli.js';
import { info } from '../../pipeline/log.js';
import { readEmbeddings } from '../../pipeline/arrow/index.js';
import { rowCosines } from '../../pipeline/onnx/pooling.js';
import { readParquet } from '../../pipeline/parquet/index.js';
import type { Manifest } from '../../pipeline/artifacts/store.js';

runMain(async () => {
  const args = await parseArgs('bench-int8', 'Embed rows/s, vector fidelity and classifier agreement: fp32 against int8.', (y) =>
    y
      .option('data', { type: 'string', default: 'data/demo', describe: 'folder with the Kaggle-format files' })
      .option('model', { type: 'string', default: 'models/demo-bert-random', describe: 'model folder with an fp32 model.onnx' })
      .option('threads', { type: 'number', default: 2 })
      .option('work', { type: 'string', describe: 'reuse this work folder (its artifacts and cache) instead of a new one' }),
  );
  const work = args.work ?? mkdtempSync(join(tmpdir(), 'bench-int8-'));
  const artifacts = join(work, 'artifacts');
  const env = { ...process.env, CI: '1', PIPELINE_CACHE: join(work, 'cache') };
  const config = join(work, 'bench.yaml');
  writeFileSync(config, `run: bench\ningest:\n  source: ${resolve(args.data)}\n  max_reject_fraction: 0.05\nmodel:\n  path: ${resolve(args.model)}\nembed:\n  providers: [cpu]\n  threads: ${args.threads}\n`);
  const stage = (name: string, precision: string) => {
    const { stderr, seconds } = runStageProgram(name, ['--config', config, '--artifacts', artifacts, '--set', `model.precision=${precision}`], env);
    // The artifact itself, not the run's link: the next precision re-points the run.
    const manifest = JSON.parse(readFileSync(join(artifacts, 'runs', 'bench', name, 'manifest.json'), 'utf8')) as Manifest;
    return { dir: join(artifacts, name, manifest.key), manifest, wall: seconds, stderr };
  };
  const runs: Record<string, { embed: ReturnType<typeof stage>; evaluate: ReturnType<typeof stage> }> = {};
  for (const precision of ['fp32', 'int8']) {
    stage('ingest', precision);
    stage('tokenize', precision);
    const embed = stage('embed', precision);
    stage('train', precision);
    runs[precision] = { embed, evaluate: stage('evaluate', precision) };
  }
  const rows = (p: string) => Object.values(runs[p]!.embed.manifest.rows).reduce((a, b) => a + b, 0);
  const rate = (p: string) => Number((rows(p) / runs[p]!.embed.manifest.timings.embed_seconds!).toFixed(2));

  const cosines: number[] = [];
  for (const split of ['train', 'test']) {
    const a = readEmbeddings(join(runs.fp32!.embed.dir, `${split}.arrow`));
    const b = readEmbeddings(join(runs.int8!.embed.dir, `${split}.arrow`));
    cosines.push(...rowCosines(a.vectors, b.vectors, a.hidden));
  }
  cosines.sort((x, y) => x - y);

  type Prediction = { split: string; id: string; predicted_genre: string; correct: boolean | null };
  const predictions = async (p: string) => (await readParquet<Prediction>(join(runs[p]!.evaluate.dir, 'predictions.parquet'), ['split', 'id', 'predicted_genre', 'correct'])).filter((r) => r.split === 'test');
  const [a, b] = [await predictions('fp32'), await predictions('int8')];
  const byId = new Map(b.map((r) => [r.id, r.predicted_genre]));
  const agree = a.filter((r) => byId.get(r.id) === r.predicted_genre).length;
  const accuracy = (list: Prediction[]) => Number((list.filter((r) => r.correct).length / list.length).toFixed(4));
  const quantizeSeconds = /quantized model\.onnx to int8 in ([\d.]+)s/.exec(runs.int8!.embed.stderr)?.[1];

  const results = {
    data: args.data,
    model: args.model,
    threads: args.threads,
    rows: rows('fp32'),
    rows_per_second: { fp32: rate('fp32'), int8: rate('int8') },
    int8_speedup: Number((rate('int8') / rate('fp32')).toFixed(2)),
    quantize_seconds: quantizeSeconds ? Number(quantizeSeconds) : null,
    cosine: { min: Number(cosines[0]!.toFixed(5)), median: Number(cosines[Math.floor(cosines.length / 2)]!.toFixed(5)) },
    classifier: { test_rows: a.length, top1_agreement: Number((agree / a.length).toFixed(4)), accuracy: { fp32: accuracy(a), int8: accuracy(b) } },
    quantized: runs.int8!.embed.manifest.details.model_adaptation,
  };
  info(`bench-int8: ${results.rows} rows: fp32 ${results.rows_per_second.fp32} rows/s, int8 ${results.rows_per_second.int8} rows/s (${results.int8_speedup}x); cosine min ${results.cosine.min}, median ${results.cosine.median}; top-1 agreement ${results.classifier.top1_agreement}`);
  writeBenchResults('artifacts', 'int8', results);
});
