import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { readParquet } from '../pipeline/parquet/index.js';
import { readVectorFile } from '../pipeline/arrow/index.js';
import { denseSlice } from '../pipeline/mlp/rows.js';
import { ngrams, readState, TfidfVectorizer } from '../pipeline/embed/tfidf.js';
import { tfidfSchema } from '../pipeline/config/schema.js';
import { ArtifactStore } from '../pipeline/artifacts/store.js';
import { runPointers } from '../pipeline/artifacts/runs.js';
import { DEMO_MODEL } from './helpers/models.js';
import { kaggleLines, runProgram, workspace, type Workspace } from './helpers/workspace.js';
import { CHROMIUM_ARGS, checkReportPage } from './helpers/report-page.js';

const settings = (over: Partial<ReturnType<typeof tfidfSchema.parse>> = {}) => tfidfSchema.parse(over);

test('words are runs of two or more letters, digits or underscores, lowercased, and n-grams join neighbours', () => {
  const grams: string[] = [];
  ngrams('A Cowboy, a SHERIFF and 2 guns: déjà-vu_2!', { ngram_max: 2, lowercase: true }, (g) => grams.push(g));
  // "A", "a" and "2" are single characters (scikit-learn's (?u)\b\w\w+\b drops them).
  assert.deepEqual(grams, ['cowboy', 'sheriff', 'and', 'guns', 'déjà', 'vu_2', 'cowboy sheriff', 'sheriff and', 'and guns', 'guns déjà', 'déjà vu_2']);
});

test('TF-IDF weights are scikit-learn\'s: smoothed idf, sublinear tf, unit rows, columns in alphabetical order', () => {
  const docs = ['the cat sat', 'the dog sat', 'a cat cat'];
  const tfidf = TfidfVectorizer.fit(docs, settings({ ngram_max: 1, min_df: 1 }));
  assert.deepEqual(tfidf.state.vocabulary, ['cat', 'dog', 'sat', 'the']);
  const idf = (df: number) => Math.log((1 + 3) / (1 + df)) + 1;
  assert.deepEqual(tfidf.state.idf.map((x) => x.toFixed(9)), [idf(2), idf(1), idf(2), idf(2)].map((x) => x.toFixed(9)));
  const x = tfidf.transformDense(['the dog sat', 'a cat cat', 'nothing known here']);
  const row = (i: number) => Array.from(x.subarray(i * 4, i * 4 + 4));
  const norm = Math.hypot(idf(1), idf(2), idf(2));
  assert.deepEqual(row(0).map((v) => v.toFixed(6)), [0, idf(1) / norm, idf(2) / norm, idf(2) / norm].map((v) => v.toFixed(6)));
  // "cat" twice: 1 + ln 2 before the row is scaled; alone in its row, it scales to 1.
  assert.deepEqual(row(1), [1, 0, 0, 0]);
  assert.deepEqual(row(2), [0, 0, 0, 0], 'a description with no known word is a zero row, not NaN');
});

test('min_df drops rare n-grams and max_features keeps the most frequent, ties broken by the n-gram', () => {
  const docs = ['red apple', 'red apple pie', 'green apple', 'blue sky'];
  assert.equal(TfidfVectorizer.fit(docs, settings({ ngram_max: 2, min_df: 1 })).dim, 10, 'every uni- and bi-gram');
  const rare = TfidfVectorizer.fit(docs, settings({ ngram_max: 2, min_df: 2 }));
  assert.deepEqual(rare.state.vocabulary, ['apple', 'red', 'red apple']);
  assert.equal(rare.state.candidates, 3);
  const capped = TfidfVectorizer.fit(docs, { ...settings({ ngram_max: 2, min_df: 1 }), max_features: 2 });
  assert.deepEqual(capped.state.vocabulary, ['apple', 'red'], 'apple (3 times), then red over "red apple" (2 times each)');
  assert.equal(capped.state.candidates, 10);
});

