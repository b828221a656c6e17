/**
 * bench-fill-mask: the embed stage on a fill-mask export (only `logits`, as Xenova/bert-base-uncased
 * publishes it) against the feature-extraction export of the same weights, in one run: rows/s of
 * each (rounds alternate, so drift on a noisy machine hits both), the one-off cost of deriving the
 * encoder-only model, and the largest difference between the two sets of vectors. Both models are
 * bert-base-sized and RANDOM (scripts/make-bert-model.ts, torch.onnx.export's node names and
 * spelled-out layer norms), generated once into --models (git-ignored).
 *
 *   make bench-fill-mask BENCH_DATA=../shared/data/imdb-genre-sample
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { runStageProgram, trainingFields, writeBenchResults } from './bench-data.js';
import { runMain, UserError } from '../../pipeline/errors.js';
import { parseArgs } from '../../pipeline/cli.js';
import { info } from '../../pipeline/log.js';
import { readEmbeddings } from '../../pipeline/arrow/index.js';
import type { Manifest } from '../../pipeline/artifacts/store.js';


const EXPORTS = ['feature-extraction', 'fill-mask'] as const;

runMain(async () => {
  const args = await parseArgs('bench-fill-mask', 'Embed rows/s and vectors: a fill-mask export against the feature-extraction export of the same weights.', (y) =>
    y
      .option('data', { type: 'string', default: 'data/demo', describe: 'folder with a Kaggle-format train_data.txt' })
      .option('tokenizer', { type: 'string', default: '../shared/models/bert-base-uncased-tokenizer', describe: 'tokenizer folder for the generated models' })
      .option('models', { type: 'string', default: 'models/bench-exports', describe: 'where the two generated models are kept' })
      .option('rows', { type: 'number', default: 600, describe: 'training rows to embed per run' })
      .option('rounds', { type: 'number', default: 3 })
      .option('threads', { type: 'number', default: 2 })
      .option('layers', { type: 'number', default: 12 })
      .option('hidden', { type: 'number', default: 768 })
      .option('heads', { type: 'number', default: 12 })
      .option('intermediate', { type: 'number', default: 3072 }),
  );
  if (!existsSync(join(args.tokenizer, 'tokenizer.json'))) throw new UserError(`bench-fill-mask: ${args.tokenizer}/tokenizer.json not found (--tokenizer)`);
  for (const task of EXPORTS) {
    const dir = join(args.models, task);
    if (existsSync(join(dir, 'model.onnx'))) continue;
    const shape = ['--layers', args.layers, '--hidden', args.hidden, '--heads', args.heads, '--intermediate', args.intermediate].map(String);
    const made = spawnSync(process.execPath, [resolve('dist/scripts/make-bert-model.js'), '--out', dir, '--task', task, '--torch-names', '--tokenizer', args.tokenizer, ...shape], { stdio: 'inherit' });
    if (made.status !== 0) throw new UserError(`bench-fill-mask: generating ${dir} failed`);
  }

  const work = mkdtempSync(join(tmpdir(), 'bench-fill-mask-'));
  const lines = trainingFields(args.data).slice(0, args.rows).map((f) => f.join(' ::: '));
  mkdirSync(join(work, 'data'));
  writeFileSync(join(work, 'data', 'train_data.txt'), `${lines.join('\n')}\n`);
  const env = { ...process.env, CI: '1', PIPELINE_CACHE: join(work, 'cache') };
  const runs: { export: string; round: number; rows_per_second: number; stage_wall_seconds: number; session_share: number }[] = [];
  const vectors: Record<string, Float32Array> = {};
  let deriveSeconds: number | undefined;
  for (let round = 1; round <= args.rounds; round++) {
    for (const task of EXPORTS) {
      // A fresh store each time: every run embeds; the derived model stays in the shared cache.
      const artifacts = join(work, `artifacts-${task}-${round}`);
      const config = join(work, `${task}.yaml`);
      writeFileSync(config, `run: bench\ningest:\n  source: ${join(work, 'data')}\n  validation_fraction: 0\nmodel:\n  path: ${resolve(args.models, task)}\nembed:\n  providers: [cpu]\n  threads: ${args.threads}\n`);
      let wall = 0;
      for (const stage of ['ingest', 'tokenize', 'embed']) {
        const { stderr, seconds } = runStageProgram(stage, ['--config', config, '--artifacts', artifacts], env);
        wall = seconds;
        const derived = /derived .* encoder-only model in ([\d.]+)s/.exec(stderr);
        if (derived) deriveSeconds = Number(derived[1]);
      }
      const dir = join(artifacts, 'runs', 'bench', 'embed');
      const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest;
      // From the embed loop's own seconds: the manifest's rows/s is rounded to a whole row.
      const rowsPerSecond = Number((lines.length / manifest.timings.embed_seconds!).toFixed(2));
      runs.push({ export: task, round, rows_per_second: rowsPerSecond, stage_wall_seconds: Number(wall.toFixed(1)), session_share: Number((manifest.timings.session_seconds! / manifest.timings.embed_seconds!).toFixed(3)) });
      vectors[task] = readEmbeddings(join(dir, 'train.arrow')).vectors;
      info(`bench-fill-mask: round ${round}, ${task}: ${rowsPerSecond} rows/s, stage ${wall.toFixed(1)}s`);
    }
  }
  let maxAbsDiff = 0;
  const [a, b] = [vectors['feature-extraction']!, vectors['fill-mask']!];
  for (let i = 0; i < a.length; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(a[i]! - b[i]!));
  const median = (task: string) => {
    const values = runs.filter((r) => r.export === task).map((r) => r.rows_per_second).sort((x, y) => x - y);
    const mid = values.length / 2;
    return Number((values.length % 2 ? values[Math.floor(mid)]! : (values[mid - 1]! + values[mid]!) / 2).toFixed(2));
  };
  const results = {
    data: args.data,
    rows: lines.length,
    threads: args.threads,
    model: { layers: args.layers, hidden: args.hidden, heads: args.heads, intermediate: args.intermediate, random_weights: true },
    runs,
    median_rows_per_second: { 'feature-extraction': median('feature-extraction'), 'fill-mask': median('fill-mask') },
    fill_mask_over_feature_extraction: Number((median('fill-mask') / median('feature-extraction')).toFixed(3)),
    // Once per model file: later runs find the derived model in the cache.
    derive_seconds: deriveSeconds,
    vectors_max_abs_diff: maxAbsDiff,
  };
  writeBenchResults('artifacts', 'fill-mask', results);
});
