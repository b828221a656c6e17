import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { REPO, kaggleLines, make, programCopy, runProgram, workspace, type Workspace } from './helpers/workspace.js';
import { sha256 } from '../pipeline/hash.js';
import { readTokens } from '../pipeline/arrow/index.js';
import { getPath, loadConfig } from '../pipeline/config/index.js';
import { STAGES, stage, type PipelineStage } from '../pipeline/dag.js';
import { signature, type StageRun } from '../pipeline/stage-types.js';
import { contract, type View } from '../pipeline/artifacts/contract.js';
import { CLASSIFIER, openClassifier, type Classifier } from '../pipeline/train/artifact.js';
import { readPredictions } from '../pipeline/evaluate/artifact.js';
import { runStage } from '../pipeline/runner.js';
import { ArtifactStore } from '../pipeline/artifacts/store.js';
import { runPointers } from '../pipeline/artifacts/runs.js';
import { findRun, predictDescriptions } from '../pipeline/predict/index.js';
import { flatten } from '../pipeline/compare/index.js';

const MODEL = join(REPO, 'models', 'demo-bert-random');
const GENRES = ['western', 'horror', 'romance'];
const WORDS: Record<string, string[]> = { western: ['cowboy', 'sheriff', 'saloon', 'outlaw'], horror: ['ghost', 'haunted', 'demon', 'curse'], romance: ['love', 'wedding', 'kiss', 'heart'] };
const plot = (genre: string, i: number) => `A ${WORDS[genre]![i % 4]} and a ${WORDS[genre]![(i + 1) % 4]} in the city, ${WORDS[genre]![(i >> 2) % 4]} at night ${'again '.repeat(i % 7)}`.trim() + '.';
const rows = (n: number, offset: number) => Array.from({ length: n }, (_, i) => ({ id: i + 1 + offset, genre: GENRES[i % 3], text: plot(GENRES[i % 3]!, i + offset) }));

function signatureWorkspace(extra = ''): Workspace {
  const ws = workspace(`seed: 4\ningest:\n  source: data\nmodel:\n  path: ${MODEL}\nembed:\n  providers: [cpu]\n  threads: 1\n  shard_rows: 32\ntrain:\n  epochs: 2\n  early_stopping: null\n  layers:\n    - units: 16\nreport:\n  gallery: 2\n  mistakes: 1\n${extra}`);
  ws.write('data/train_data.txt', kaggleLines(rows(120, 0)));
  ws.write('data/test_data_solution.txt', kaggleLines(rows(30, 500)));
  return ws;
}

const published = (ws: Workspace, stage: string) => (existsSync(join(ws.artifacts, stage)) ? readdirSync(join(ws.artifacts, stage)).filter((n) => /^[0-9a-f]{16}$/.test(n)) : []);
const fileHash = (path: string) => sha256(readFileSync(path));

test('a new seed and validation fraction rebuild ingest, train, evaluate and report; tokenize and embed stay up to date and no model is opened', () => {
  const ws = signatureWorkspace();
  const first = make(ws, ['all']);
  assert.equal(first.code, 0, first.output);
  assert.match(first.output, /embed: ONNX Runtime [\d.]+ on cpu/, 'the first build opens the model');
  const again = make(ws, ['all', 'SET=seed=7 ingest.validation_fraction=0.2 run=s7']);
  assert.equal(again.code, 0, again.output);
  for (const built of ['ingest', 'train', 'evaluate', 'report']) assert.match(again.output, new RegExp(`${built}: built`), built);
  assert.doesNotMatch(again.output, /tokenize: built|embed: built/);
  // No encoder session: the embed program did not even start (train runs its steps on ONNX Runtime).
  assert.doesNotMatch(again.output, /embed:/);
  assert.match(again.output, /train: ONNX Runtime/);
  assert.equal(published(ws, 'tokenize').length, 1);
  assert.equal(published(ws, 'embed').length, 1);
  const store = new ArtifactStore(ws.artifacts);
  const [s7, original] = [runPointers(store, 's7'), runPointers(store, 'config')];
  assert.equal(s7.embed, original.embed, 'run s7 points at the same vectors');
  assert.notEqual(s7.ingest, original.ingest);
  const manifest = JSON.parse(readFileSync(join(ws.artifacts, 'runs', 's7', 'ingest', 'manifest.json'), 'utf8'));
  assert.equal(manifest.rows.validation, 24, '20% of 120 rows held out');
});