/** A data set whose validation and test rows hold words no training row has. */
const GENRES = ['western', 'horror', 'romance'];
const WORDS: Record<string, string[]> = { western: ['cowboy', 'sheriff', 'saloon'], horror: ['ghost', 'haunted', 'demon'], romance: ['love', 'wedding', 'kiss'] };
const plot = (g: string, i: number) => `A stranger in town meets a ${WORDS[g]![i % 3]} and a ${WORDS[g]![(i + 1) % 3]}, story ${i}.`;
const trainRows = Array.from({ length: 90 }, (_, i) => ({ id: i + 1, title: `Film ${i + 1} (1990)`, genre: GENRES[i % 3], text: plot(GENRES[i % 3]!, i) }));
const testRows = Array.from({ length: 30 }, (_, i) => ({ id: i + 1, title: `Test ${i + 1} (2001)`, genre: GENRES[i % 3], text: `${plot(GENRES[i % 3]!, i + 5)} Only the test rows say zanzibarian.` }));

let ws: Workspace;
before(() => {
  ws = workspace(
    `seed: 5\ningest:\n  source: data\n  validation_fraction: 0.2\nmodel:\n  path: ${DEMO_MODEL}\nembed:\n  method: tfidf\n  tfidf: { min_df: 1, max_features: 4096 }\n` +
      `train:\n  layers: [{ units: 16, dropout: 0.1 }]\n  standardize: false\n  epochs: 6\n  early_stopping: null\n`,
  );
  ws.write('data/train_data.txt', kaggleLines(trainRows));
  ws.write('data/test_data_solution.txt', kaggleLines(testRows));
  for (const stage of ['ingest', 'tokenize', 'embed', 'train', 'evaluate']) {
    const result = runProgram(ws, `stages/${stage}`);
    assert.equal(result.code, 0, `${stage}: ${result.stderr}`);
  }
});

const runDir = (stage: string, run = 'config') => join(ws.artifacts, 'runs', run, stage);

test('TF-IDF is fitted on the training split only: no validation or test row adds a word or counts in the IDF', async () => {
  const rows = await readParquet<{ split: string; description: string }>(join(runDir('ingest'), 'train.parquet'), ['split', 'description']);
  const validation = rows.filter((r) => r.split === 'validation');
  assert.ok(validation.length >= 10, 'the data has validation rows');
  const state = readState(runDir('embed')).state;
  assert.equal(state.documents, rows.length - validation.length, 'IDF counts the training rows, not the validation rows');
  assert.ok(!state.vocabulary.includes('zanzibarian'), 'a word only test rows have is not a feature');
  // Story numbers of validation rows that no training row has are not features either.
  const trainWords = new Set(rows.filter((r) => r.split === 'train').flatMap((r) => r.description.toLowerCase().match(/[\p{L}\p{N}_]{2,}/gu) ?? []));
  const validationOnly = [...new Set(validation.flatMap((r) => r.description.toLowerCase().match(/[\p{L}\p{N}_]{2,}/gu) ?? []))].filter((w) => !trainWords.has(w));
  assert.ok(validationOnly.length > 0, 'some validation words are absent from the training rows');
  for (const word of validationOnly) assert.ok(!state.vocabulary.includes(word), `${word} appears only in validation rows`);
  // Sparse rows, one unit row per movie, as wide as the vocabulary, columns ascending.
  const rows0 = readVectorFile(join(runDir('embed'), 'test.arrow'));
  assert.ok('indptr' in rows0, 'TF-IDF rows are stored sparse');
  assert.equal(rows0.width, state.vocabulary.length);
  assert.equal(rows0.indptr.length - 1, testRows.length);
  const first = rows0.values.subarray(rows0.indptr[0], rows0.indptr[1]);
  assert.ok(first.length > 0 && first.length < rows0.width / 4, `${first.length} non-zeros of ${rows0.width}`);
  assert.ok(Math.abs(Math.hypot(...first) - 1) < 1e-5);
  const columns = Array.from(rows0.indices.subarray(rows0.indptr[0], rows0.indptr[1]));
  assert.deepEqual(columns, [...columns].sort((a, b) => a - b));
  // The same rows as the vectorizer's dense transform of the same text.
  const dense = readState(runDir('embed')).transformDense([testRows[0]!.text]);
  assert.deepEqual(Array.from(denseSlice(rows0, rows0.width, 0, 1)), Array.from(dense));
  const manifest = JSON.parse(readFileSync(join(runDir('embed'), 'manifest.json'), 'utf8'));
  assert.equal(manifest.details.method, 'tfidf');
  assert.ok('tfidf.json' in manifest.files, 'the fitted state is part of the published artifact');
});

