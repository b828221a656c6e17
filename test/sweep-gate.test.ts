import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { DuckDBInstance } from '@duckdb/node-api';
import { loadConfig } from '../pipeline/config/index.js';
import { readBaseline } from '../pipeline/compare/index.js';
import { loadSweep } from '../pipeline/sweep/file.js';
import { ArtifactStore } from '../pipeline/artifacts/store.js';
import { planPipeline } from '../pipeline/artifacts/plan.js';
import { STAGES } from '../pipeline/dag.js';
import { REPO, kaggleLines, runProgram, workspace, type Workspace } from './helpers/workspace.js';

const MODEL = join(REPO, 'models', 'demo-bert-random');
const GENRES = ['western', 'horror', 'romance'];
const WORDS: Record<string, string[]> = { western: ['cowboy', 'sheriff', 'saloon'], horror: ['ghost', 'haunted', 'demon'], romance: ['love', 'wedding', 'kiss'] };
const text = (g: string, i: number) => `A stranger ${WORDS[g]![i % 3]} and ${WORDS[g]![(i + 1) % 3]} at night, number ${i}.`;
const rows = (n: number, offset: number) => Array.from({ length: n }, (_, i) => ({ id: i + 1, genre: GENRES[i % 3], text: text(GENRES[i % 3]!, i + offset) }));

let ws: Workspace;
before(() => {
  ws = workspace(`seed: 4\ningest:\n  source: data\nmodel:\n  path: ${MODEL}\nembed:\n  providers: [cpu]\n  threads: 1\ntrain:\n  epochs: 4\n  early_stopping: null\n  layers:\n    - units: 32\n`);
  ws.write('data/train_data.txt', kaggleLines(rows(120, 0)));
  ws.write('data/test_data_solution.txt', kaggleLines(rows(30, 5)));
});

const keyDirs = (stage: string) => (existsSync(join(ws.artifacts, stage)) ? readdirSync(join(ws.artifacts, stage)).filter((d) => /^[0-9a-f]{16}$/.test(d)) : []);

test('an override of one list item keeps the rest of the default list', () => {
  const w = workspace('ingest:\n  source: x\n');
  const { layers } = loadConfig(w.config, ['train.layers[0].units=128']).config.train;
  assert.deepEqual(layers.map((l) => l.units), [128, 256]);
});

test('train.seed changes the train key only, and an unset train.seed leaves keys as they were', async () => {
  // A store of its own: the sweep below counts what it builds in the workspace's.
  const own = join(ws.dir, 'keys-store');
  for (const stage of ['ingest', 'tokenize', 'embed']) assert.equal(runProgram(ws, `stages/${stage}`, ['--artifacts', own]).code, 0);
  const store = new ArtifactStore(own);
  const keys = async (overrides: string[]) => Object.fromEntries([...(await planPipeline(STAGES, loadConfig(ws.config, overrides), store, 'evaluate')).stages].map(([s, p]) => [s, p.key]));
  const base = await keys([]);
  const seeded = await keys(['train.seed=7']);
  assert.deepEqual(['ingest', 'tokenize', 'embed'].map((s) => seeded[s]), ['ingest', 'tokenize', 'embed'].map((s) => base[s]));
  assert.notEqual(seeded.train, base.train);
  assert.deepEqual(await keys(['train.seed=null']), base);
});