test('a data set grown by 5% embeds exactly its new rows, and the artifact equals a build from scratch byte for byte', () => {
  const ws = workspace(`ingest:\n  source: grown\nmodel:\n  path: ${MODEL}\nembed:\n  providers: [cpu]\n  threads: 1\n`);
  const generate = (out: string, seed: number) => spawnSync(process.execPath, [join(REPO, 'dist', 'scripts', 'dev', 'generate-demo-data.js'), '--out', join(ws.dir, out), '--seed', String(seed)], { encoding: 'utf8' });
  assert.equal(generate('grown', 7).status, 0);
  assert.equal(generate('extra', 8).status, 0);
  for (const stage of ['ingest', 'tokenize', 'embed']) assert.equal(runProgram(ws, `stages/${stage}`).code, 0, stage);
  const before = readTokenKeys(join(ws.artifacts, 'runs', 'config', 'tokenize'));

  // 5% more training rows, from the other generated set, under new ids (as a republished data set would have).
  const train = readFileSync(join(ws.dir, 'grown', 'train_data.txt'), 'utf8').split('\n').filter(Boolean);
  const extra = readFileSync(join(ws.dir, 'extra', 'train_data.txt'), 'utf8').split('\n').filter((l) => l.split(' ::: ').length === 4).slice(0, Math.round(train.length * 0.05));
  const added = extra.map((line, i) => [`${900000 + i}`, ...line.split(' ::: ').slice(1)].join(' ::: '));
  ws.write('grown/train_data.txt', `${[...train, ...added].join('\n')}\n`);
  for (const stage of ['ingest', 'tokenize']) assert.equal(runProgram(ws, `stages/${stage}`).code, 0, stage);
  const grown = runProgram(ws, 'stages/embed');
  assert.equal(grown.code, 0, grown.stderr);
  // What the model had to run: the token sequences the first build never saw (counted here from the tokens).
  const after = readTokenKeys(join(ws.artifacts, 'runs', 'config', 'tokenize'));
  const fresh = new Set(after.filter((key) => !before.includes(key)));
  assert.ok(fresh.size > 100, `${fresh.size} new plots`);
  const manifest = JSON.parse(readFileSync(join(ws.artifacts, 'runs', 'config', 'embed', 'manifest.json'), 'utf8'));
  assert.equal(manifest.details.rows_computed, fresh.size);
  assert.equal(manifest.details.rows_from_cache, after.filter((key) => before.includes(key)).length);
  assert.match(grown.stderr, new RegExp(`embed: ${after.length.toLocaleString('en-US')} rows: ${fresh.size} computed, ${manifest.details.rows_from_cache.toLocaleString('en-US')} from the vector cache`));

  // The same grown data in a store of its own, with an empty cache: the same bytes.
  const scratch = join(ws.dir, 'scratch');
  for (const stage of ['ingest', 'tokenize', 'embed']) assert.equal(runProgram(ws, `stages/${stage}`, ['--artifacts', scratch]).code, 0, stage);
  const scratchManifest = JSON.parse(readFileSync(join(scratch, 'runs', 'config', 'embed', 'manifest.json'), 'utf8'));
  assert.equal(scratchManifest.details.rows_from_cache, 0);
  for (const file of ['train.arrow', 'test.arrow']) assert.equal(fileHash(join(ws.artifacts, 'runs', 'config', 'embed', file)), fileHash(join(scratch, 'runs', 'config', 'embed', file)), file);
});

/** Each row's token ids, as a string, in both files. */
function readTokenKeys(dir: string): string[] {
  return ['train', 'test'].flatMap((file) => {
    const tokens = readTokens(join(dir, `${file}.arrow`));
    return Array.from({ length: tokens.offsets.length - 1 }, (_, row) => tokens.ids.subarray(tokens.offsets[row]!, tokens.offsets[row + 1]!).join(','));
  });
}

/** One override per speed-only setting, each a valid value other than the default. */
const SPEED_ONLY = [
  'tokenize.workers=1',
  'embed.providers=[webgpu,cpu]',
  'embed.threads=2',
  'embed.batch_tokens=1024',
  'embed.shard_rows=64',
  'embed.webgpu.storage_buffer_cache_mode=simple',
  'embed.webgpu.validation_mode=disabled',
  'train.backend=cpu',
  'ingest.download.retries=5',
  'ingest.download.timeout_s=30',
  'ingest.download.max_bytes=1000000',
  'ingest.download.kaggle_api=http://127.0.0.1:9/api',
];

/** A list setting is one setting, not one per item. */
const setting = (path: string) => path.replace(/\[\d+\]$/, '');