test('predict on a TF-IDF run gives the evaluate stage\'s probabilities for the same descriptions', async () => {
  const input = ws.write('plots.jsonl', testRows.map((r) => JSON.stringify({ id: String(r.id), description: r.text })).join('\n'));
  const output = join(ws.dir, 'predicted.parquet');
  const result = runProgram(ws, 'scripts/predict', ['--input', input, '--output', output]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /vectorize [\d.]+s/, 'the featurizer\'s own step is timed');
  const predicted = new Map((await readParquet<{ id: string; top1_genre: string; top1_prob: number; top2_prob: number }>(output)).map((p) => [p.id, p]));
  const evaluated = (await readParquet<{ split: string; id: string; top1_genre: string; top1_prob: number; top2_prob: number }>(join(runDir('evaluate'), 'predictions.parquet'))).filter((p) => p.split === 'test');
  assert.equal(evaluated.length, testRows.length);
  for (const e of evaluated) {
    const p = predicted.get(e.id)!;
    assert.equal(p.top1_genre, e.top1_genre, `movie ${e.id}`);
    assert.ok(Math.abs(p.top1_prob - e.top1_prob) < 1e-6 && Math.abs(p.top2_prob - e.top2_prob) < 1e-6, `movie ${e.id}: ${p.top1_prob} vs ${e.top1_prob}`);
  }
});

test('predict refuses a TF-IDF run whose fitted state was edited after it was published, with one message', () => {
  const state = join(runDir('embed'), 'tfidf.json');
  const published = readFileSync(state);
  try {
    // Same size, one word changed: only the checksum can tell.
    writeFileSync(state, published.toString('utf8').replace('"cowboy"', '"cowboz"'));
    const result = runProgram(ws, 'scripts/predict', ['A sheriff rides into town.']);
    assert.notEqual(result.code, 0);
    assert.equal(result.stderr.match(/^error: /gm)?.length, 1, result.stderr);
    assert.match(result.stderr, /tfidf\.json does not match the sha256 in its manifest/);
  } finally {
    writeFileSync(state, published);
  }
});

test('a TF-IDF setting changes the embed key; a BERT setting does not, and --shard is refused with one message', () => {
  const status = (set: string[]) => JSON.parse(runProgram(ws, 'scripts/status', ['--json', ...set.flatMap((s) => ['--set', s])]).stdout).stages as { stage: string; key: string }[];
  const key = (set: string[]) => status(set).find((s) => s.stage === 'embed')!.key;
  assert.equal(key(['embed.pooling=cls']), key([]), 'pooling belongs to BERT');
  assert.notEqual(key(['embed.tfidf.min_df=2']), key([]));
  assert.notEqual(key(['embed.method=bert']), key([]));
  const shard = runProgram(ws, 'stages/embed', ['--shard', '0/2']);
  assert.notEqual(shard.code, 0);
  assert.equal(shard.stderr.match(/^error: /gm)?.length, 1, shard.stderr);
  assert.match(shard.stderr, /slices are for embed.method bert/);
});