test('a 4-variant sweep over train.* embeds once, trains four times and ranks them', async () => {
  ws.write('sweep.yaml', 'base: config.yaml\nmax_parallel: 2\nreport: false\ngrid:\n  train.layers[0].units: [16, 48]\n  train.optimizer.lr: [0.003, 0.0003]\n');
  const result = runProgram(ws, 'scripts/sweep', [join(ws.dir, 'sweep.yaml')]);
  assert.equal(result.code, 0, result.stderr);
  for (const run of ['sweep-01', 'sweep-04']) assert.match(result.stderr, new RegExp(`^sweep: ${run}: train$`, 'm'), 'each variant\'s stage is shown as it starts');
  assert.equal(keyDirs('embed').length, 1, 'one embed artifact');
  assert.equal(keyDirs('tokenize').length, 1);
  assert.equal(keyDirs('train').length, 4, 'four trained models');
  const summary = JSON.parse(readFileSync(join(ws.artifacts, 'sweeps', 'sweep', 'sweep.json'), 'utf8'));
  assert.deepEqual(summary.builds, { ingest: 1, tokenize: 1, embed: 1, train: 4, evaluate: 4 });

  const db = await (await DuckDBInstance.create(':memory:')).connect();
  const reader = await db.runAndReadAll(`select rank, run, status, value, changes from '${join(ws.artifacts, 'sweeps', 'sweep', 'leaderboard.parquet')}' order by rank`);
  const board = reader.getRowObjects() as { rank: number; run: string; status: string; value: number; changes: string }[];
  assert.equal(board.length, 4);
  assert.deepEqual(board.map((r) => Number(r.rank)), [1, 2, 3, 4]);
  for (let i = 1; i < 4; i++) assert.ok(board[i - 1]!.value >= board[i]!.value, 'ranked best first');
  assert.match(board.find((r) => r.run === 'sweep-04')!.changes, /train\.layers\[0\]\.units: 32 -> 48; train\.optimizer\.lr: 0\.001 -> 0\.0003/);
  assert.match(readFileSync(join(ws.artifacts, 'sweeps', 'sweep', 'leaderboard.html'), 'utf8'), /<tr class="best" data-run="sweep-0\d">/);
  // Every variant's run folder points at the shared upstream, so predict --run and diff work on it.
  for (const run of ['sweep-01', 'sweep-02', 'sweep-03', 'sweep-04']) assert.ok(existsSync(join(ws.artifacts, 'runs', run, 'embed', 'manifest.json')), run);

  // One column per swept setting, typed, for pandas and DuckDB.
  const params = (await db.runAndReadAll(`select run, "train.layers[0].units" as units, "train.optimizer.lr" as lr from '${join(ws.artifacts, 'sweeps', 'sweep', 'leaderboard.parquet')}' order by run`)).getRowObjects();
  assert.deepEqual(params.map((r) => [r.run, Number(r.units), Number(r.lr)]), [['sweep-01', 16, 0.003], ['sweep-02', 16, 0.0003], ['sweep-03', 48, 0.003], ['sweep-04', 48, 0.0003]]);
  const html = readFileSync(join(ws.artifacts, 'sweeps', 'sweep', 'leaderboard.html'), 'utf8');
  const header = /<thead>(.*?)<\/thead>/s.exec(html)![1]!;
  assert.equal(header.match(/validation\.macro_f1/g)?.length, 1, 'the ranking metric is one column, not two');
  for (const param of ['train.layers[0].units', 'train.optimizer.lr']) assert.ok(html.includes(`data-chart="param-${param}"`), `a chart of the metric against ${param}`);

  // make runs: every run as one table, the settings that differ as columns.
  const runs = runProgram(ws, 'scripts/runs');
  assert.equal(runs.code, 0, runs.stderr);
  assert.match(runs.stdout, /^run +id +config +.*train\.layers\[0\]\.units.*train\.optimizer\.lr.*test\.accuracy/m);
  const table = (await db.runAndReadAll(`select run, "train.optimizer.lr" as lr, "test.accuracy" as acc, commit from '${join(ws.artifacts, 'runs.parquet')}' where run like 'sweep-0%' order by run`)).getRowObjects();
  assert.deepEqual(table.map((r) => [r.run, Number(r.lr)]), [['sweep-01', 0.003], ['sweep-02', 0.0003], ['sweep-03', 0.003], ['sweep-04', 0.0003]]);
  assert.ok(table.every((r) => Number(r.acc) > 0 && /^[0-9a-f]{40}$/.test(String(r.commit))));
  assert.match(readFileSync(join(ws.artifacts, 'runs.csv'), 'utf8'), /^run,id,config,/);

  // A rerun builds nothing and keeps the logs of the build it reuses; with a seeds sweep over
  // the same rows and vectors beside it (and only then), the charts show the seed noise as error bars.
  assert.match(html, /make sweep SWEEP=configs\/sweeps\/seeds\.yaml BASE=config\.yaml<\/code> draws it here/);
  // Each variant against the best on the validation rows, by a paired bootstrap.
  const verdicts = (await db.runAndReadAll(`select run, value, value_low, value_high, vs_best, vs_best_low, vs_best_high from '${join(ws.artifacts, 'sweeps', 'sweep', 'leaderboard.parquet')}' order by rank`)).getRowObjects();
  for (const v of verdicts) assert.ok(Number(v.value_low) <= Number(v.value) && Number(v.value) <= Number(v.value_high), `${v.run}: the ranking value sits inside its own 95% interval`);
  assert.equal(verdicts[0]!.vs_best, 'best');
  for (const v of verdicts.slice(1)) {
    assert.ok(['within noise', 'worse'].includes(String(v.vs_best)), String(v.vs_best));
    assert.equal(String(v.vs_best) === 'within noise', Number(v.vs_best_low) <= 0 && Number(v.vs_best_high) >= 0);
  }
  ws.write('seeds-other.yaml', 'base: config.yaml\nname: seeds-other\nreport: false\ngrid:\n  seed: [8]\n  train.seed: [1, 2]\n');
  assert.equal(runProgram(ws, 'scripts/sweep', [join(ws.dir, 'seeds-other.yaml')]).code, 0);
  assert.equal(runProgram(ws, 'scripts/sweep', [join(ws.dir, 'sweep.yaml')]).code, 0);
  assert.doesNotMatch(readFileSync(join(ws.artifacts, 'sweeps', 'sweep', 'leaderboard.html'), 'utf8'), /standard deviation/, 'seed noise from another split is not drawn');
  ws.write('seeds.yaml', 'base: config.yaml\nname: seeds\nreport: false\ngrid:\n  train.seed: [1, 2]\n');
  assert.equal(runProgram(ws, 'scripts/sweep', [join(ws.dir, 'seeds.yaml')]).code, 0);
  const firstLogs = readdirSync(join(ws.artifacts, 'sweeps', 'sweep', 'logs'));
  assert.equal(runProgram(ws, 'scripts/sweep', [join(ws.dir, 'sweep.yaml')]).code, 0);
  assert.match(readFileSync(join(ws.artifacts, 'sweeps', 'sweep', 'leaderboard.html'), 'utf8'), /± one standard deviation of validation\.macro_f1 over 2 classifier seeds on the same vectors \(sweep <code>seeds<\/code>\)/);
  const logs = readdirSync(join(ws.artifacts, 'sweeps', 'sweep', 'logs'));
  assert.equal(logs.length, firstLogs.length + 1);
  assert.match(readFileSync(join(ws.artifacts, 'sweeps', 'sweep', 'logs', firstLogs[0]!, 'sweep-01.log'), 'utf8'), /train: built/);
});

