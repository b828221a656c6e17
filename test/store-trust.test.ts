import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { appendFileSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync, writeSync, closeSync, truncateSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ArtifactStore } from '../pipeline/artifacts/store.js';
import { acquireLock } from '../pipeline/artifacts/lock.js';
import { takeLease } from '../pipeline/artifacts/lease.js';
import { runPointers } from '../pipeline/artifacts/runs.js';
import { REPO, kaggleLines, killEmbedAfterShards, programCopy, runProgram, workspace, type Workspace } from './helpers/workspace.js';

const MODEL = join(REPO, 'models', 'demo-bert-random');
const GENRES = ['western', 'horror', 'romance'];
const WORDS: Record<string, string[]> = { western: ['cowboy', 'sheriff', 'saloon'], horror: ['ghost', 'haunted', 'demon'], romance: ['love', 'wedding', 'kiss'] };
const rows = (n: number, offset: number) => Array.from({ length: n }, (_, i) => ({ id: i + 1, genre: GENRES[i % 3], text: `A ${WORDS[GENRES[i % 3]!]![i % 3]} and a ${WORDS[GENRES[i % 3]!]![(i + 1) % 3]} at night, number ${i + offset}.` }));
const STAGE_NAMES = ['ingest', 'tokenize', 'embed', 'train', 'evaluate', 'report'];

function trustWorkspace(extra = ''): Workspace {
  const ws = workspace(`seed: 4\ningest:\n  source: data\nmodel:\n  path: ${MODEL}\nembed:\n  providers: [cpu]\n  threads: 1\n  shard_rows: 32\ntrain:\n  epochs: 2\n  early_stopping: null\n  layers:\n    - units: 16\nreport:\n  gallery: 2\n  mistakes: 1\n${extra}`);
  ws.write('data/train_data.txt', kaggleLines(rows(120, 0)));
  ws.write('data/test_data_solution.txt', kaggleLines(rows(30, 500)));
  return ws;
}

function run(ws: Workspace, program: string, args: string[] = []) {
  const result = runProgram(ws, program, args);
  return { ...result, output: `${result.stdout}${result.stderr}` };
}

function buildAll(ws: Workspace, stages = STAGE_NAMES, args: string[] = []) {
  for (const stage of stages) {
    const result = run(ws, `stages/${stage}`, args);
    assert.equal(result.code, 0, `${stage}: ${result.stderr}`);
  }
}

const linkOf = (ws: Workspace, stage: string, runName = 'config') => join(ws.artifacts, 'runs', runName, stage);
const oneUserError = (output: string) => {
  assert.match(output, /^error: /m);
  assert.doesNotMatch(output, /internal error/);
};

test('editing the code a stage runs reruns that stage and nothing upstream; make status says which module changed', () => {
  const ws = trustWorkspace();
  const copy = programCopy(ws);
  const program = copy.run;
  for (const stage of STAGE_NAMES) assert.equal(program(`stages/${stage}`).code, 0);
  const before = runPointers(new ArtifactStore(ws.artifacts), 'config');

  // A comment is not code: nothing reruns.
  appendFileSync(join(copy.dist, 'pipeline', 'report', 'report.js'), '\n// Movie genre classifier (edited)\n');
  assert.equal(program('scripts/status', ['--check']).code, 0, program('scripts/status').output);
  // A change to what the report writes reruns the report and nothing else.
  const reportJs = join(copy.dist, 'pipeline', 'report', 'report.js');
  writeFileSync(reportJs, readFileSync(reportJs, 'utf8').replace("title: 'Movie genre classifier'", "title: 'Movie genre classifier (edited)'"));
  const status = program('scripts/status');
  assert.match(status.output, /report +[0-9a-f]{16} +would run\n +code changed: pipeline\/report\/report\.js/);
  assert.match(status.output, /evaluate +[0-9a-f]{16} +built/);
  for (const stage of STAGE_NAMES) {
    const result = program(`stages/${stage}`);
    assert.match(result.output, stage === 'report' ? /report: built/ : new RegExp(`${stage}: up to date`));
  }
  const after = runPointers(new ArtifactStore(ws.artifacts), 'config');
  for (const stage of STAGE_NAMES.slice(0, -1)) assert.equal(after[stage], before[stage], `${stage} keeps its key`);
  // The copy has no .git: provenance says so instead of guessing.
  const report = JSON.parse(readFileSync(join(ws.artifacts, 'report', after.report!, 'manifest.json'), 'utf8'));
  assert.equal(report.versions.git_commit, 'not a git checkout');
  assert.match(readFileSync(join(ws.artifacts, 'report', after.report!, 'report.html'), 'utf8'), /code: not a git checkout/);
  assert.notEqual(after.report, before.report);
  // A logging-only module is not part of any key: fixing a progress line re-embeds nothing.
  const logJs = join(copy.dist, 'pipeline', 'log.js');
  const logCode = readFileSync(logJs, 'utf8');
  assert.ok(logCode.includes('} ${unit}/s`'), 'the progress line is where this test edits it');
  writeFileSync(logJs, logCode.replace('} ${unit}/s`', '} ${unit} per second`'));
  assert.equal(program('scripts/status', ['--check']).code, 0);
});

