import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import sharp from 'sharp';
import { chromium } from 'playwright-core';
import { readParquet } from '../pipeline/parquet/index.js';
import { createServer } from 'node:http';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { REPO, kaggleLines, runProgram, runProgramAsync, workspace, type Workspace } from './helpers/workspace.js';
import { CHROMIUM_ARGS, checkReportPage } from './helpers/report-page.js';
import { spawnSync } from 'node:child_process';

const MODEL = join(REPO, 'models', 'demo-bert-random');
const GENRES = ['western', 'horror', 'romance', 'comedy'];
const WORDS: Record<string, string[]> = {
  western: ['cowboy', 'sheriff', 'saloon'],
  horror: ['ghost', 'haunted', 'demon'],
  romance: ['love', 'wedding', 'kiss'],
  comedy: ['joke', 'clown', 'prank'],
};
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

const text = (g: string, i: number) => `A stranger in the city ${WORDS[g]![i % 3]} and ${WORDS[g]![(i + 1) % 3]} at night, number ${i}.`;
// Every fifth test movie is mislabeled, so the gallery has mistakes to show.
const rows = (n: number, offset: number, noise: boolean) =>
  Array.from({ length: n }, (_, i) => ({ id: i + 1, title: `Film ${i + 1} (${1950 + i})`, genre: GENRES[(i + (noise && i % 5 === 0 ? 1 : 0)) % 4], text: text(GENRES[i % 4]!, i + offset) }));

/** A trained run on four genres, posters for test movies 1 (PNG), 2 (JPEG) and 3 (WebP). */
let ws: Workspace;
before(async () => {
  ws = workspace(
    `seed: 3\ningest:\n  source: data\nmodel:\n  path: ${MODEL}\nembed:\n  providers: [cpu]\n  threads: 1\ntrain:\n  epochs: 8\n  early_stopping: null\nreport:\n  gallery: 12\n  mistakes: 4\n  least_confident: 3\n  images: posters\n`,
  );
  ws.write('data/train_data.txt', kaggleLines(rows(200, 0, false)));
  ws.write('data/test_data_solution.txt', kaggleLines(rows(60, 11, true)));
  mkdirSync(join(ws.dir, 'posters'));
  const poster = (color: string) => sharp({ create: { width: 300, height: 450, channels: 3, background: color } });
  await poster('#c00').png().toFile(join(ws.dir, 'posters', '1.png'));
  await poster('#0c0').jpeg().toFile(join(ws.dir, 'posters', '2.jpg'));
  await poster('#00c').webp().toFile(join(ws.dir, 'posters', '3.webp'));
  for (const stage of ['ingest', 'tokenize', 'embed', 'train', 'evaluate', 'report']) {
    const result = runProgram(ws, `stages/${stage}`);
    assert.equal(result.code, 0, `${stage}: ${result.stderr}`);
  }
});

const reportDir = () => join(ws.artifacts, 'runs', 'config', 'report');
const html = () => readFileSync(join(reportDir(), 'report.html'), 'utf8');

