import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { loadConfig } from '../pipeline/config/index.js';
import { selectBackend, tf } from '../pipeline/mlp/backend.js';
import { buildModel, loadModel, predictProbabilities, saveModel } from '../pipeline/mlp/model.js';
import { learningRate } from '../pipeline/train/train.js';
import { sha256 } from '../pipeline/hash.js';
import { REPO, kaggleLines, runProgram, workspace, type Workspace } from './helpers/workspace.js';

const MODEL = join(REPO, 'models', 'demo-bert-random');
const GENRES = ['western', 'horror', 'romance'];
const WORDS: Record<string, string[]> = { western: ['cowboy', 'sheriff', 'saloon'], horror: ['ghost', 'haunted', 'demon'], romance: ['love', 'wedding', 'kiss'] };

function pipelineWorkspace(train = 'train:\n  epochs: 6\n  early_stopping: null\n', withSolution = true): Workspace {
  const ws = workspace(`seed: 5\ningest:\n  source: data\nmodel:\n  path: ${MODEL}\nembed:\n  providers: [cpu]\n  threads: 1\n${train}`);
  const text = (g: string, i: number) => `A stranger in the city ${WORDS[g]![i % 3]} and ${WORDS[g]![(i + 1) % 3]} at night.`;
  const rows = (n: number, offset: number) => Array.from({ length: n }, (_, i) => ({ id: i + 1, genre: GENRES[i % 3], text: text(GENRES[i % 3]!, i + offset) }));
  ws.write('data/train_data.txt', kaggleLines(rows(150, 0)));
  if (withSolution) ws.write('data/test_data_solution.txt', kaggleLines(rows(30, 7)));
  else ws.write('data/test_data.txt', kaggleLines(rows(30, 7), false));
  return ws;
}

function run(ws: Workspace, stages: string[], args: string[] = []) {
  for (const stage of stages) {
    const result = runProgram(ws, `stages/${stage}`, args);
    assert.equal(result.code, 0, `${stage}: ${result.stderr}`);
  }
}

const STAGES = ['ingest', 'tokenize', 'embed', 'train', 'evaluate'];
const link = (ws: Workspace, stage: string, artifacts = ws.artifacts) => join(artifacts, 'runs', 'config', stage);

test('network config errors name the field', () => {
  const ws = workspace();
  for (const [yaml, message] of [
    ['train:\n  layers:\n    - units: 64\n      activation: wobbly\n', /train\.layers\[0\]\.activation: expected one of "relu", .*got "wobbly"/],
    ['train:\n  layers:\n    - units: 64\n    - units: 0\n', /train\.layers\[1\]\.units: expected number >0, got 0/],
    ['train:\n  layers:\n    - units: 64\n      dropout: 1.5\n', /train\.layers\[0\]\.dropout: expected number <=0\.95, got 1\.5/],
    ['train:\n  layers:\n    - units: big\n', /train\.layers\[0\]\.units: expected number, got "big"/],
    ['train:\n  optimizer:\n    name: adamw\n', /train\.optimizer\.name: expected one of "adam", "sgd", "rmsprop", got "adamw"/],
  ] as const) {
    ws.write('c.yaml', `ingest:\n  source: x\n${yaml}`);
    assert.throws(() => loadConfig(join(ws.dir, 'c.yaml')), message as RegExp);
  }
});

test('the defaults reproduce the reference network: 512 -> 256, ReLU, dropout 0.2, Adam 1e-3', () => {
  const ws = workspace('ingest:\n  source: x\n');
  const { train } = loadConfig(ws.config).config;
  assert.deepEqual(train.layers.map((l) => [l.units, l.activation, l.dropout]), [[512, 'relu', 0.2], [256, 'relu', 0.2]]);
  assert.deepEqual(train.optimizer, { name: 'adam', lr: 1e-3, momentum: 0.9 });
});

test('learning-rate schedules: constant, step, cosine', () => {
  const ws = workspace('ingest:\n  source: x\ntrain:\n  epochs: 11\n  optimizer:\n    lr: 0.1\n');
  const base = loadConfig(ws.config).config.train;
  assert.equal(learningRate(base, 7), 0.1);
  const step = { ...base, schedule: { ...base.schedule, name: 'step' as const, step_epochs: 5, gamma: 0.5 } };
  assert.deepEqual([1, 5, 6, 11].map((e) => learningRate(step, e)), [0.1, 0.1, 0.05, 0.025]);
  const cosine = { ...base, schedule: { ...base.schedule, name: 'cosine' as const, min_lr: 0 } };
  assert.ok(Math.abs(learningRate(cosine, 1) - 0.1) < 1e-12);
  assert.ok(Math.abs(learningRate(cosine, 6) - 0.05) < 1e-12);
  assert.ok(Math.abs(learningRate(cosine, 11)) < 1e-12);
});

test('a model saved and loaded predicts identically', async () => {
  await selectBackend('wasm');
  const ws = workspace('ingest:\n  source: x\ntrain:\n  layers:\n    - units: 16\n      batch_norm: true\n      l2: 0.001\n');
  const model = buildModel(8, 3, loadConfig(ws.config).config.train, 1);
  const x = Float32Array.from({ length: 40 }, (_, i) => Math.sin(i));
  const before = predictProbabilities(model, x, 8);
  await saveModel(model, join(ws.dir, 'model'));
  const loaded = await loadModel(join(ws.dir, 'model'));
  assert.deepEqual(Array.from(predictProbabilities(loaded, x, 8)), Array.from(before));
  tf.disposeVariables();
});