test('--force (make FORCE=stage) rebuilds a published stage in place under the same key', () => {
  const ws = trustWorkspace();
  buildAll(ws, ['ingest', 'tokenize', 'embed', 'train']);
  const key = runPointers(new ArtifactStore(ws.artifacts), 'config').train;
  const forced = run(ws, 'stages/train', ['--force']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.match(forced.output, new RegExp(`train: built ${key}`));
  // Every manifest records the commit of the code that built it, and whether the tree was dirty.
  const manifest = JSON.parse(readFileSync(join(ws.artifacts, 'train', key!, 'manifest.json'), 'utf8'));
  assert.match(manifest.versions.git_commit, /^[0-9a-f]{40}$/);
  assert.match(manifest.versions.git_dirty, /^(no|yes \(uncommitted changes\))$/);
  assert.deepEqual(readdirSync(join(ws.artifacts, 'train')).filter((n) => n.startsWith('.')), [], 'no partial or replaced folder is left');
  // make FORCE= through the planner: those stages are rebuilt, the others reused.
  const forcedByMake = spawnSync('make', ['--no-print-directory', 'train', 'FORCE=train embed', `CONFIG=${ws.config}`, `ARTIFACTS=${ws.artifacts}`], { cwd: REPO, encoding: 'utf8', env: { ...process.env, PIPELINE_CACHE: ws.cache } });
  assert.equal(forcedByMake.status, 0, forcedByMake.stderr);
  const output = `${forcedByMake.stdout}${forcedByMake.stderr}`;
  assert.match(output, /embed: built/);
  assert.match(output, /train: built/);
  assert.doesNotMatch(output, /tokenize: built|ingest: built/);
});

test('a published artifact changed after publishing is refused where it is read, and make verify lists it', () => {
  const ws = trustWorkspace();
  buildAll(ws);
  const vectors = join(linkOf(ws, 'embed'), 'train.arrow');
  // Overwrite 4 KB in the middle, size unchanged.
  const fd = openSync(vectors, 'r+');
  writeSync(fd, Buffer.alloc(4096, 7), 0, 4096, Math.floor(statSync(vectors).size / 2));
  closeSync(fd);
  const train = run(ws, 'stages/train', ['--set', 'train.epochs=3']);
  assert.equal(train.code, 1);
  assert.match(train.output, /^error: .*\/embed\/[0-9a-f]{16}: train\.arrow does not match the sha256 in its manifest: the embed artifact changed after it was published, and nothing will read it\. Rebuild it with `make embed FORCE=embed`/m);
  oneUserError(train.output);
  assert.equal(existsSync(join(ws.artifacts, 'train', '.partial-')), false);

  const metrics = join(linkOf(ws, 'evaluate'), 'metrics.json');
  writeFileSync(metrics, readFileSync(metrics, 'utf8').replace(/"accuracy": [0-9.]+/, '"accuracy": 0.9999'));
  ws.write('baseline.yaml', 'split: test\nmetrics:\n  accuracy: { value: 0.1, tolerance: 0.5 }\n');
  const gate = run(ws, 'scripts/gate', ['--baseline', join(ws.dir, 'baseline.yaml')]);
  assert.equal(gate.code, 1, 'an edited metrics.json never passes the gate');
  assert.match(gate.output, /metrics\.json/);
  oneUserError(gate.output);

  const verify = run(ws, 'scripts/verify');
  assert.equal(verify.code, 1);
  assert.match(verify.output, /CHANGED .*\/embed\/[0-9a-f]{16}: train\.arrow does not match/);
  assert.match(verify.output, /CHANGED .*\/evaluate\/[0-9a-f]{16}: metrics\.json/);
  assert.match(verify.output, /2 changed after publishing/);

  truncateSync(vectors, 1000);
  const status = run(ws, 'scripts/status');
  assert.match(status.output, /embed +[0-9a-f]{16} +would run\n +published, but train\.arrow has 1000 bytes, the manifest says \d+: it changed after publishing; rebuild it with FORCE=embed/);
  const again = run(ws, 'stages/train', ['--set', 'train.epochs=3']);
  assert.equal(again.code, 1);
  assert.match(again.output, /train\.arrow has 1000 bytes/);
  oneUserError(again.output);
  const rebuilt = run(ws, 'stages/embed', ['--force']);
  assert.equal(rebuilt.code, 0, rebuilt.stderr);
  assert.equal(run(ws, 'stages/train', ['--set', 'train.epochs=3']).code, 0);
});

test('gc removes only unreferenced stage artifacts: sweeps, bench output and pending slices stay', () => {
  const ws = trustWorkspace();
  buildAll(ws, ['ingest', 'tokenize', 'embed']);
  const slice = run(ws, 'stages/embed', ['--shard', '0/2', '--set', 'embed.shard_rows=16']);
  assert.equal(slice.code, 0, slice.stderr);
  ws.write('artifacts/sweeps/mlp/leaderboard.md', '| run |\n');
  ws.write('artifacts/bench/train.json', '{}');
  ws.write('artifacts/notes/mine.txt', 'a user file');
  // A key of another config that no run points to any more.
  buildAll(ws, ['ingest'], ['--set', 'seed=9', '--set', 'run=other']);
  const otherKey = runPointers(new ArtifactStore(ws.artifacts), 'other').ingest!;
  assert.equal(run(ws, 'scripts/clean', ['--set', 'seed=9', '--set', 'run=other']).code, 0);

  const dry = run(ws, 'scripts/gc', ['--dry-run']);
  assert.match(dry.output, new RegExp(`would remove .*ingest/${otherKey}`));
  assert.doesNotMatch(dry.output, /embed-slice|sweeps|bench|notes/);
  const gc = run(ws, 'scripts/gc', ['--yes']);
  assert.equal(gc.code, 0, gc.stderr);
  assert.equal(existsSync(join(ws.artifacts, 'ingest', otherKey)), false);
  for (const kept of ['sweeps/mlp/leaderboard.md', 'bench/train.json', 'notes/mine.txt']) assert.ok(existsSync(join(ws.artifacts, kept)), kept);
  assert.equal(readdirSync(join(ws.artifacts, 'embed-slice')).length, 1, 'the slice waits for its merge');
  assert.ok(existsSync(linkOf(ws, 'embed')), 'what a run points to stays');
});

test('gc keeps what a running build holds a lease on, and a run is re-pointed as a whole, never mixed', async () => {
  const ws = trustWorkspace();
  buildAll(ws);
  const store = new ArtifactStore(ws.artifacts);
  const seed4 = runPointers(store, 'config');
  // A build of seed 4 still running (a live process holds the lease), while seed 7 re-points the run.
  const builder = spawn('sleep', ['30']);
  try {
    takeLease(store, Object.entries(seed4).map(([s, k]) => `${s}/${k}`), builder.pid!);
    buildAll(ws, ['ingest', 'tokenize'], ['--set', 'seed=7']);
    const seed7 = runPointers(store, 'config');
    assert.notEqual(seed7.ingest, seed4.ingest);
    // Seed 7 draws another validation split of the same texts: the vectors are seed 4's (early cutoff), the classifier is not.
    assert.deepEqual(Object.keys(seed7).sort(), ['embed', 'ingest', 'tokenize'], 'no train, evaluate or report of seed 4 beside seed 7\'s split');
    assert.equal(seed7.embed, seed4.embed);
    assert.match(readFileSync(join(ws.artifacts, 'runs', 'config', 'config.yaml'), 'utf8'), /^seed: 7$/m);
    assert.match(run(ws, 'scripts/status', ['--set', 'seed=7']).output, /train +[0-9a-f]{16} +would run/);
    // Forgetting seed 4's record leaves only the lease to keep its artifacts.
    run(ws, 'scripts/gc', ['--yes', '--keep', '1']);
    for (const [stage, key] of Object.entries(seed4)) assert.ok(existsSync(join(ws.artifacts, stage, key, 'manifest.json')), `${stage} of the running build is kept`);
  } finally {
    builder.kill();
    await once(builder, 'exit');
  }
  const gc = run(ws, 'scripts/gc', ['--yes']);
  assert.match(gc.output, /remove .*\.leases\//, 'the lease of a finished build is debris');
  assert.equal(existsSync(join(ws.artifacts, 'train', seed4.train!)), false, 'then unreferenced, it goes');
});

test('a lock whose pid now belongs to another process is taken over at once, and gc lists it', async () => {
  const ws = trustWorkspace();
  mkdirSync(join(ws.artifacts, 'embed'), { recursive: true });
  const path = join(ws.artifacts, 'embed', 'abcdef0123456789.lock');
  // pid 1 is alive on this machine (this boot), but it is not the process that took the lock (another start time).
  const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  writeFileSync(path, JSON.stringify({ pid: 1, host: hostname(), since: '2026-01-01T00:00:00Z', boot, process: `${boot}:12345` }));
  const dry = run(ws, 'scripts/gc', ['--dry-run']);
  assert.match(dry.output, /would remove .*embed\/abcdef0123456789\.lock/);
  // Taken over at once, not after the 60 s a lock of another machine is given (10 s leaves room for a busy CI machine).
  const lock = await Promise.race([acquireLock(path, 'embed abcdef0123456789'), new Promise<never>((_, reject) => setTimeout(() => reject(new Error('waited for a pid that is not the owner')), 10_000))]);
  lock.release();
});

test('an interrupted embed resumed with another shard_rows keeps the rows it finished and ends byte-identical', async () => {
  const ws = trustWorkspace('');
  buildAll(ws, ['ingest', 'tokenize']);
  await killEmbedAfterShards(ws, 2, ['--set', 'embed.shard_rows=16'], 5);
  const resumed = run(ws, 'stages/embed', ['--set', 'embed.shard_rows=40']);
  assert.equal(resumed.code, 0, resumed.stderr);
  // The cache is keyed by each row's ids, not by the shard that held it: another cut reuses them all.
  const counts = /embed: 150 rows: (\d+) computed, (\d+) from the vector cache/.exec(resumed.output);
  assert.ok(counts && Number(counts[2]) >= 32, resumed.output);
  const reference = trustWorkspace();
  buildAll(reference, ['ingest', 'tokenize', 'embed']);
  for (const file of ['train.arrow', 'test.arrow']) assert.ok(readFileSync(join(linkOf(ws, 'embed'), file)).equals(readFileSync(join(linkOf(reference, 'embed'), file))), file);
});
