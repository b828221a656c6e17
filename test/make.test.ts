import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { REPO, smallDataset, workspace } from './helpers/workspace.js';

function make(args: string[], env: Record<string, string>) {
  const started = performance.now();
  const result = spawnSync('make', ['--no-print-directory', ...args], { cwd: REPO, encoding: 'utf8', env: { ...process.env, ...env } });
  return { code: result.status, output: `${result.stdout}${result.stderr}`, seconds: (performance.now() - started) / 1000 };
}

test('a second `make all` with nothing changed does no stage work', () => {
  const ws = workspace(`ingest:\n  source: data\nmodel:\n  path: ${join(REPO, 'models', 'demo-bert-random')}\nembed:\n  providers: [cpu]\n`);
  const data = smallDataset(60);
  ws.write('data/train_data.txt', data.train);
  ws.write('data/test_data_solution.txt', data.solution);
  const vars = [`CONFIG=${ws.config}`, `ARTIFACTS=${ws.artifacts}`];
  const env = { PIPELINE_CACHE: ws.cache };
  const first = make(['all', ...vars], env);
  assert.equal(first.code, 0, first.output);
  assert.match(first.output, /ingest: built/);
  assert.match(first.output, /embed: built/);
  const second = make(['all', ...vars], env);
  assert.equal(second.code, 0, second.output);
  assert.match(second.output, /all stages up to date/);
  assert.doesNotMatch(second.output, /built|npm|tsc/);
  // Timing is reported, not asserted: CI machines are noisy (the floor is checked by `make bench`).
  process.stderr.write(`no-op make all: ${second.seconds.toFixed(2)}s\n`);
});

test('the console: providers said once at the normal level, why they were passed over with VERBOSE=1, nothing but the answer with QUIET=1', () => {
  const ws = workspace(`ingest:\n  source: data\nmodel:\n  path: ${join(REPO, 'models', 'demo-bert-random')}\nembed:\n  providers: [cuda, cpu]\n  threads: 1\ntrain:\n  epochs: 1\n`);
  const data = smallDataset(60);
  ws.write('data/train_data.txt', data.train);
  ws.write('data/test_data_solution.txt', data.solution);
  const vars = [`CONFIG=${ws.config}`, `ARTIFACTS=${ws.artifacts}`];
  const env = { PIPELINE_CACHE: ws.cache };
  const normal = make(['all', ...vars], env);
  assert.equal(normal.code, 0, normal.output);
  if (/ on cuda/.test(normal.output)) return; // a machine with the CUDA provider installed runs it: nothing passed over to check
  assert.equal(normal.output.match(/ONNX Runtime [\d.]+ on cpu with 1 threads \(cuda unavailable here; --verbose says why\)/g)?.length, 1);
  assert.doesNotMatch(normal.output, /cuda provider files are not installed|TensorFlow\.js [\d.]+ on the|feeding input_ids/);
  // Stores of their own: a forced embed in the same store reads every row from its vector cache and opens no session.
  const verbose = make(['all', `CONFIG=${ws.config}`, `ARTIFACTS=${ws.artifacts}-verbose`, 'VERBOSE=1'], env);
  assert.equal(verbose.code, 0, verbose.output);
  assert.match(verbose.output, /embed: cuda provider files are not installed .*ORT_INSTALL=cuda12/);
  assert.match(verbose.output, /train: TensorFlow\.js [\d.]+ on the \w+ backend/);
  const quiet = make(['all', `CONFIG=${ws.config}`, `ARTIFACTS=${ws.artifacts}-quiet`, 'QUIET=1'], env);
  assert.equal(quiet.code, 0, quiet.output);
  assert.doesNotMatch(quiet.output, /^(ingest|tokenize|embed|train|evaluate|report)[: ]/m, quiet.output);
  const answer = make(['predict', ...vars, 'QUIET=1', 'TEXT=A ghost story'], env);
  assert.equal(answer.code, 0, answer.output);
  assert.deepEqual(answer.output.trimEnd().split('\n').filter(Boolean).map((l) => /^\s+\S+\s+[█░]+\s+[\d.]+%$/.test(l)), [true, true, true], answer.output);
});

test('`make ingest SET=...` applies overrides and a config error stops make with the field named', () => {
  const ws = workspace('ingest:\n  source: data\n');
  const data = smallDataset(60);
  ws.write('data/train_data.txt', data.train);
  const vars = [`CONFIG=${ws.config}`, `ARTIFACTS=${ws.artifacts}`];
  const ok = make(['ingest', ...vars, 'SET=seed=3 ingest.validation_fraction=0.2'], { PIPELINE_CACHE: ws.cache });
  assert.equal(ok.code, 0, ok.output);
  assert.match(ok.output, /ingest: built/);
  // The overrides took effect: in the artifact's params, and in its rows (20% of 60 held out).
  const manifest = JSON.parse(readFileSync(join(ws.artifacts, 'runs', 'config', 'ingest', 'manifest.json'), 'utf8'));
  assert.equal(manifest.params.seed, 3);
  assert.equal(manifest.params.ingest.validation_fraction, 0.2);
  assert.equal(manifest.rows.validation, 12);
  const bad = make(['ingest', ...vars, 'SET=ingest.validation_fraction=lots'], { PIPELINE_CACHE: ws.cache });
  assert.notEqual(bad.code, 0);
  assert.match(bad.output, /ingest\.validation_fraction: expected number, got "lots"/);
});

test('a config error is printed once, and make blames the config check, not the ingest stage', () => {
  const ws = workspace(`ingest:\n  source: data\nmodel:\n  path: ${join(REPO, 'models', 'demo-bert-random')}\n`);
  ws.write('data/train_data.txt', smallDataset(60).train);
  const vars = [`CONFIG=${ws.config}`, `ARTIFACTS=${ws.artifacts}`, 'SET=train.layers[0].units=-5'];
  for (const target of ['train', 'all']) {
    const result = make([target, ...vars], { PIPELINE_CACHE: ws.cache });
    assert.notEqual(result.code, 0);
    assert.equal(result.output.match(/train\.layers\[0\]\.units: expected number >0, got -5/g)?.length, 1, result.output);
    assert.doesNotMatch(result.output, /\] Error \d+[\s\S]*\[Makefile:\d+: ingest\]|\[Makefile:\d+: ingest\] Error/);
  }
});