test('a list-sweep leaderboard: metrics in view at 1366x768 and 1280x900, one short column per setting, no confounded per-setting charts', async () => {
  ws.write('list.yaml', 'base: config.yaml\nreport: false\nvariants:\n  - train.layers: [{ units: 24, dropout: 0.1, batch_norm: true }, { units: 12, dropout: 0.2 }]\n    train.optimizer.lr: 0.003\n  - train.layers: [{ units: 40 }]\n    embed.pooling: cls\n');
  const result = runProgram(ws, 'scripts/sweep', [join(ws.dir, 'list.yaml')]);
  assert.equal(result.code, 0, result.stderr);
  const path = join(ws.artifacts, 'sweeps', 'list', 'leaderboard.html');
  const html = readFileSync(path, 'utf8');
  assert.doesNotMatch(html, /data-chart="param-/, 'a list of variants gets no per-setting charts');
  assert.match(html, /No per-setting charts: this sweep is a list of variants/);
  for (const setting of ['train.layers', 'train.optimizer.lr', 'embed.pooling']) assert.match(html, new RegExp(`<th class="param" title="${setting.replace(/[.[\]]/g, '\\$&')}">`));
  const { chromium } = await import('playwright-core');
  const { CHROMIUM_ARGS } = await import('./helpers/report-page.js');
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: CHROMIUM_ARGS });
  try {
    for (const [width, height] of [[1366, 768], [1280, 900]] as const) {
      const page = await browser.newPage({ viewport: { width, height } });
      await page.goto(`file://${path}`, { waitUntil: 'load' });
      const headers = await page.$$eval('table.leaderboard thead th', (ths) => ths.map((th) => ({ text: th.getAttribute('title') ?? th.textContent ?? '', right: th.getBoundingClientRect().right })));
      const metricHeaders = headers.filter((h) => /^(validation|test)\.|^vs best$/.test(h.text));
      assert.ok(metricHeaders.length >= 4, JSON.stringify(headers));
      for (const h of metricHeaders) assert.ok(h.right <= width, `${h.text} ends at ${h.right} px, past the ${width} px window`);
      const cells = await page.$$eval('table.leaderboard td.param', (tds) => tds.map((td) => td.textContent ?? ''));
      assert.ok(cells.every((c) => c.length <= 18), `setting cells are short: ${cells.join(' | ')}`);
      await page.screenshot({ path: join(REPO, 'artifacts', 'test', `leaderboard-list-${width}x${height}.png`) });
      await page.close();
    }
  } finally {
    await browser.close();
  }
});

