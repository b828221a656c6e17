/**
 * bench-scale: the TF-IDF config on a corpus the size of the full Kaggle data set (108,414 rows:
 * 54,214 train and 54,200 test, as published), and at fractions of it, to see how cost grows
 * (`make bench-scale`, written to artifacts/bench/scale.json).
 *
 * The corpus is the real sample's plots repeated under new ids, each copy with its words in a
 * seeded random order, so that word pairs (the TF-IDF bigrams) keep growing with the corpus as in
 * real data rather than repeating. Each size runs the pipeline as a user does (`run.js --target
 * evaluate`, one process per stage) in a scratch store, then reads each stage's wall time and
 * peak RSS from its manifest, and the embed artifact's size on disk.
 *
 *   make bench-scale                          (sizes 0.25, 0.5 and 1 of 108,414)
 *   make bench-scale SCALE_SIZES=0.25         (one size)
 *
 * Training is capped at 14 epochs (--epochs): on the real sample the TF-IDF config stops early
 * after 14 (best epoch 6), but here validation rows are reordered copies of training plots, so
 * validation loss falls to 0 and early stopping would never come (validation figures mean nothing
 * here); the figure per epoch is what scales. The test rows come from the sample's test file.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { machine, trainingFields, writeBenchResults } from './bench-data.js';
import { runMain } from '../../pipeline/errors.js';
import { parseArgs } from '../../pipeline/cli.js';
import { formatCount, info } from '../../pipeline/log.js';
import { sizeOf } from '../../pipeline/files.js';
import { Rng } from '../../pipeline/random.js';

const FULL = { train: 54_214, test: 54_200 };

runMain(async () => {
  const args = await parseArgs('bench-scale', 'The TF-IDF config at the full data set\'s size and fractions of it.', (y) =>
    y
      .option('data', { type: 'string', default: '../shared/data/imdb-genre-sample' })
      .option('sizes', { type: 'string', default: '0.25,0.5,1' })
      .option('epochs', { type: 'number', default: 14, describe: 'cap train.epochs (14: where the real sample stops early)' })
      .option('tfidf-config', { type: 'string', default: 'configs/imdb-sample-tfidf.yaml' }),
  );
  const train = trainingFields(args.data);
  const test = readFileSync(join(args.data, 'test_data_solution.txt'), 'utf8').split('\n').map((l) => l.split(' ::: ')).filter((f) => f.length === 4);
  const results = [];
  for (const fraction of args.sizes.split(',').map(Number)) {
    const work = mkdtempSync(join(tmpdir(), 'bench-scale-'));
    const rows = { train: Math.round(FULL.train * fraction), test: Math.round(FULL.test * fraction) };
    writeCorpus(work, train, test, rows);
    const config = join(work, 'bench-scale.yaml');
    writeFileSync(config, `extends: ${resolve(args['tfidf-config'])}\nmodel: null\ningest:\n  source: ${work}\nreport:\n  reference_runs: []\ntrain:\n  epochs: ${args.epochs}\n`);
    info(`bench-scale: ${formatCount(rows.train + rows.test)} rows (${fraction} of the full data set) …`);
    const started = performance.now();
    execFileSync(process.execPath, [resolve('dist/scripts/run.js'), '--config', config, '--artifacts', join(work, 'artifacts'), '--target', 'evaluate'], { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, CI: '1' } });
    const wall = (performance.now() - started) / 1000;
    const run = join(work, 'artifacts', 'runs', 'bench-scale');
    const manifest = (stage: string) => JSON.parse(readFileSync(join(run, stage, 'manifest.json'), 'utf8'));
    const stages = Object.fromEntries(['ingest', 'embed', 'train', 'evaluate'].map((s) => [s, { seconds: manifest(s).timings.seconds, peak_rss_mb: manifest(s).timings.peak_rss_mb }]));
    const trainManifest = manifest('train');
    results.push({
      fraction,
      rows,
      wall_seconds: Math.round(wall * 10) / 10,
      stages,
      train_epochs: trainManifest.rows.epochs,
      train_seconds_per_epoch: Math.round((trainManifest.timings.seconds / trainManifest.rows.epochs) * 10) / 10,
      train_rows_per_second: trainManifest.timings.rows_per_second,
      embed_artifact_mb: Math.round(sizeOf(join(run, 'embed')) / 2 ** 20 * 10) / 10,
      tfidf_mean_non_zeros: manifest('embed').details.mean_non_zeros,
      peak_rss_mb: Math.max(...Object.values(stages).map((s) => s.peak_rss_mb as number)),
      test_accuracy: JSON.parse(readFileSync(join(run, 'evaluate', 'metrics.json'), 'utf8')).test.accuracy,
    });
  }
  writeBenchResults('artifacts', 'scale', { note: `train capped at ${args.epochs} epochs (where the real sample stops early); stage seconds and RSS from each stage's manifest`, results, machine: machine() });
});

/** Train and test files of `rows` lines: the sample's rows in turn, each copy's words shuffled (seeded), ids fresh. */
function writeCorpus(dir: string, train: string[][], test: string[][], rows: { train: number; test: number }): void {
  const rng = new Rng(1, 'bench-scale');
  const copies = (source: string[][], n: number) =>
    Array.from({ length: n }, (_, i) => {
      const [, title, genre, description] = source[i % source.length]!;
      const words = description!.split(/\s+/);
      // The first copy is the real text; later copies shuffle it.
      if (i >= source.length) {
        for (let j = words.length - 1; j > 0; j--) {
          const k = rng.int(j + 1);
          [words[j], words[k]] = [words[k]!, words[j]!];
        }
      }
      return { id: String(i + 1), title: title!, genre: genre!, description: words.join(' ') };
    });
  const write = (name: string, items: { id: string; title: string; genre: string; description: string }[], withGenre: boolean) =>
    writeFileSync(join(dir, name), `${items.map((r) => [r.id, r.title, ...(withGenre ? [r.genre] : []), r.description].join(' ::: ')).join('\n')}\n`);
  write('train_data.txt', copies(train, rows.train), true);
  const testRows = copies(test, rows.test);
  write('test_data.txt', testRows, false);
  write('test_data_solution.txt', testRows, true);
}