test('every speed-only setting is one of the overrides below, and none of them makes anything rerun', () => {
  const ws = signatureWorkspace();
  assert.equal(make(ws, ['all']).code, 0);
  // Which settings each override touches, from the signatures themselves.
  const settingsOf = (overrides: string[]) => {
    const { config } = loadConfig(ws.config, overrides);
    return Object.fromEntries(STAGES.map((s) => [s.name, flatten(s.settings(config))]));
  };
  const base = settingsOf([]);
  const touched = new Set<string>();
  for (const override of SPEED_ONLY) {
    const changed = Object.entries(settingsOf([override])).flatMap(([stage, values]) => [...new Set([...Object.keys(values), ...Object.keys(base[stage]!)])].filter((k) => JSON.stringify(values[k]) !== JSON.stringify(base[stage]![k])).map((k) => `${stage}:${setting(k)}`));
    assert.ok(changed.length, `${override} changes a setting`);
    changed.forEach((c) => touched.add(c));
    const status = runProgram(ws, 'scripts/status', ['--check', '--set', override]);
    assert.equal(status.code, 0, `${override}: ${runProgram(ws, 'scripts/status', ['--set', override]).stdout}`);
  }
  const every = new Set(Object.entries(base).flatMap(([stage, values]) => Object.keys(values).map((k) => `${stage}:${setting(k)}`)));
  assert.deepEqual([...touched].sort(), [...every].sort(), 'every setting of every stage is covered');
  const all = make(ws, ['all', `SET=${SPEED_ONLY.filter((o) => !o.startsWith('embed.webgpu')).join(' ')}`]);
  assert.equal(all.code, 0, all.output);
  assert.match(all.output, /all stages up to date/);
});

test('the report prints what made its results as the run config has it, and the settings as how each stage ran', () => {
  const ws = signatureWorkspace();
  assert.equal(make(ws, ['all']).code, 0);
  const rerun = make(ws, ['all', 'SET=embed.threads=2 train.backend=cpu']);
  assert.match(rerun.output, /all stages up to date/);
  const runConfig = YAML.parse(readFileSync(join(ws.artifacts, 'runs', 'config', 'config.yaml'), 'utf8'));
  assert.equal(runConfig.embed.threads, 2, 'the run records the settings it was asked for');
  const html = readFileSync(join(ws.artifacts, 'runs', 'config', 'report', 'report.html'), 'utf8');
  const section = (name: string) => YAML.parse(unescape(new RegExp(`data-section="${name}"><pre>([\\s\\S]*?)</pre>`).exec(html)![1]!));
  const madeBy = section('made-by') as Record<string, unknown>;
  assert.deepEqual(Object.keys(madeBy), ['ingest', 'tokenize', 'embed', 'train', 'evaluate', 'report']);
  let leaves = 0;
  for (const [stage, params] of Object.entries(madeBy)) {
    for (const [path, value] of Object.entries(flatten(params))) {
      leaves++;
      assert.deepEqual(getPath(runConfig, path.split(/\.|\[|\]/).filter(Boolean).map((p) => (/^\d+$/.test(p) ? Number(p) : p))), value, `${stage}: ${path}`);
    }
  }
  assert.ok(leaves > 30);
  for (const speed of ['threads', 'backend', 'providers', 'workers', 'batch_tokens']) assert.doesNotMatch(JSON.stringify(madeBy), new RegExp(`"${speed}"`), `${speed} is not shown as if it made a result`);
  // How it ran is what the artifacts recorded: embed ran with the 1 thread the config then asked for.
  const ranWith = section('ran-with') as Record<string, Record<string, unknown>>;
  assert.equal(ranWith.embed!.threads, 1);
  assert.equal(ranWith.train!.backend, 'auto');
});

const unescape = (html: string) => html.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&amp;/g, '&');