test('report.html is one self-contained file: no script, no external URL, posters inlined', () => {
  const page = html();
  assert.doesNotMatch(page, /<script/i);
  assert.doesNotMatch(page, /(src|href)="(?!data:|#)/, 'every src and href is a data: URI or an anchor');
  assert.doesNotMatch(page, /url\((?!#)/, 'no CSS url() but SVG fragment references');
  const posters = page.match(/<img src="data:image\/webp;base64,/g) ?? [];
  const shown = [...page.matchAll(/<article class="card[^"]*" data-id="(\d+)"/g)].map((m) => m[1]!);
  assert.equal(posters.length, shown.filter((id) => ['1', '2', '3'].includes(id)).length, 'a poster for each shown movie that has one');
  assert.equal(shown.length, 19, '12 sampled cards, 4 mistakes and 3 unsure right answers');
  assert.equal(new Set(shown).size, 19, 'no movie shown twice');
});

test('the gallery shows the most confident mistakes after the sample, each marked wrong, surest first', () => {
  const cards = [...html().matchAll(/<article class="card([^"]*)" data-id="\d+" data-correct="(\w+)">[\s\S]*?<span class="p">(\d+)%<\/span>/g)];
  const mistakes = cards.slice(12, 16);
  assert.equal(mistakes.length, 4);
  assert.ok(mistakes.every((m) => m[1] === ' wrong' && m[2] === 'false'));
  const confidence = mistakes.map((m) => Number(m[3]));
  assert.deepEqual(confidence, [...confidence].sort((a, b) => b - a), 'the surest mistake first');
  assert.ok(cards.slice(0, 12).every((m) => (m[2] === 'false') === (m[1] === ' wrong')));
});

test('the per-genre table has each genre\'s training rows and predicted count; a genre never predicted says so; top confusions in words', () => {
  const page = html();
  const metrics = JSON.parse(readFileSync(join(ws.artifacts, 'runs', 'config', 'evaluate', 'metrics.json'), 'utf8')).test;
  const labels = JSON.parse(readFileSync(join(ws.artifacts, 'runs', 'config', 'ingest', 'labels.json'), 'utf8'));
  const rows = [...page.matchAll(/<tr class="[^"]*" data-genre="([^"]+)">(.*?)<\/tr>/g)];
  assert.equal(rows.length, Object.values(metrics.per_class as Record<string, { support: number }>).filter((c) => c.support > 0).length);
  for (const [, genre, cells] of rows) {
    const j = metrics.labels.indexOf(genre);
    const predicted = metrics.confusion.reduce((n: number, row: number[]) => n + row[j]!, 0);
    assert.equal(Number(/data-column="train-rows">([\d,]+)</.exec(cells!)![1]!.replace(/,/g, '')), labels.counts[genre!].train, `${genre} train rows`);
    assert.equal(Number(/data-column="predicted">([\d,]+)</.exec(cells!)![1]!.replace(/,/g, '')), predicted, `${genre} predicted`);
    assert.equal(/never predicted/.test(cells!), predicted === 0, `${genre}: never predicted iff no row was predicted as it`);
  }
  // The precision-recall panels' average precision is metrics.json's, genre by genre.
  const panels = [...page.matchAll(/>([\w-]+) AP (\d\.\d\d) \((\d+)\)</g)];
  assert.equal(panels.length, rows.length, 'one precision-recall panel per genre with test rows');
  for (const [, genre, ap, support] of panels) {
    assert.equal(ap, metrics.average_precision.per_class[genre!].toFixed(2), `${genre} AP`);
    assert.equal(Number(support), metrics.per_class[genre!].support);
  }
  // The first confusion listed is the largest off-diagonal cell.
  let top = { n: 0, truth: '', pred: '' };
  metrics.labels.forEach((t: string, i: number) => metrics.labels.forEach((p: string, j: number) => { if (i !== j && metrics.confusion[i][j] > top.n) top = { n: metrics.confusion[i][j], truth: t, pred: p }; }));
  if (top.n) assert.match(page, new RegExp(`<ol class="confusions"><li data-confusion="${top.truth}:${top.pred}"><b>${top.truth}</b> taken for <b>${top.pred}</b>: ${top.n} of`));
});

test('summary.md has the headline against the baseline and the best and worst genres', () => {
  const summary = readFileSync(join(reportDir(), 'summary.md'), 'utf8');
  const [, value, lo, hi] = /\| accuracy \| (\d\.\d{3}) \((\d\.\d{3})-(\d\.\d{3})\) \| \d\.\d{3} \| [+-]\d\.\d{3} \|/.exec(summary) ?? [];
  assert.ok(value, summary);
  assert.ok(Number(lo) <= Number(value) && Number(value) <= Number(hi), 'the 95% interval holds the figure');
  // The same interval as metrics.json's.
  const metrics = JSON.parse(readFileSync(join(ws.artifacts, 'runs', 'config', 'evaluate', 'metrics.json'), 'utf8'));
  assert.deepEqual([lo, hi], metrics.test.intervals.accuracy.map((x: number) => x.toFixed(3)));
  assert.match(summary, /\| macro-F1 \|/);
  assert.match(summary, /\| top-3 accuracy \|/);
  assert.match(summary, /\*\*Best genres\*\*/);
  assert.match(summary, /\*\*Worst genres\*\*/);
  assert.match(summary, /Random-weight demo model/);
});

test('changing report.* rebuilds the report only', () => {
  const result = runProgram(ws, 'stages/report', ['--set', 'report.gallery=4']);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stderr, /report: built/);
  assert.doesNotMatch(result.stderr, /(ingest|tokenize|embed|train|evaluate): built/);
  assert.equal([...readFileSync(join(ws.artifacts, 'runs', 'config', 'report', 'report.html'), 'utf8').matchAll(/<article class="card/g)].length, 4 + 4 + 3);
  const again = runProgram(ws, 'stages/report', ['--set', 'report.gallery=4']);
  assert.match(again.stderr, /report: up to date/);
  assert.equal(runProgram(ws, 'stages/report').code, 0);
});

test('a broken poster is one error naming the file', () => {
  const broken = workspace();
  const config = readFileSync(ws.config, 'utf8').replace('images: posters', `images: ${join(broken.dir, 'posters')}`);
  broken.write('config.yaml', config.replace('source: data', `source: ${join(ws.dir, 'data')}`));
  broken.write('posters/1.png', 'not an image');
  const result = runProgram(broken, 'stages/report', ['--artifacts', ws.artifacts]);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /posters\/1\.png: not a readable JPEG, PNG or WebP image/);
});

test('the report renders in Chromium without errors or network requests, every chart and card visible', { timeout: 120_000 }, async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing: \`make browser\` installs Debian's chromium`);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const problems: string[] = [];
    page.on('console', (m) => m.type() === 'error' && problems.push(`console: ${m.text()}`));
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('request', (r) => !r.url().startsWith('data:') && r.url() !== pageUrl && problems.push(`request: ${r.url()}`));
    const pageUrl = pathToFileURL(join(reportDir(), 'report.html')).href;
    await page.goto(pageUrl, { waitUntil: 'load' });

    const charts = await page.$$eval('figure.chart', (figures) =>
      figures.map((f) => {
        const svg = f.querySelector('svg');
        const box = svg?.getBoundingClientRect();
        return { name: f.getAttribute('data-chart'), width: box?.width ?? 0, height: box?.height ?? 0, marks: svg?.querySelectorAll('[role="graphics-symbol"]').length ?? 0 };
      }),
    );
    assert.deepEqual(charts.map((c) => c.name).sort(), ['class-distribution', 'confusion', 'learning-curves', 'precision-recall', 'reliability', 'timings', 'token-lengths']);
    for (const c of charts) assert.ok(c.width > 100 && c.height > 50 && c.marks > 0, `chart ${c.name} rendered: ${JSON.stringify(c)}`);
    const confusionCells = await page.$$eval('[data-chart="confusion"] path[role="graphics-symbol"] title', (t) => t.map((x) => x.textContent));
    assert.equal(confusionCells.length, 16, 'a 4 x 4 confusion matrix with hover text');
    assert.match(confusionCells[0]!, /^true \w+, predicted \w+: \d+ of \d+/);
    const cards = await page.$$eval('article.card', (list) =>
      list.map((c) => {
        const img = c.querySelector('img');
        const box = c.getBoundingClientRect();
        return { visible: box.width > 200 && box.height > 100, poster: img ? img.complete && img.naturalWidth > 0 : null, tile: Boolean(c.querySelector('svg.placeholder')) };
      }),
    );
    assert.equal(cards.length, 19, '12 drawn, 4 confident mistakes, 3 unsure right answers');
    const unsure = await page.$$eval('#least-confident + .gallery article.card', (list) =>
      list.map((c) => ({ correct: c.getAttribute('data-correct'), p: Number(c.querySelector('.topk .p')!.textContent!.replace('%', '')) })),
    );
    assert.equal(unsure.length, 3);
    assert.ok(unsure.every((c) => c.correct === 'true'), 'all right answers');
    assert.deepEqual(unsure.map((c) => c.p), [...unsure.map((c) => c.p)].sort((a, b) => a - b), 'least sure first');
    for (const c of cards) assert.ok(c.visible && (c.poster === true || (c.poster === null && c.tile)), JSON.stringify(c));
    assert.ok(await page.isVisible('.banner'), 'the random-model banner is shown');
    const shot = join(REPO, 'artifacts', 'test', 'report-1280x900.png');
    mkdirSync(join(REPO, 'artifacts', 'test'), { recursive: true });
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(statSync(shot).size > 10_000);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});

test('at 1366 x 768 and 1280 x 900 the report passes the practitioner checks (counts, order, splits, layout, print), on the test run and on the generated demo', { timeout: 180_000 }, async () => {
  // The generated demo data set (12 genres), through the whole pipeline, beside the test run (4 genres).
  const demo = workspace(`ingest:\n  source: demo\nmodel:\n  path: ${MODEL}\nembed:\n  providers: [cpu]\n  threads: 1\ntrain:\n  epochs: 4\n`);
  const made = spawnSync(process.execPath, [join(REPO, 'dist', 'scripts', 'dev', 'generate-demo-data.js'), '--out', join(demo.dir, 'demo')], { encoding: 'utf8' });
  assert.equal(made.status, 0, made.stderr);
  for (const stage of ['ingest', 'tokenize', 'embed', 'train', 'evaluate', 'report']) assert.equal((await runProgramAsync(demo, `stages/${stage}`)).code, 0, stage);
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  try {
    mkdirSync(join(REPO, 'artifacts', 'test'), { recursive: true });
    for (const [name, dir, genres] of [['test', reportDir(), 4], ['demo', join(demo.artifacts, 'runs', 'config', 'report'), 12]] as const) {
      for (const [width, height] of [[1366, 768], [1280, 900]] as const) {
        const page = await browser.newPage({ viewport: { width, height } });
        await page.goto(pathToFileURL(join(dir, 'report.html')).href, { waitUntil: 'load' });
        await checkReportPage(page, genres);
        await page.screenshot({ path: join(REPO, 'artifacts', 'test', `report-${name}-${width}x${height}.png`) });
        await page.close();
      }
    }
  } finally {
    await browser.close();
  }
});

test('predict gives the evaluate stage\'s probabilities for the same descriptions', async () => {
  const descriptions = ws.write('plots.jsonl', rows(60, 11, true).map((r) => JSON.stringify({ id: String(r.id), description: r.text })).join('\n'));
  const output = join(ws.dir, 'predicted.parquet');
  const result = runProgram(ws, 'scripts/predict', ['--input', descriptions, '--output', output]);
  assert.equal(result.code, 0, result.stderr);
  const written = await readParquet<{ id: string; top1_genre: string; top1_prob: number; run: string; classifier_key: string }>(output);
  const predicted = new Map(written.map((p) => [p.id, p]));
  const trainKey = JSON.parse(readFileSync(join(ws.artifacts, 'runs', 'config', 'train', 'manifest.json'), 'utf8')).key;
  assert.ok(written.every((p) => p.run === 'config' && p.classifier_key === trainKey), 'every row names the run and the classifier that made it');
  const evaluated = (await readParquet<{ split: string; id: string; top1_genre: string; top1_prob: number }>(join(ws.artifacts, 'runs', 'config', 'evaluate', 'predictions.parquet'))).filter((p) => p.split === 'test');
  assert.equal(evaluated.length, 60);
  for (const e of evaluated) {
    const p = predicted.get(e.id)!;
    assert.equal(p.top1_genre, e.top1_genre, `movie ${e.id}`);
    assert.ok(Math.abs(p.top1_prob - e.top1_prob) < 1e-4, `movie ${e.id}: ${p.top1_prob} vs ${e.top1_prob}`);
  }
});

test('predict: --json, .jsonl, .csv and .parquet carry the same fields and the same keys and genre order', async () => {
  const input = ws.write('plots-fields.jsonl', rows(60, 11, true).slice(0, 5).map((r) => JSON.stringify({ id: String(r.id), title: `Film ${r.id}`, description: r.text })).join('\n'));
  const json = runProgram(ws, 'scripts/predict', ['--input', input, '--json', '--top-k', '2']);
  assert.equal(json.code, 0, json.stderr);
  const printed = JSON.parse(json.stdout) as { run: string; classifier_key: string; embed_key: string; genres: string[]; predictions: { id: string; title: string; predicted_genre: string; top: { genre: string; probability: number }[] }[] };
  const expected = printed.predictions.map((p) => ({ id: p.id, title: p.title, predicted_genre: p.predicted_genre, top1_genre: p.top[0]!.genre, top1_prob: p.top[0]!.probability, top2_genre: p.top[1]!.genre, top2_prob: p.top[1]!.probability, run: printed.run, classifier_key: printed.classifier_key, embed_key: printed.embed_key }));
  const keys = { run: printed.run, classifier_key: printed.classifier_key, embed_key: printed.embed_key, genres: printed.genres };
  assert.deepEqual([...printed.genres].sort(), [...GENRES].sort());
  const outputs: Record<string, Record<string, unknown>[]> = {};
  for (const ext of ['jsonl', 'csv', 'parquet']) {
    const path = join(ws.dir, `fields.${ext}`);
    const written = runProgram(ws, 'scripts/predict', ['--input', input, '--output', path, '--top-k', '2']);
    assert.equal(written.code, 0, written.stderr);
    if (ext === 'jsonl') outputs[ext] = readFileSync(path, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    if (ext === 'csv') {
      const [header, ...lines] = readFileSync(path, 'utf8').trim().split('\n');
      const columns = header!.split(',');
      outputs[ext] = lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [columns[i]!, /_prob$/.test(columns[i]!) ? Number(v) : v])));
    }
    if (ext === 'parquet') outputs[ext] = await readParquet(path);
    // Each file names what made it: the Parquet file in its metadata, the text formats in a sidecar.
    if (ext === 'parquet') {
      const { parquetMetadataAsync, asyncBufferFromFile } = await import('hyparquet');
      const metadata = await parquetMetadataAsync(await asyncBufferFromFile(path));
      const kv = Object.fromEntries((metadata.key_value_metadata ?? []).map((e: { key: string; value?: string }) => [e.key, e.value]));
      assert.deepEqual({ run: kv.run, classifier_key: kv.classifier_key, embed_key: kv.embed_key, genres: JSON.parse(kv.genres!) }, keys);
    } else {
      const sidecar = JSON.parse(readFileSync(`${path}.meta.json`, 'utf8'));
      assert.deepEqual({ run: sidecar.run, classifier_key: sidecar.classifier_key, embed_key: sidecar.embed_key, genres: sidecar.genres }, keys, `${ext} sidecar`);
    }
  }
  for (const [ext, rowsOut] of Object.entries(outputs)) {
    assert.deepEqual(Object.keys(rowsOut[0]!).sort(), Object.keys(expected[0]!).sort(), `${ext}: the same fields as --json`);
    rowsOut.forEach((row, i) => {
      for (const [field, value] of Object.entries(expected[i]!)) {
        if (typeof value === 'number') assert.ok(Math.abs(Number(row[field]) - value) < 1e-6, `${ext} ${field}`);
        else assert.equal(String(row[field]), value, `${ext} row ${i} ${field}`);
      }
    });
  }
});

test('predict takes the vectors of descriptions already embedded from the vector cache, and opens the model only for new ones', () => {
  const known = runProgram(ws, 'scripts/predict', [rows(60, 11, true)[7]!.text, '--json']);
  assert.equal(known.code, 0, known.stderr);
  assert.match(known.stderr, /1 from the vector cache/);
  assert.doesNotMatch(known.stderr, /ONNX Runtime/, 'no session is opened for a cached description');
  const fresh = runProgram(ws, 'scripts/predict', ['A clown and a ghost argue about a wedding.', '--json']);
  assert.equal(fresh.code, 0, fresh.stderr);
  assert.match(fresh.stderr, /0 from the vector cache/);
  assert.match(fresh.stderr, /ONNX Runtime [\d.]+ on cpu/);
});

test('predict reads a zstd-compressed Parquet file as DuckDB and polars write it', async () => {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const db = await (await DuckDBInstance.create(':memory:')).connect();
  const path = join(ws.dir, 'plots-zstd.parquet');
  await db.run(`copy (select 41::bigint as id, 'A haunted demon stalks the city.' as description union all select 42, 'A sheriff and his saloon.') to '${path}' (format parquet, compression zstd)`);
  const result = runProgram(ws, 'scripts/predict', ['--input', path, '--json']);
  assert.equal(result.code, 0, result.stderr);
  const answers = JSON.parse(result.stdout) as { run: string; classifier_key: string; predictions: { id: string; predicted_genre: string; top: { genre: string }[] }[] };
  assert.deepEqual(answers.predictions.map((a) => a.id), ['41', '42']);
  assert.equal(answers.run, 'config');
  assert.match(answers.classifier_key, /^[0-9a-f]{16}$/);
  assert.ok(answers.predictions.every((a) => a.predicted_genre === a.top[0]!.genre));
});

test('predict answers one description as JSON with k genres that sum to at most 1', () => {
  const result = runProgram(ws, 'scripts/predict', ['A ghost and a demon in a haunted house.', '--json', '--top-k', '2']);
  assert.equal(result.code, 0, result.stderr);
  const answer = JSON.parse(result.stdout) as { predicted_genre: string; run: string; top: { genre: string; probability: number }[] };
  assert.equal(answer.top.length, 2);
  assert.equal(answer.predicted_genre, answer.top[0]!.genre, 'the same field the file outputs have');
  assert.equal(answer.run, 'config');
  assert.doesNotMatch(result.stderr, / 0 rows\/s overall/);
  assert.ok(answer.top[0]!.probability >= answer.top[1]!.probability);
  assert.ok(answer.top.every((t) => GENRES.includes(t.genre)));
  assert.ok(answer.top[0]!.probability + answer.top[1]!.probability <= 1.0001);
});

test('predict refuses an unfinished run, an empty description and an unreadable file, each with one message', () => {
  const fresh = workspace(readFileSync(ws.config, 'utf8').replace('source: data', `source: ${join(ws.dir, 'data')}`).replace('epochs: 8', 'epochs: 9'));
  const unfinished = runProgram(fresh, 'scripts/predict', ['some plot', '--artifacts', ws.artifacts]);
  assert.equal(unfinished.code, 1);
  assert.match(unfinished.stderr, /the run "config" is unfinished: its train artifact is not built; run `make train CONFIG=/);

  const empty = runProgram(ws, 'scripts/predict', ['   ']);
  assert.equal(empty.code, 1);
  assert.match(empty.stderr, /the description is empty/);

  ws.write('bad.csv', 'id,description\n1,fine plot\n2,\n');
  const badLine = runProgram(ws, 'scripts/predict', ['--input', join(ws.dir, 'bad.csv')]);
  assert.equal(badLine.code, 1);
  assert.match(badLine.stderr, /bad\.csv line 3: empty or missing "description"/);

  ws.write('plots.txt', 'A ghost in the attic.\n\nA sheriff at noon.\n');
  const txt = runProgram(ws, 'scripts/predict', ['--input', join(ws.dir, 'plots.txt'), '--json']);
  assert.equal(txt.code, 0, txt.stderr);
  assert.deepEqual(JSON.parse(txt.stdout).predictions.map((p: { id: string }) => p.id), ['1', '3'], 'a .txt line keeps its line number as its id');
  assert.match(txt.stderr, /plots\.txt: 1 blank line skipped; each prediction's id is its line number/);

  ws.write('latin1.txt', Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x0a]));
  const binary = runProgram(ws, 'scripts/predict', ['--input', join(ws.dir, 'latin1.txt')]);
  assert.equal(binary.code, 1);
  assert.match(binary.stderr, /latin1\.txt: not readable UTF-8 text/);
  for (const r of [unfinished, empty, badLine, binary]) assert.equal(r.stderr.trim().split('\n').filter((l) => l.startsWith('error')).length, 1);
});

test('posters from the data\'s image column: a path resolved at ingest, a URL fetched once, a missing, outside or oversized one drawn as a tile', { timeout: 120_000 }, async () => {
  const png = await sharp({ create: { width: 200, height: 300, channels: 3, background: '#fa0' } }).png().toBuffer();
  let requests = 0;
  const asked: Record<string, number> = {};
  const server = createServer((req, res) => {
    requests++;
    asked[req.url!] = (asked[req.url!] ?? 0) + 1;
    if (req.url === '/posters/2.png') res.writeHead(200, { 'content-type': 'image/png' }).end(png);
    else if (req.url === '/posters/big.png') res.writeHead(200, { 'content-type': 'image/png' }).end(Buffer.alloc(300_000, 1));
    else res.writeHead(404).end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    ws.write(
      'csvdata/train.csv',
      'id,title,genre,description\n' + rows(120, 0, false).map((r) => `${r.id},Film ${r.id},${r.genre},"${r.text}"`).join('\n') + '\n',
    );
    const images: Record<number, string> = {
      1: 'art/1.png',
      2: `${base}/posters/2.png`,
      3: 'art/missing.png',
      4: `${base}/posters/gone.png`,
      5: '/etc/passwd',
      6: '../outside.png',
      7: `${base}/posters/gone.png`,
      8: `${base}/posters/big.png`,
    };
    ws.write('csvdata/test.csv', 'id,title,genre,description,image\n' + rows(9, 3, false).map((r) => `${r.id},Film ${r.id},${r.genre},"${r.text}",${images[r.id as number] ?? ''}`).join('\n') + '\n');
    ws.write('csvdata/art/1.png', png);
    ws.write('outside.png', png);
    const config =
      readFileSync(ws.config, 'utf8').replace('source: data', `source: ${join(ws.dir, 'csvdata')}\n  files: { train: train.csv, test: null, test_solution: test.csv }`).replace(/report:[\s\S]*$/, 'report:\n  gallery: 9\n  mistakes: 0\n  poster_max_bytes: 100000\n  allow_private_poster_urls: true\n');
    const posterWs = workspace(config);
    for (const stage of ['ingest', 'tokenize', 'embed', 'train', 'evaluate', 'report']) {
      const result = await runProgramAsync(posterWs, `stages/${stage}`);
      assert.equal(result.code, 0, `${stage}: ${result.stderr}`);
      if (stage === 'report') {
        assert.match(result.stderr, /warning: no poster for movie 3 \(.*art\/missing\.png/);
        assert.match(result.stderr, /warning: no poster for movie 4 \(.*gone\.png: HTTP 404/);
        assert.match(result.stderr, /warning: no poster for movie 5 \(\/etc\/passwd: outside the data folder and report\.images: not read\)/);
        assert.match(result.stderr, /warning: no poster for movie 6 \(.*outside\.png: outside the data folder and report\.images: not read\)/);
        assert.match(result.stderr, /warning: no poster for movie 8 \(.*big\.png: larger than report\.poster_max_bytes \(100000 bytes\)\)/);
        assert.match(result.stderr, /9 gallery cards \(2 with posters\)/);
        assert.equal(asked['/posters/gone.png'], 1, 'a failing URL is asked once, however many movies name it');
      }
    }
    const ingested = await readParquet<{ id: string; image: string | null }>(join(posterWs.artifacts, 'runs', 'config', 'ingest', 'test.parquet'), ['id', 'image']);
    assert.equal(ingested.find((r) => r.id === '1')!.image, join(ws.dir, 'csvdata', 'art', '1.png'), 'relative paths are resolved at ingest');
    assert.equal(ingested.find((r) => r.id === '9')!.image ?? null, null, 'no image: null');
    const page = readFileSync(join(posterWs.artifacts, 'runs', 'config', 'report', 'report.html'), 'utf8');
    assert.equal((page.match(/<img src="data:image\/webp;base64,/g) ?? []).length, 2);
    assert.equal((page.match(/<svg class="placeholder"/g) ?? []).length, 7);
    const tiles = page.match(/<svg class="placeholder".*?<\/svg>/g)!;
    assert.ok(tiles.every((t) => (t.match(/<text /g) ?? []).length === 1), 'a tile shows the initials only, no genre that could read as a label');
    const fetched = requests;
    assert.equal((await runProgramAsync(posterWs, 'stages/report', ['--set', 'report.excerpt_chars=100'])).code, 0);
    assert.equal(requests, fetched + 2, 'the poster that was found comes from the cache; only the 404 and the oversized one are asked again');
    assert.equal(asked['/posters/2.png'], 1);

    // Without the opt-in, a poster URL on a local or private address is not fetched at all.
    const before = requests;
    const strict = await runProgramAsync(posterWs, 'stages/report', ['--set', 'report.allow_private_poster_urls=false']);
    assert.equal(strict.code, 0, strict.stderr);
    assert.match(strict.stderr, /warning: no poster for movie 2 \(.*127\.0\.0\.1 is a local or private address/);
    assert.equal(requests, before);
  } finally {
    server.close();
  }
});