test('the report shows reference runs beside this one, passes the browser checks with them, and rebuilds when a reference run is rebuilt', async () => {
  // A BERT run on the same data, under its own run name, as the reference.
  for (const stage of ['ingest', 'tokenize', 'embed', 'train', 'evaluate']) assert.equal(runProgram(ws, `stages/${stage}`, ['--set', 'run=bert', '--set', 'embed.method=bert', '--set', 'embed.providers=[cpu]']).code, 0, stage);
  const withReference = ['--set', 'report.reference_runs=[bert,missing]'];
  const report = runProgram(ws, 'stages/report', withReference);
  assert.equal(report.code, 0, report.stderr);
  assert.match(report.stderr, /reference_runs names "missing", which has no evaluate artifact/);
  const html = readFileSync(join(runDir('report'), 'report.html'), 'utf8');
  const bertMetrics = JSON.parse(readFileSync(join(runDir('evaluate', 'bert'), 'metrics.json'), 'utf8')).test;
  const ownMetrics = JSON.parse(readFileSync(join(runDir('evaluate'), 'metrics.json'), 'utf8')).test;
  const versus = /<p class="versus">Accuracy: (.*?)<\/p>/.exec(html)?.[1];
  assert.equal(versus, `TF-IDF ${ownMetrics.accuracy.toFixed(3)} vs random-weight BERT ${bertMetrics.accuracy.toFixed(3)} vs majority ${ownMetrics.majority_baseline.accuracy.toFixed(3)}`);
  assert.match(html, new RegExp(`<tr data-run="bert"><td>bert</td><td>random-weight BERT</td><td>${bertMetrics.accuracy.toFixed(3)}</td><td>${bertMetrics.macro.f1.toFixed(3)}</td>`));
  assert.match(html, /<th class="reference">F1 bert<br>random-weight BERT<\/th>/);
  const westernF1 = bertMetrics.per_class.western.f1.toFixed(3);
  assert.match(html, new RegExp(`<td>western[^]*?<td class="reference">${westernF1}</td></tr>`), 'the per-genre row carries the reference run\'s F1');
  const summary = readFileSync(join(runDir('report'), 'summary.md'), 'utf8');
  const figures = (m: { accuracy: number; macro: { f1: number } }) => `${m.accuracy.toFixed(3)} / ${m.macro.f1.toFixed(3)}`;
  assert.ok(
    summary.includes(`**Beside other runs** (accuracy / macro-F1 on the same rows): this run (TF-IDF) ${figures(ownMetrics)} · \`bert\` (random-weight BERT) ${figures(bertMetrics)} · majority`),
    summary,
  );

  // The same practitioner checks as every report, in a real browser, with the reference columns and table.
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage({ viewport: { width: 1366, height: 768 } });
    await page.goto(pathToFileURL(join(runDir('report'), 'report.html')).href, { waitUntil: 'load' });
    await checkReportPage(page, GENRES.length);
    assert.deepEqual(await page.$$eval('table.references tr[data-run]', (rows) => rows.map((r) => r.getAttribute('data-run'))), ['config', 'bert', 'majority baseline']);
  } finally {
    await browser.close();
  }

  const store = new ArtifactStore(ws.artifacts);
  const before = runPointers(store, 'config').report;
  assert.match(runProgram(ws, 'stages/report', withReference).stderr, /report: up to date/);
  // Retraining the reference run (another seed) gives it a new evaluate artifact: the report is stale.
  for (const stage of ['train', 'evaluate']) assert.equal(runProgram(ws, `stages/${stage}`, ['--set', 'run=bert', '--set', 'embed.method=bert', '--set', 'embed.providers=[cpu]', '--set', 'train.seed=9']).code, 0, stage);
  assert.match(runProgram(ws, 'stages/report', withReference).stderr, /report: built/);
  assert.notEqual(runPointers(store, 'config').report, before);

  // Without report.reference_runs, every other run evaluated on the same data stands beside this one.
  const byData = runProgram(ws, 'stages/report');
  assert.equal(byData.code, 0, byData.stderr);
  const context = readFileSync(join(runDir('report'), 'report.html'), 'utf8');
  assert.match(context, /<tr data-run="bert"><td>bert<\/td>/);
  assert.match(context, /data-context="same data"/);
  assert.match(runProgram(ws, 'stages/report').stderr, /report: up to date/, 'a rerun with nothing changed builds nothing');
});

test('a sweep over embed.method builds ingest once and ranks both featurizers on one leaderboard', async () => {
  const sweep = ws.write('featurizers.yaml', `base: ${ws.config}\nmetric: test.accuracy\nvariants:\n  - embed.method: bert\n    embed.providers: [cpu]\n  - embed.method: tfidf\n`);
  const artifacts = join(ws.dir, 'sweep-store');
  const result = runProgram(ws, 'scripts/sweep', [sweep, '--artifacts', artifacts]);
  assert.equal(result.code, 0, result.stderr);
  const summary = JSON.parse(readFileSync(join(artifacts, 'sweeps', 'featurizers', 'sweep.json'), 'utf8'));
  assert.deepEqual(summary.builds, { ingest: 1, tokenize: 1, embed: 2, train: 2, evaluate: 2 });
  const board = await readParquet<{ 'embed.method': string; status: string; test_accuracy: number; embed_key: string }>(join(artifacts, 'sweeps', 'featurizers', 'leaderboard.parquet'));
  // Parameter columns hold each value as JSON (a column may mix numbers, strings and lists).
  assert.deepEqual(board.map((r) => JSON.parse(r['embed.method'])).sort(), ['bert', 'tfidf']);
  assert.ok(board.every((r) => r.status === 'ok' && r.test_accuracy > 0));
  assert.notEqual(board[0]!.embed_key, board[1]!.embed_key);
});