test('comments and blank lines in any module change no key; a real change to metrics/index.js reruns evaluate and report, not train', () => {
  const ws = signatureWorkspace();
  assert.equal(make(ws, ['all']).code, 0);
  const copy = programCopy(ws);
  const modules: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir, { withFileTypes: true })) {
      if (name.isDirectory()) walk(join(dir, name.name));
      else if (name.name.endsWith('.js')) modules.push(join(dir, name.name));
    }
  };
  walk(join(copy.dist, 'pipeline'));
  assert.ok(modules.length > 60);
  for (const module of modules) {
    const code = readFileSync(module, 'utf8');
    // A comment before the module, blank lines and a comment before each top-level function, one after it.
    writeFileSync(module, `/* Edited by a test: comments only. */\n\n${code.replace(/^export (async )?function /gm, (m) => `\n// what this does, in words\n${m}`)}\n// the end\n`);
  }
  const status = copy.run('scripts/status');
  assert.equal(copy.run('scripts/status', ['--check']).code, 0, status.output);

  const metrics = join(copy.dist, 'pipeline', 'metrics', 'index.js');
  const code = readFileSync(metrics, 'utf8');
  const ece = 'Math.abs(bin.accuracy - bin.confidence)';
  assert.ok(code.includes(ece), 'the calibration error is where this test edits it');
  // The calibration error counted in percent: evaluate writes other numbers, train never calls it.
  writeFileSync(metrics, code.replace(ece, `100 * ${ece}`));
  const after = copy.run('scripts/status').output;
  assert.match(after, /train +[0-9a-f]{16} +built/);
  assert.match(after, /evaluate +[0-9a-f]{16} +would run\n +code changed: pipeline\/metrics\/index\.js/);
  assert.match(after, /report +\(not keyed\) +waits/);
  for (const stage of ['ingest', 'tokenize', 'embed', 'train', 'evaluate', 'report']) {
    const result = copy.run(`stages/${stage}`);
    assert.equal(result.code, 0, result.output);
    assert.match(result.output, new RegExp(['evaluate', 'report'].includes(stage) ? `${stage}: built` : `${stage}: up to date`));
  }
});

test('a TF-IDF embed reads ingest only: tokenize.max_length and an edit of bert.js leave it up to date, and tokenize is not built', () => {
  const ws = signatureWorkspace('');
  ws.write('config.yaml', `${readFileSync(ws.config, 'utf8')}`.replace('embed:\n', 'embed:\n  method: tfidf\n  tfidf:\n    min_df: 1\n').replace(/model:\n  path: .*\n/, ''));
  const built = make(ws, ['all']);
  assert.equal(built.code, 0, built.output);
  assert.doesNotMatch(built.output, /tokenize: built/);
  assert.equal(published(ws, 'tokenize').length, 0, 'no model needed, nothing tokenized');
  assert.match(runProgram(ws, 'scripts/status').stdout, /tokenize +not used by this config/);
  assert.equal(runProgram(ws, 'scripts/status', ['--check', '--set', 'tokenize.max_length=64']).code, 0);
  const copy = programCopy(ws);
  const bert = join(copy.dist, 'pipeline', 'embed', 'bert.js');
  appendFileSync(bert, '\nexport const changed = () => 42;\n');
  writeFileSync(bert, readFileSync(bert, 'utf8').replace('embed: warning', 'embed: WARNING'));
  assert.equal(copy.run('scripts/status', ['--check']).code, 0, copy.run('scripts/status').output);
  // The report of a TF-IDF run shows no token lengths: it read none.
  assert.doesNotMatch(readFileSync(join(ws.artifacts, 'runs', 'config', 'report', 'report.html'), 'utf8'), /data-chart="token-lengths"/);
});

/**
 * A stage inserted between train and evaluate, as a user might add calibration: it offers a
 * classifier (train's, with its probabilities flattened by a temperature), so evaluate and
 * predict read it instead of train's.
 */
const TEMPERATURE = 3;
const soften = (probs: Float32Array, labels: number) => {
  const out = new Float32Array(probs.length);
  for (let row = 0; row < probs.length / labels; row++) {
    let sum = 0;
    for (let j = 0; j < labels; j++) sum += (out[row * labels + j] = Math.pow(probs[row * labels + j]!, 1 / TEMPERATURE));
    for (let j = 0; j < labels; j++) out[row * labels + j]! /= sum;
  }
  return out;
};
export const temperedClassifier: View<Classifier> = {
  port: CLASSIFIER,
  files: ['model/', 'standardize.json', 'genres.json'],
  open: (dir) => {
    const inner = openClassifier(dir);
    return { ...inner, predict: async (vectors, dim) => soften(await inner.predict(vectors, dim), inner.genres.length) };
  },
};
export async function temper(run: StageRun<{ temperature: number }, Record<string, never>, { classifier: Classifier }>) {
  run.inputs.classifier.save(run.dir);
  writeFileSync(join(run.dir, 'temperature.json'), JSON.stringify(run.params));
  return { rows: {} };
}
const TEMPER: PipelineStage = stage(
  signature({ name: 'temper', version: 1, output: contract('temper', import.meta.url, { temperedClassifier }), reads: () => ({ classifier: CLASSIFIER }), params: () => ({ temperature: TEMPERATURE }), code: ['test/signatures.test.js#temper'] }),
  async () => temper,
);