test('a failed variant is reported and the others finish; the sweep exits 1', () => {
  ws.write('broken.yaml', 'base: config.yaml\nreport: false\nvariants:\n  - train.optimizer.lr: 0.002\n  - train.layers[0].units: -5\n  - train.backend: tensorflow\n');
  const result = runProgram(ws, 'scripts/sweep', [join(ws.dir, 'broken.yaml')]);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /broken-02 .* is invalid: .*train\.layers\[0\]\.units: expected number >0, got -5/);
  assert.match(result.stderr, /broken-03 FAILED \(train: train\.backend: tensorflow needs @tensorflow\/tfjs-node/);
  assert.match(result.stderr, /error: sweep: 2 of 3 variants failed \(broken-02, broken-03\)/);
  const summary = JSON.parse(readFileSync(join(ws.artifacts, 'sweeps', 'broken', 'sweep.json'), 'utf8'));
  assert.deepEqual(summary.variants.map((v: { status: string }) => v.status), ['ok', 'failed', 'failed']);
  assert.ok(existsSync(join(ws.artifacts, 'runs', 'broken-01', 'evaluate', 'metrics.json')), 'the good variant was evaluated');
});

test('sweep files: one form only, a known metric, and seeded random draws', () => {
  const check = (yaml: string, message: RegExp) => {
    ws.write('s.yaml', yaml);
    assert.throws(() => loadSweep(join(ws.dir, 's.yaml')), message);
  };
  check('base: config.yaml\n', /expected exactly one of grid, variants or random \(found none\)/);
  check('base: config.yaml\ngrid: { seed: [1] }\nvariants: [{ seed: 2 }]\n', /found grid, variants/);
  check('base: config.yaml\nmetric: test.f2\ngrid: { seed: [1] }\n', /metric: expected <split>\.<metric> .* got "test\.f2"/);
  check('base: config.yaml\ngrid: { "train..lr": [1] }\n', /cannot read the key path "train\.\.lr"/);
  ws.write('r.yaml', 'base: config.yaml\nrandom:\n  draws: 5\n  seed: 3\n  space:\n    train.optimizer.lr: { log_uniform: [0.0001, 0.01] }\n    train.layers[0].units: [16, 32]\n    seed: { int: [1, 3] }\n');
  const a = loadSweep(join(ws.dir, 'r.yaml'));
  assert.deepEqual(a, loadSweep(join(ws.dir, 'r.yaml')), 'the same seed draws the same variants');
  assert.equal(a.variants.length, 5);
  for (const v of a.variants) {
    const lr = v.overrides['train.optimizer.lr'] as number;
    assert.ok(lr >= 0.0001 && lr <= 0.01, String(lr));
    assert.ok([16, 32].includes(v.overrides['train.layers[0].units'] as number));
    assert.ok([1, 2, 3].includes(v.overrides.seed as number));
  }
});

test('a sweep put on another config (BASE=) runs the same variants there, under names of its own', () => {
  const own = loadSweep(join(REPO, 'configs', 'sweeps', 'seeds.yaml'));
  const moved = loadSweep(join(REPO, 'configs', 'sweeps', 'seeds.yaml'), join(REPO, 'configs', 'imdb-sample-use.yaml'));
  assert.equal(own.basePath, join(REPO, 'configs', 'default.yaml'));
  assert.equal(moved.basePath, join(REPO, 'configs', 'imdb-sample-use.yaml'));
  assert.equal(moved.name, 'seeds-imdb-sample-use');
  assert.deepEqual(moved.variants.map((v) => v.overrides), own.variants.map((v) => v.overrides));
  assert.deepEqual(moved.variants.map((v) => v.run), ['seeds-imdb-sample-use-01', 'seeds-imdb-sample-use-02', 'seeds-imdb-sample-use-03', 'seeds-imdb-sample-use-04']);
});

