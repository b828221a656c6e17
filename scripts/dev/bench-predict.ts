/**
 * bench-predict: how fast `predict` answers, next to the embed stage on the same model.
 *
 *   a run                 -> ingest, tokenize, embed, train on --data and --model (temporary store)
 *   one description       -> predict's wall time from process start to exit, three times
 *   a file of --rows      -> the data's descriptions repeated, from process start to exit
 *
 * Prints and writes artifacts/bench/predict.json. The embed stage's rows/s is the manifest's
 * figure for the same model, batch size and threads on the data set.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { trainingFields, writeBenchResults } from './bench-data.js';
import { runMain, UserError } from '../../pipeline/errors.js';
import { parseArgs } from '../../pipeline/cli.js';
import { formatCount, info } from '../../pipeline/log.js';

runMain(async () => {
  const args = await parseArgs('bench-predict', 'Benchmark predict against the embed stage.', (y) =>
    y
      .option('data', { type: 'string', default: 'data/demo', describe: 'folder with the Kaggle-format files' })
      .option('model', { type: 'string', default: 'models/demo-bert-random' })
      .option('rows', { type: 'number', default: 5000, describe: 'descriptions in the file run' })
      .option('threads', { type: 'number', default: 2 }),
  );
  if (!existsSync(join(args.data, 'train_data.txt'))) throw new UserError(`bench-predict: ${join(args.data, 'train_data.txt')} not found`);
  if (!existsSync(join(args.model, 'model.onnx'))) throw new UserError(`bench-predict: ${args.model}/model.onnx not found`);
  const work = mkdtempSync(join(tmpdir(), 'bench-predict-'));
  const config = join(work, 'bench.yaml');
  writeFileSync(
    config,
    `ingest:\n  source: ${resolve(args.data)}\n  max_reject_fraction: 0.05\nmodel:\n  path: ${resolve(args.model)}\n` +
      `embed:\n  providers: [cuda, cpu]\n  threads: ${args.threads}\ntrain:\n  epochs: 5\n`,
  );
  const program = (name: string, extra: string[] = []) => {
    const t0 = performance.now();
    const result = spawnSync(process.execPath, [resolve(`dist/stages/${name}.js`), '--config', config, '--artifacts', join(work, 'artifacts'), ...extra], {
      encoding: 'utf8',
      env: { ...process.env, CI: '1' },
      maxBuffer: 1 << 28,
    });
    const seconds = (performance.now() - t0) / 1000;
    if (result.status !== 0) throw new UserError(`bench-predict: ${name} failed:\n${result.stderr}`);
    return { seconds, stderr: result.stderr };
  };
  try {
    for (const stage of ['ingest', 'tokenize', 'embed', 'train']) {
      info(`bench-predict: ${stage}`);
      program(`${stage}`);
    }
    const embed = JSON.parse(readFileSync(join(work, 'artifacts', 'runs', 'bench', 'embed', 'manifest.json'), 'utf8'));

    const single = [1, 2, 3].map(() => program('predict', ['A retired gunslinger returns to the town that betrayed him, and the past follows.']).seconds).sort((a, b) => a - b);

    const lines = trainingFields(args.data).map((fields) => fields[3]!.trim()).filter(Boolean);
    const input = join(work, 'plots.txt');
    writeFileSync(input, Array.from({ length: args.rows }, (_, i) => lines[i % lines.length]!.replace(/\s+/g, ' ')).join('\n') + '\n');
    const file = program('predict', ['--input', input, '--output', join(work, 'predicted.parquet')]);
    const phase = /embed ([\d.]+)s/.exec(file.stderr);

    const results = {
      model: args.model,
      data: args.data,
      threads: args.threads,
      provider: embed.details.provider,
      single_description_seconds: { min: round(single[0]!), median: round(single[1]!), max: round(single[2]!) },
      file_rows: args.rows,
      file_seconds_from_start: round(file.seconds),
      file_rows_per_second_from_start: Math.round(args.rows / file.seconds),
      file_rows_per_second_embedding: phase ? Math.round(args.rows / Number(phase[1])) : null,
      embed_stage_rows_per_second: embed.timings.rows_per_second,
      ratio_from_start: round(args.rows / file.seconds / embed.timings.rows_per_second),
    };
    info(
      `bench-predict: one description ${results.single_description_seconds.median}s (median of 3, from start); ` +
        `${formatCount(args.rows)} rows ${results.file_seconds_from_start}s = ${formatCount(results.file_rows_per_second_from_start)} rows/s from start ` +
        `(${formatCount(results.file_rows_per_second_embedding ?? 0)} rows/s while embedding) vs embed stage ${formatCount(results.embed_stage_rows_per_second)} rows/s: ` +
        `${(100 * results.ratio_from_start).toFixed(0)}%`,
    );
    writeBenchResults(args.artifacts, 'predict', results);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

const round = (x: number) => Math.round(x * 1000) / 1000;