test('a stage inserted between train and evaluate is what evaluate and predict read their classifier from', async () => {
  const ws = signatureWorkspace();
  const stages = [...STAGES.slice(0, 4), TEMPER, ...STAGES.slice(4, 5)];
  const args = { config: ws.config, set: [], artifacts: ws.artifacts };
  process.env.PIPELINE_CACHE = ws.cache;
  for (const s of stages) await runStage(s.name, args, { stages });
  const store = new ArtifactStore(ws.artifacts);
  const keys = runPointers(store, 'config');
  assert.ok(keys.temper, 'the run links the inserted stage');
  const evaluateManifest = store.readManifest('evaluate', keys.evaluate!)!;
  assert.equal(evaluateManifest.reads!.classifier!.stage, 'temper');
  // Predict's probabilities for the test plots equal evaluate's, both through the tempered classifier.
  const predictions = (await readPredictions(store.keyDir('evaluate', keys.evaluate!), 'test')).slice(0, 8);
  const run = await findRun(store, loadConfig(ws.config), undefined, stages);
  assert.equal(run.classifier.stage, 'temper');
  const { predictions: predicted } = await predictDescriptions(run, { ids: predictions.map((p) => p.id), titles: predictions.map(() => null), texts: predictions.map((p) => p.description) }, 3, store);
  predicted.forEach((p, i) => {
    assert.equal(p.top[0]!.genre, predictions[i]!.top1_genre);
    assert.ok(Math.abs(p.top[0]!.probability - (predictions[i]!.top1_prob as number)) < 1e-6);
  });
  // And both differ from train's own classifier: the temperature flattened them.
  const raw = await openClassifier(store.keyDir('train', keys.train!)).predict(new Float32Array(128), 128);
  const tempered = await (await temperedClassifier.open(store.keyDir('temper', keys.temper!), store.readManifest('temper', keys.temper!)!)).predict(new Float32Array(128), 128);
  assert.ok(Math.max(...tempered) < Math.max(...raw));
});

test('make verify checks the vector cache, embed replaces a damaged segment, and make gc drops the encoders no kept artifact uses', () => {
  const ws = signatureWorkspace();
  for (const s of ['ingest', 'tokenize', 'embed']) assert.equal(runProgram(ws, `stages/${s}`).code, 0);
  const cacheRoot = join(ws.artifacts, '.cache', 'vectors');
  const [encoder] = readdirSync(cacheRoot);
  const segment = readdirSync(join(cacheRoot, encoder!)).find((f) => f.endsWith('.f32'))!;
  assert.equal(runProgram(ws, 'scripts/verify').code, 0);
  // One float changed in place, size unchanged.
  const path = join(cacheRoot, encoder!, segment);
  const bytes = readFileSync(path);
  bytes.writeFloatLE(bytes.readFloatLE(0) + 1, 0);
  writeFileSync(path, bytes);
  const verify = runProgram(ws, 'scripts/verify');
  assert.equal(verify.code, 1);
  assert.match(verify.stderr, /CHANGED .*do not match their checksum/);
  // A rebuild reads the cache: the damaged segment is removed and its rows are computed again, the same as before.
  const before = fileHash(join(ws.artifacts, 'runs', 'config', 'embed', 'train.arrow'));
  const rebuilt = runProgram(ws, 'stages/embed', ['--force']);
  assert.equal(rebuilt.code, 0, rebuilt.stderr);
  assert.match(rebuilt.stderr, /does not match its checksum .* removed, its rows are computed again/);
  assert.equal(fileHash(join(ws.artifacts, 'runs', 'config', 'embed', 'train.arrow')), before);
  assert.equal(runProgram(ws, 'scripts/verify').code, 0);
  // Kept while an embed artifact made with it is kept; dropped with the last one.
  assert.equal(runProgram(ws, 'scripts/gc', ['--yes']).code, 0);
  assert.ok(existsSync(join(cacheRoot, encoder!)));
  assert.equal(runProgram(ws, 'scripts/clean').code, 0);
  const gc = runProgram(ws, 'scripts/gc', ['--yes']);
  assert.match(gc.stderr, new RegExp(`remove .*\\.cache/vectors/${encoder}`));
  assert.equal(existsSync(join(cacheRoot, encoder!)), false);
});