test('diff prints the params that differ and each metric with its change', () => {
  const result = runProgram(ws, 'scripts/diff', ['sweep-01', 'sweep-04']);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^train\.layers\[0\]\.units\s+16\s+48$/m);
  assert.match(result.stdout, /^train\.optimizer\.lr\s+0\.003\s+0\.0003$/m);
  assert.doesNotMatch(result.stdout, /^seed/m, 'equal params are left out');
  // Better or worse only when the paired 95% interval of the change excludes 0 (by the metric's
  // direction: up is better for accuracy, down for log loss); otherwise within noise.
  for (const [metric, higherIsBetter] of [['accuracy', true], ['log_loss', false]] as const) {
    const [, a, b, lo, hi, verdict] = new RegExp(`^test\\.${metric}\\s+(\\S+)\\s+(\\S+)\\s+\\S+\\s+(\\S+) to (\\S+)\\s+(better|worse|same|within noise)$`, 'm').exec(result.stdout) ?? [];
    assert.ok(verdict, result.stdout);
    const change = Number(b) - Number(a);
    const expected = Math.abs(change) < 5e-5 ? 'same' : Number(lo) <= 0 && Number(hi) >= 0 ? 'within noise' : change > 0 === higherIsBetter ? 'better' : 'worse';
    assert.equal(verdict, expected, `test.${metric}: ${a} -> ${b} (${lo} to ${hi})`);
  }
  assert.match(result.stdout, /^test: same rows, paired bootstrap \(1000 resamples\); McNemar on accuracy: \d+ rows only sweep-01 gets right, \d+ only sweep-04, p = [\d.e-]+$/m);
  const json = JSON.parse(runProgram(ws, 'scripts/diff', ['sweep-01', 'sweep-04', '--json']).stdout);
  const accuracy = json.metrics.find((m: { split: string; metric: string }) => m.split === 'test' && m.metric === 'accuracy');
  assert.ok(Math.abs(accuracy.change - (accuracy.b - accuracy.a)) < 1e-12);
  assert.ok(accuracy.interval[0] <= accuracy.change && accuracy.change <= accuracy.interval[1], JSON.stringify(accuracy));
  assert.equal(json.paired.test.same_rows, true);
  const missing = runProgram(ws, 'scripts/diff', ['sweep-01', 'nope']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no run named "nope"/);
});

test('diff: two seeds of one config differ within noise; a clearly better run is better; runs on other rows are not paired', () => {
  const build = (run: string, set: string[]) => {
    for (const stage of ['ingest', 'tokenize', 'embed', 'train', 'evaluate']) {
      const r = runProgram(ws, `stages/${stage}`, ['--set', `run=${run}`, ...set.flatMap((s) => ['--set', s])]);
      assert.equal(r.code, 0, `${run} ${stage}: ${r.stderr}`);
    }
  };
  build('seed-1', ['train.seed=1']);
  build('seed-2', ['train.seed=2']);
  build('weak', ['train.optimizer.lr=0.00001', 'train.epochs=1']);
  build('other-rows', ['seed=9', 'train.seed=1']);
  const verdicts = (a: string, b: string) => {
    const json = JSON.parse(runProgram(ws, 'scripts/diff', [a, b, '--json']).stdout) as DiffJson;
    return { json, test: Object.fromEntries(json.metrics.filter((m) => m.split === 'test').map((m) => [m.metric, m.verdict])) };
  };
  const seeds = verdicts('seed-1', 'seed-2');
  for (const metric of ['accuracy', 'macro_f1', 'log_loss']) assert.ok(['same', 'within noise'].includes(seeds.test[metric]!), `${metric}: ${seeds.test[metric]}`);
  const clearly = verdicts('weak', 'seed-1');
  assert.equal(clearly.test.accuracy, 'better', JSON.stringify(clearly.json.metrics.find((m) => m.split === 'test' && m.metric === 'accuracy')));
  assert.equal(clearly.test.log_loss, 'better');
  const other = verdicts('seed-1', 'other-rows');
  // Another top-level seed draws another validation split: those rows are not paired; the test rows still are.
  assert.equal(other.json.paired.validation?.same_rows, false);
  assert.match(other.json.paired.validation!.reason!, /different validation rows/);
  assert.match(other.json.metrics.find((m) => m.split === 'validation' && m.metric === 'accuracy')!.verdict, /^(better|worse|same) \(different rows\)$/);
  assert.equal(other.json.metrics.find((m) => m.split === 'validation' && m.metric === 'accuracy')!.interval, null);
  const text = runProgram(ws, 'scripts/diff', ['seed-1', 'other-rows']).stdout;
  assert.match(text, /^validation: not compared row by row: the runs scored different validation rows/m);
});