test('train and evaluate write a model, history, predictions DuckDB reads, and metrics', async () => {
  const ws = pipelineWorkspace();
  run(ws, STAGES);
  const train = JSON.parse(readFileSync(join(link(ws, 'train'), 'manifest.json'), 'utf8'));
  assert.equal(train.rows.epochs, 6);
  // auto trains through ONNX Runtime where it can (no batch norm here): the manifest says so.
  assert.equal(train.details.backend, 'onnxruntime');
  assert.match(train.versions.onnxruntime, /^1\.\d+/);
  const metrics = JSON.parse(readFileSync(join(link(ws, 'evaluate'), 'metrics.json'), 'utf8'));
  assert.equal(metrics.test.rows, 30);
  assert.deepEqual(metrics.test.labels, ['horror', 'romance', 'western']);
  assert.ok(metrics.test.accuracy > metrics.test.majority_baseline.accuracy + 0.3, `accuracy ${metrics.test.accuracy}`);
  assert.equal(metrics.test.reliability.length, 15);
  const db = await (await DuckDBInstance.create(':memory:')).connect();
  const rows = (await db.runAndReadAll(`select split, count(*) as n, sum(correct::int) as right from read_parquet('${join(link(ws, 'evaluate'), 'predictions.parquet')}') group by 1 order by 1`)).getRowObjects();
  assert.deepEqual(rows.map((r) => [r.split, Number(r.n)]), [['test', 30], ['validation', 15]]);
  const history = (await db.runAndReadAll(`select count(*) as n, max(epoch) as e from read_parquet('${join(link(ws, 'train'), 'history.parquet')}')`)).getRowObjects();
  assert.deepEqual([Number(history[0]!.n), Number(history[0]!.e)], [6, 6]);
});

test('the same seed gives the same weights and metrics twice', () => {
  const ws = pipelineWorkspace('train:\n  epochs: 3\n  class_weights: balanced\n  label_smoothing: 0.1\n');
  run(ws, STAGES);
  const other = join(ws.dir, 'second-store');
  run(ws, STAGES, ['--artifacts', other]);
  const hash = (artifacts: string, file: string) => sha256(readFileSync(join(link(ws, file.split('/')[0]!, artifacts), file.split('/').slice(1).join('/'))));
  assert.equal(hash(other, 'train/model/weights.bin'), hash(ws.artifacts, 'train/model/weights.bin'));
  assert.equal(hash(other, 'evaluate/metrics.json'), hash(ws.artifacts, 'evaluate/metrics.json'));
});

test('changing only train.* changes the keys of train and evaluate and nothing upstream', () => {
  const ws = pipelineWorkspace('train:\n  epochs: 2\n');
  run(ws, STAGES);
  const keys = (set: string[]) => Object.fromEntries(JSON.parse(runProgram(ws, 'scripts/status', ['--json', ...set.flatMap((s) => ['--set', s])]).stdout).stages.map((s: { stage: string; key: string }) => [s.stage, s.key]));
  const before = keys([]);
  const after = keys(['train.optimizer.lr=0.0003', 'train.layers[0].units=64']);
  for (const stage of ['ingest', 'tokenize', 'embed']) assert.equal(after[stage], before[stage], stage);
  assert.notEqual(after.train, before.train);
  // Evaluate reads what the new train writes: it cannot be keyed before that build.
  assert.equal(after.evaluate, null);
  assert.equal(keys(['train.backend=cpu', 'embed.threads=1', 'embed.batch_tokens=999']).embed, before.embed, 'speed settings are not part of any key');
});

test('a test file without genres yields predictions and a Kaggle submission, not metrics', () => {
  const ws = pipelineWorkspace('train:\n  epochs: 2\n', false);
  run(ws, STAGES);
  const submission = readFileSync(join(link(ws, 'evaluate'), 'submission.txt'), 'utf8').trim().split('\n');
  assert.equal(submission.length, 30);
  assert.match(submission[0]!, /^1 ::: (horror|romance|western)$/);
  const metrics = JSON.parse(readFileSync(join(link(ws, 'evaluate'), 'metrics.json'), 'utf8'));
  assert.deepEqual(Object.keys(metrics), ['train', 'validation'], 'train and validation are scored; the test split has no genres to score');
});

test('predictions.parquet holds every genre\'s probability (summing to 1, genre order in the file\'s metadata) and the description, read by DuckDB', async () => {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const ws = pipelineWorkspace();
  run(ws, STAGES);
  const file = join(link(ws, 'evaluate'), 'predictions.parquet');
  const db = await DuckDBInstance.create(':memory:');
  const connection = await db.connect();
  const rows = (await connection.runAndReadAll(`select top1_genre, probs, description, abs(list_sum(probs) - 1) as off from '${file}'`)).getRowObjects();
  assert.ok(rows.length > 0);
  const meta = (await connection.runAndReadAll(`select decode(value) as v from parquet_kv_metadata('${file}') where decode(key) = 'genres'`)).getRowObjects();
  const genres = JSON.parse(String(meta[0]!.v)) as string[];
  for (const row of rows) {
    assert.ok(Number(row.off) < 1e-5, `probabilities sum to 1 (off by ${row.off})`);
    const probs = (row.probs as unknown as { items: number[] }).items;
    assert.equal(probs.length, genres.length);
    assert.equal(genres[probs.indexOf(Math.max(...probs))], row.top1_genre, 'the largest probability is the top-1 genre');
    assert.ok(String(row.description).length > 10);
  }
});
