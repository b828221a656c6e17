import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { REPO, kaggleLines, make, runProgram, workspace, type Workspace } from './helpers/workspace.js';

// Immutable run records: every build leaves one; runs/<name> is an alias to the latest; gc keeps
// what any record keeps and asks first; make runs lists and filters them.
const MODEL = join(REPO, 'models', 'demo-bert-random');
const GENRES = ['western', 'horror', 'romance'];
const WORDS: Record<string, string[]> = { western: ['cowboy', 'sheriff', 'saloon'], horror: ['ghost', 'haunted', 'demon'], romance: ['love', 'wedding', 'kiss'] };
const rows = (n: number, offset: number) => Array.from({ length: n }, (_, i) => ({ id: i + 1, genre: GENRES[i % 3], text: `A stranger ${WORDS[GENRES[i % 3]!]![(i + offset) % 3]} at night, number ${i + offset}.` }));

let ws: Workspace;
before(() => {
  ws = workspace(`seed: 4\ningest:\n  source: data\nmodel:\n  path: ${MODEL}\nembed:\n  providers: [cpu]\n  threads: 1\ntrain:\n  epochs: 1\n  early_stopping: null\n  layers:\n    - units: 8\nreport:\n  gallery: 2\n  mistakes: 0\n`);
  ws.write('data/train_data.txt', kaggleLines(rows(90, 0)));
  ws.write('data/test_data_solution.txt', kaggleLines(rows(24, 7)));
});

const records = () => (existsSync(join(ws.artifacts, 'records')) ? readdirSync(join(ws.artifacts, 'records')).filter((n) => n.endsWith('.json')) : []);
const keys = (stage: string) => readdirSync(join(ws.artifacts, stage)).filter((d) => /^[0-9a-f]{16}$/.test(d));

test('two make all SET=... without run= leave two records; the alias moves, the first build stays listed, comparable and kept', async () => {
  const first = make(ws, ['all', 'SET=train.epochs=1']);
  assert.equal(first.code, 0, first.output);
  assert.deepEqual(readdirSync(join(ws.artifacts, '.leases')), [], 'no lease remains after a build');
  const second = make(ws, ['all', 'SET=train.epochs=2']);
  assert.equal(second.code, 0, second.output);
  assert.deepEqual(readdirSync(join(ws.artifacts, '.leases')), []);
  assert.equal(records().length, 2);
  const [oldId, newId] = records().sort().map((n) => n.slice(0, -5));
  assert.equal(records().length, 2);
  assert.match(second.output, new RegExp(`run config: now ${newId}; the build it replaced is kept as ${oldId}`));
  // The second build's report says how it moved against the first, in the page and the summary.
  const reportDir = join(ws.artifacts, 'runs', 'config', 'report');
  const firstRecord = JSON.parse(readFileSync(join(ws.artifacts, 'records', `${oldId}.json`), 'utf8'));
  const accuracy = (evaluate: string) => JSON.parse(readFileSync(join(ws.artifacts, 'evaluate', evaluate, 'metrics.json'), 'utf8')).test.accuracy as number;
  const change = accuracy(JSON.parse(readFileSync(join(ws.artifacts, 'records', `${newId}.json`), 'utf8')).keys.evaluate) - accuracy(firstRecord.keys.evaluate);
  const summary = readFileSync(join(reportDir, 'summary.md'), 'utf8');
  assert.match(summary, new RegExp(`\\*\\*Against the previous build\\*\\* \\(\`${oldId}\`.*: accuracy ${change >= 0 ? '\\+' : '-'}${Math.abs(change).toFixed(3)} `));
  assert.match(readFileSync(join(reportDir, 'report.html'), 'utf8'), /data-versus="previous">previous build /);
  // A gate baseline beside the config: the report is rebuilt to show the delta against it.
  ws.write('baselines/config.yaml', 'split: test\nmetrics:\n  accuracy: { value: 0.5, tolerance: 0.02 }\n');
  assert.match(make(ws, ['report', 'SET=train.epochs=2']).output, /report: built/);
  assert.match(readFileSync(join(reportDir, 'summary.md'), 'utf8'), /\*\*Against the gate baseline\*\* \(`config\.yaml`\): accuracy [+-]\d\.\d{3} \(baseline 0\.500, tolerance 0\.02\)/);
  assert.match(readFileSync(join(reportDir, 'report.html'), 'utf8'), /data-versus="gate"/);
  assert.equal(records().length, 3, 'a rebuilt report is a new record of the same config');

  // A build that changes nothing records nothing.
  assert.equal(make(ws, ['all', 'SET=train.epochs=2']).code, 0);
  assert.equal(records().length, 3);

  const latest = make(ws, ['runs']);
  assert.equal(latest.code, 0, latest.output);
  assert.equal(latest.stdout.trim().split('\n').length, 2, 'the latest record of the one run, under a header');
  const all = make(ws, ['runs', 'ALL=1']);
  assert.equal(all.code, 0, all.output);
  for (const id of [oldId!, newId!]) assert.match(all.stdout, new RegExp(`^config +${id.slice(-8)} `, 'm'));
  assert.match(all.stdout, /^run +id +built +config +train\.epochs/m);

  // diff takes a record id (or a unique part of it) as well as a run name.
  const diff = runProgram(ws, 'scripts/diff', [oldId!.slice(-8), 'config', '--json']);
  assert.equal(diff.code, 0, diff.stderr);
  assert.deepEqual(JSON.parse(diff.stdout).params, [{ key: 'train.epochs', a: 1, b: 2 }]);

  // gc asks first: without a terminal and without --yes it removes nothing, and says how to.
  const trainKeys = keys('train');
  assert.equal(trainKeys.length, 2);
  const yes = runProgram(ws, 'scripts/gc', ['--yes']);
  assert.equal(yes.code, 0, yes.stderr);
  assert.match(yes.stderr, /gc: nothing to remove/);
  assert.deepEqual(keys('train').sort(), trainKeys.sort(), 'both trained models are kept: each has a record');
  // Forgetting the older record (not the latest: the alias points at it) lets gc free its model.
  const latestId = records().sort().at(-1)!.slice(0, -5);
  assert.equal(runProgram(ws, 'scripts/runs', ['--remove', latestId]).code, 1);
  assert.equal(runProgram(ws, 'scripts/runs', ['--remove', oldId!]).code, 0);
  const dry = runProgram(ws, 'scripts/gc', ['--dry-run']);
  assert.match(dry.stderr, /would remove .*train\/[0-9a-f]{16}/);
  const unasked = runProgram(ws, 'scripts/gc');
  assert.equal(unasked.code, 1);
  assert.match(unasked.stderr, /gc: nothing removed: no terminal to ask on; `make gc YES=1`/);
  assert.equal(keys('train').length, 2, 'neither a dry run nor an unconfirmed gc removes anything');
  assert.equal(runProgram(ws, 'scripts/gc', ['--yes']).code, 0);
  assert.equal(keys('train').length, 1);
});