interface DiffJson {
  metrics: { split: string; metric: string; verdict: string; interval: [number, number] | null }[];
  paired: Record<string, { same_rows: boolean; reason?: string } | undefined>;
}

test('the gate passes on an unchanged rerun and fails when the baseline is raised above the run', () => {
  for (const stage of ['ingest', 'tokenize', 'embed', 'train', 'evaluate']) assert.equal(runProgram(ws, `stages/${stage}`).code, 0);
  const baseline = join(ws.dir, 'baselines', 'config.yaml');
  const update = runProgram(ws, 'scripts/gate', ['--update']);
  assert.equal(update.code, 0, update.stderr);
  assert.ok(existsSync(baseline));
  const pass = runProgram(ws, 'scripts/gate');
  assert.equal(pass.code, 0, pass.stderr);
  assert.match(pass.stdout, /^test\.accuracy\s+\d\.\d{4}\s+0\.0200\s+\d\.\d{4}\s+–\s+0\s+ok$/m);

  const raised = YAML.parse(readFileSync(baseline, 'utf8'));
  raised.metrics.accuracy.value += 0.05;
  raised.metrics.log_loss.value -= 0.2;
  writeFileSync(baseline, YAML.stringify(raised));
  const fail = runProgram(ws, 'scripts/gate');
  assert.equal(fail.code, 1);
  assert.match(fail.stdout, /^test\.accuracy .*REGRESSION$/m);
  assert.match(fail.stdout, /^test\.log_loss \(lower is better\) .*REGRESSION$/m);
  assert.match(fail.stdout, /^test\.macro_f1 .* ok$/m);
  assert.match(fail.stderr, /gate: 2 metric\(s\) regressed .*: accuracy, log_loss/);

  const unbuilt = runProgram(ws, 'scripts/gate', ['--set', 'train.epochs=5']);
  assert.equal(unbuilt.code, 1);
  assert.match(unbuilt.stderr, /has not been evaluated/);

  // "Not significantly worse": a baseline above the run but inside its 95% interval passes, one beyond it fails.
  const metrics = JSON.parse(readFileSync(join(ws.artifacts, 'runs', 'config', 'evaluate', 'metrics.json'), 'utf8'));
  const run = metrics.test.accuracy as number;
  const [, hi] = metrics.test.intervals.accuracy as [number, number];
  assert.ok(hi > run + 0.01, 'the test split is small enough for a wide interval');
  const gateWith = (value: number, rule?: string) => {
    writeFileSync(baseline, YAML.stringify({ split: 'test', metrics: { accuracy: { value, tolerance: 0, ...(rule ? { rule } : {}) } } }));
    return runProgram(ws, 'scripts/gate');
  };
  const inside = (run + hi) / 2;
  assert.equal(gateWith(inside).code, 1, 'by the tolerance rule, any drop beyond the tolerance fails');
  const noise = gateWith(inside, 'not_significantly_worse');
  assert.equal(noise.code, 0, noise.stderr);
  assert.match(noise.stdout, /^test\.accuracy .*\(significance\) .* to .* ok \(worse, within noise\)$/m);
  const beyond = gateWith(hi + 0.01, 'not_significantly_worse');
  assert.equal(beyond.code, 1);
  assert.match(beyond.stdout, /REGRESSION \(beyond noise\)$/m);
  writeFileSync(baseline, YAML.stringify({ split: 'test', metrics: { ece: { value: 0.1, tolerance: 0, rule: 'not_significantly_worse' } } }));
  assert.match(runProgram(ws, 'scripts/gate').stderr, /ece has no interval/);
});

test('the committed baseline of every config file parses, and every config has one', () => {
  for (const config of readdirSync(join(REPO, 'configs')).filter((f) => f.endsWith('.yaml'))) {
    const baseline = join(REPO, 'configs', 'baselines', config);
    if (config === 'imdb-bert-base.yaml') continue; // no figures can be measured without the pretrained weights
    assert.ok(existsSync(baseline), `configs/baselines/${config}`);
    // Read as the gate reads it: its schema, not a count of YAML keys.
    const parsed = readBaseline(baseline);
    assert.equal(parsed.split, 'test');
    assert.ok(Object.keys(parsed.metrics).length >= 3);
    for (const [metric, { value, tolerance }] of Object.entries(parsed.metrics)) assert.ok(value >= 0 && tolerance > 0, `${config}: ${metric}`);
  }
});

