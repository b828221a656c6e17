/**
 * bench-tfidf: the TF-IDF featurizer's fit and transform speed on --rows descriptions (default
 * 100,000), made of a real data set's plots (train and test files of --data, repeated), with the
 * settings of --config (default configs/imdb-sample-tfidf.yaml).
 *
 *   make bench-tfidf BENCH_DATA=../shared/data/imdb-genre-sample
 *
 * Repeating a few thousand plots keeps the n-gram count of the source; a corpus of 100,000
 * different plots has more distinct n-grams, so fitting it takes longer than this measures.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeBenchResults } from './bench-data.js';
import { runMain } from '../../pipeline/errors.js';
import { parseArgs } from '../../pipeline/cli.js';
import { formatCount, info } from '../../pipeline/log.js';
import { loadConfig } from '../../pipeline/config/index.js';
import { TfidfVectorizer } from '../../pipeline/embed/tfidf.js';

runMain(async () => {
  const args = await parseArgs('bench-tfidf', 'TF-IDF fit and transform rows/s.', (y) =>
    y.option('data', { type: 'string', demandOption: true, describe: 'a Kaggle-format folder' }).option('rows', { type: 'number', default: 100_000 }).option('chunk', { type: 'number', default: 10_000 }),
  );
  const settings = loadConfig(args.config, args.set).config.embed.tfidf;
  const plots = ['train_data.txt', 'test_data_solution.txt'].flatMap((file) =>
    readFileSync(join(args.data, file), 'utf8')
      .split('\n')
      .map((line) => line.split(' ::: ').at(-1)!)
      .filter((text) => text.trim()),
  );
  const texts = Array.from({ length: args.rows }, (_, i) => plots[i % plots.length]!);
  const rss0 = process.memoryUsage().rss;

  let started = performance.now();
  const vectorizer = TfidfVectorizer.fit(texts, settings);
  const fitSeconds = (performance.now() - started) / 1000;
  const fitRss = process.memoryUsage().rss;
  // In chunks, as a caller with less memory than rows x dim floats would; the stage transforms a file at once.
  let transformSeconds = 0;
  let nonZero = 0;
  for (let from = 0; from < texts.length; from += args.chunk) {
    started = performance.now();
    const vectors = vectorizer.transform(texts.slice(from, from + args.chunk));
    transformSeconds += (performance.now() - started) / 1000;
    nonZero += vectors.indices.length;
  }
  const results = {
    rows: args.rows,
    distinct_plots: plots.length,
    settings,
    ngrams_meeting_min_df: vectorizer.state.candidates,
    dim: vectorizer.dim,
    fit_seconds: Number(fitSeconds.toFixed(2)),
    fit_rows_per_second: Math.round(args.rows / fitSeconds),
    transform_seconds: Number(transformSeconds.toFixed(2)),
    transform_rows_per_second: Math.round(args.rows / transformSeconds),
    mean_nonzero_per_row: Number((nonZero / args.rows).toFixed(1)),
    fit_rss_growth_mb: Math.round((fitRss - rss0) / 2 ** 20),
    dense_bytes_per_row: vectorizer.dim * 4,
  };
  info(`bench-tfidf: fit ${formatCount(results.fit_rows_per_second)} rows/s, transform ${formatCount(results.transform_rows_per_second)} rows/s on ${formatCount(args.rows)} rows (${formatCount(vectorizer.dim)} features)`);
  writeBenchResults(args.artifacts, 'tfidf', results);
});
