/**
 * bench-cache: what the vector cache saves. A corpus of --rows distinct plots (default 100,000:
 * the demo data's, each copy made distinct by two words in front) is embedded twice with the same
 * encoder: once from scratch (every row through the model, each shard added to the cache), then
 * with `--force`, so that every row is a cache hit. Both are the embed stage as a user runs it.
 *
 *   make bench-cache                     (the demo model; BENCH_MODEL= for another)
 *
 * A bert-base-sized model makes the full embed hundreds of times slower and the all-hit one
 * hardly slower (it reads 768 floats a row instead of 128): the share printed here is the
 * smallest saving, not the largest.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { machine, runStageProgram, trainingFields, writeBenchResults } from './bench-data.js';
import { runMain } from '../../pipeline/errors.js';
import { parseArgs } from '../../pipeline/cli.js';
import { formatCount, info } from '../../pipeline/log.js';

runMain(async () => {
  const args = await parseArgs('bench-cache', 'An all-hit embed against a full one.', (y) =>
    y.option('data', { type: 'string', default: 'data/demo' }).option('model', { type: 'string', default: 'models/demo-bert-random' }).option('rows', { type: 'number', default: 100_000 }),
  );
  const work = mkdtempSync(join(tmpdir(), 'bench-cache-'));
  const fields = trainingFields(args.data);
  const words = [...new Set(fields.flatMap((f) => f[3]!.toLowerCase().match(/[a-z]{4,}/g) ?? []))].slice(0, 64);
  const lines = Array.from({ length: args.rows }, (_, i) => {
    const [, title, genre, description] = fields[i % fields.length]!;
    const copy = Math.floor(i / fields.length);
    return [String(i + 1), title, genre, `${words[copy % words.length]} ${words[Math.floor(copy / words.length) % words.length]} ${description}`].join(' ::: ');
  });
  writeFileSync(join(work, 'train_data.txt'), `${lines.join('\n')}\n`);
  const config = join(work, 'bench.yaml');
  writeFileSync(config, `ingest:\n  source: ${work}\n  files:\n    test: null\n    test_solution: null\nmodel:\n  path: ${resolve(args.model)}\nembed:\n  providers: [cpu]\n`);
  const stageArgs = ['--config', config, '--artifacts', join(work, 'artifacts')];
  const env = { ...process.env, CI: '1', PIPELINE_CACHE: join(work, 'cache') };
  runStageProgram('ingest', stageArgs, env);
  runStageProgram('tokenize', stageArgs, env);
  const full = runStageProgram('embed', stageArgs, env);
  const hit = runStageProgram('embed', [...stageArgs, '--force'], env);
  const manifest = JSON.parse(readFileSync(join(work, 'artifacts', 'runs', 'bench', 'embed', 'manifest.json'), 'utf8'));
  if (manifest.details.rows_computed !== 0) throw new Error(`the second embed computed ${manifest.details.rows_computed} rows`);
  const results = {
    rows: args.rows,
    model: args.model,
    full_embed_seconds: round(full.seconds),
    all_hit_embed_seconds: round(hit.seconds),
    all_hit_share_of_full: round(hit.seconds / full.seconds),
    full_rows_per_second: Math.round(args.rows / full.seconds),
    all_hit_rows_per_second: Math.round(args.rows / hit.seconds),
    rows_from_cache: manifest.details.rows_from_cache,
    rows_repeating_another: manifest.details.rows_repeating_another,
    note: 'each figure is the embed program from start to exit (Node start-up, reading the token ids, hashing every row, writing the artifact included)',
    machine: machine(),
  };
  writeBenchResults('artifacts', 'cache', results);
  info(`bench-cache: ${formatCount(args.rows)} rows: full embed ${results.full_embed_seconds}s, all from the cache ${results.all_hit_embed_seconds}s (${(results.all_hit_share_of_full * 100).toFixed(1)}% of it)`);
});

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