test('a build narrowed to an early stage is its own record, and make runs says what it lacks', () => {
  const narrowed = make(ws, ['tokenize', 'SET=seed=9']);
  assert.equal(narrowed.code, 0, narrowed.output);
  const runs = runProgram(ws, 'scripts/runs');
  assert.match(runs.stderr, /runs: config: not built: .*train, evaluate, report/);
});

test('make runs over runs of three configs fits in 160 columns with --only-changed, and DuckDB reads typed columns', async () => {
  ws.write('wide.yaml', `extends: config.yaml\nrun: wide\ntrain:\n  standardize: false\n  layers:\n    - units: 24\n`);
  ws.write('deep.yaml', `extends: config.yaml\nrun: deep\nreport:\n  reference_runs: [config, wide]\ntrain:\n  layers:\n    - units: 8\n    - units: 8\n`);
  for (const [config, set] of [['wide.yaml', 'train.seed=1'], ['wide.yaml', 'train.seed=2'], ['deep.yaml', 'train.seed=1'], ['deep.yaml', 'train.seed=3']]) {
    const built = runProgram(ws, 'scripts/run', ['--config', join(ws.dir, config!), '--set', set!]);
    assert.equal(built.code, 0, built.stderr);
  }
  const env = { COLUMNS: '160' };
  const wide = spawnRuns(['--all'], env);
  const narrow = spawnRuns(['--all', '--only-changed'], env);
  assert.equal(narrow.code, 0, narrow.stderr);
  for (const line of narrow.stdout.trimEnd().split('\n')) assert.ok(line.length <= 160, `${line.length} columns: ${line}`);
  assert.ok(wide.stdout.split('\n')[0]!.length <= 160, 'the full table drops setting columns to fit, and says which');
  assert.match(narrow.stdout, /^run +id +built +config +seed +train\.epochs +train\.seed/m, 'only what SET= varied within a config');
  assert.doesNotMatch(narrow.stdout, /train\.layers|reference_runs/, 'what differs only between configs is the config column');
  assert.doesNotMatch(wide.stdout, new RegExp(ws.dir), 'paths are relative');
  assert.match(wide.stdout + wide.stderr, /report\.reference_runs/, 'a list setting is one column, named once');
  assert.doesNotMatch(wide.stdout + wide.stderr, /reference_runs\[0\]/);

  const sorted = spawnRuns(['--all', '--sort', 'test.log_loss', '--filter', 'config=deep', '--columns', 'train.seed,test.'], env);
  assert.equal(sorted.code, 0, sorted.stderr);
  const body = sorted.stdout.trim().split('\n').slice(1);
  assert.equal(body.length, 2);
  assert.ok(body.every((l) => l.startsWith('deep ')));
  const losses = body.map((l) => Number(/(\d\.\d+)±\d\.\d+\s+\S+$/.exec(l)![1]));
  assert.ok(losses[0]! <= losses[1]!, 'lowest log loss first');

  const db = await (await DuckDBInstance.create(':memory:')).connect();
  const types = Object.fromEntries(
    (await db.runAndReadAll(`describe select * from '${join(ws.artifacts, 'runs.parquet')}'`)).getRowObjects().map((r) => [String(r.column_name), String(r.column_type)]),
  );
  assert.equal(types['train.seed'], 'BIGINT');
  assert.equal(types['train.epochs'], 'BIGINT');
  assert.equal(types['train.standardize'], 'BOOLEAN');
  assert.equal(types.evaluated_at, 'TIMESTAMP');
  assert.equal(types.built_at, 'TIMESTAMP');
  assert.equal(types['test.accuracy_low'], 'DOUBLE');
  assert.match(spawnRuns(['--sort', 'train.seed']).stderr, /--sort train\.seed: not a column/);
  const counted = (await db.runAndReadAll(`select count(*) as n, count(distinct id) as ids from '${join(ws.artifacts, 'runs.parquet')}' where evaluated_at > timestamp '2020-01-01'`)).getRowObjects()[0]!;
  assert.equal(Number(counted.n), Number(counted.ids));
});

function spawnRuns(args: string[], env: Record<string, string> = {}) {
  const saved = { ...process.env };
  Object.assign(process.env, env);
  try {
    return runProgram(ws, 'scripts/runs', args);
  } finally {
    for (const k of Object.keys(env)) if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
}
