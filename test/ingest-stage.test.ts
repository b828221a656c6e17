import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { existsSync, lstatSync, readdirSync, readFileSync, renameSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { once } from 'node:events';
import { DuckDBInstance } from '@duckdb/node-api';
import { sha256 } from '../pipeline/hash.js';
import { kaggleLines, runProgram, smallDataset, startProgram, workspace, type Workspace } from './helpers/workspace.js';
import { makeTar, makeZip } from './helpers/archives.js';
import { ArtifactStore } from '../pipeline/artifacts/store.js';
import { runPointers } from '../pipeline/artifacts/runs.js';

const published = (ws: Workspace, stage = 'ingest') =>
  existsSync(join(ws.artifacts, stage)) ? readdirSync(join(ws.artifacts, stage)).filter((n) => existsSync(join(ws.artifacts, stage, n, 'manifest.json'))) : [];

function manifestOf(ws: Workspace) {
  return JSON.parse(readFileSync(join(ws.artifacts, 'runs', 'config', 'ingest', 'manifest.json'), 'utf8'));
}

function folderWorkspace(extraConfig = '') {
  const ws = workspace(`seed: 1\ningest:\n  source: data\n${extraConfig}`);
  const data = smallDataset(60);
  ws.write('data/train_data.txt', data.train);
  ws.write('data/test_data.txt', data.test);
  ws.write('data/test_data_solution.txt', data.solution);
  return ws;
}

async function duckCount(path: string): Promise<number> {
  const db = await DuckDBInstance.create(':memory:');
  const connection = await db.connect();
  const reader = await connection.runAndReadAll(`select count(*) as n from read_parquet('${path}')`);
  return Number(reader.getRowObjects()[0]!.n);
}

test('a folder source yields Parquet tables DuckDB reads, labels with counts, and a run link', async () => {
  const ws = folderWorkspace();
  const result = runProgram(ws, 'stages/ingest');
  assert.equal(result.code, 0, result.stderr);
  const run = join(ws.artifacts, 'runs', 'config', 'ingest');
  assert.equal(await duckCount(join(run, 'train.parquet')), 60);
  assert.equal(await duckCount(join(run, 'test.parquet')), 20);
  const labels = JSON.parse(readFileSync(join(run, 'labels.json'), 'utf8'));
  assert.deepEqual(labels.labels, ['comedy', 'drama', 'horror']);
  assert.deepEqual(labels.counts.drama, { train: 18, validation: 2, test: 7 });
  const manifest = manifestOf(ws);
  assert.deepEqual(manifest.rows, { train: 54, validation: 6, test: 20, rejects: 0 });
  assert.ok(manifest.files['train.parquet'].sha256.match(/^[0-9a-f]{64}$/));
});

test('rejected rows land in rejects.jsonl with file, line and reason', () => {
  const ws = folderWorkspace('  max_reject_fraction: 0.05\n');
  ws.write('data/train_data.txt', readFileSync(join(ws.dir, 'data/train_data.txt'), 'utf8') + '61 ::: Broken (2000) ::: drama\n');
  const result = runProgram(ws, 'stages/ingest');
  assert.equal(result.code, 0, result.stderr);
  const rejects = readFileSync(join(ws.artifacts, 'runs', 'config', 'ingest', 'rejects.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.deepEqual(rejects, [{ file: 'train_data.txt', line: 61, reason: 'expected 4 fields separated by " ::: ", found 3', text: '61 ::: Broken (2000) ::: drama' }]);
});

test('more rejects than max_reject_fraction is an error and publishes nothing', () => {
  const ws = folderWorkspace();
  ws.write('data/train_data.txt', readFileSync(join(ws.dir, 'data/train_data.txt'), 'utf8') + '61 ::: Broken (2000) ::: drama\n');
  const result = runProgram(ws, 'stages/ingest');
  assert.equal(result.code, 1);
  assert.match(result.stderr, /^error: ingest: 1 of 81 rows rejected \(1\.23%\), more than ingest\.max_reject_fraction \(1\.00%\)\. Nothing was published\./m);
  assert.match(result.stderr, /train_data\.txt:61: expected 4 fields/);
  assert.doesNotMatch(result.stderr, /at .*\.js:\d+/, 'a user error prints no stack trace');
  assert.deepEqual(published(ws), []);
});

test('a missing source is one clear error', () => {
  const ws = workspace('ingest:\n  source: nowhere\n');
  const result = runProgram(ws, 'stages/ingest');
  assert.equal(result.code, 1);
  assert.match(result.stderr, /^error: ingest\.source: no such file or folder: .*nowhere/m);
});

const kaggleLayout = () => {
  const data = smallDataset(30);
  return [
    { name: 'Genre Classification Dataset/train_data.txt', content: data.train },
    { name: 'Genre Classification Dataset/test_data.txt', content: data.test },
    { name: 'Genre Classification Dataset/test_data_solution.txt', content: data.solution },
  ];
};

for (const [kind, build] of [
  ['archive.zip', () => makeZip(kaggleLayout())],
  ['archive.tar', () => makeTar(kaggleLayout())],
  ['archive.tar.gz', () => makeTar(kaggleLayout(), true)],
  ['archive.tgz', () => makeTar(kaggleLayout(), true)],
] as const) {
  test(`a ${kind.slice(8)} archive in the Kaggle layout is extracted and read`, () => {
    const ws = workspace(`ingest:\n  source: ${kind}\n`);
    ws.write(kind, build());
    const result = runProgram(ws, 'stages/ingest');
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(manifestOf(ws).rows, { train: 27, validation: 3, test: 10, rejects: 0 });
  });
}

for (const [what, entries] of [
  ['a ../ entry', [{ name: '../evil.txt', content: 'x' }]],
  ['an absolute path', [{ name: '/tmp/evil.txt', content: 'x' }]],
  ['a symbolic link', [{ name: 'link', linkTo: '/etc/passwd' }]],
] as const) {
  for (const format of ['zip', 'tar'] as const) {
    test(`a ${format} archive with ${what} is refused before anything is written`, () => {
      const ws = workspace(`ingest:\n  source: bad.${format}\n`);
      const good = kaggleLayout();
      ws.write(`bad.${format}`, format === 'zip' ? makeZip([...good, ...entries]) : makeTar([...good, ...entries]));
      const result = runProgram(ws, 'stages/ingest');
      assert.equal(result.code, 1);
      assert.match(result.stderr, /^error: .*bad\.(zip|tar): refusing entry/m);
      assert.equal(existsSync(join(ws.cache, 'extracted')) && readdirSync(join(ws.cache, 'extracted')).some((n) => !n.includes('partial')), false);
      assert.deepEqual(published(ws), []);
    });
  }
}

test('an archive that unpacks past max_unpacked_bytes is refused', () => {
  const ws = workspace('ingest:\n  source: big.tar.gz\n  max_unpacked_bytes: 1000\n');
  ws.write('big.tar.gz', makeTar([...kaggleLayout(), { name: 'padding.bin', content: Buffer.alloc(50_000) }], true));
  const result = runProgram(ws, 'stages/ingest');
  assert.equal(result.code, 1);
  assert.match(result.stderr, /unpacks to more than ingest\.max_unpacked_bytes/);
});

/** A local HTTP server whose answer to each request the test decides. */
async function serve(handler: (count: number) => { status: number; body?: Buffer }): Promise<{ url: string; server: Server; requests: () => number }> {
  let count = 0;
  const server = createServer((_req, res) => {
    const { status, body } = handler(++count);
    res.writeHead(status, { 'content-length': body?.length ?? 0 });
    res.end(body);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}/dataset.zip`, server, requests: () => count };
}

test('a URL source is downloaded, checked, cached by checksum and not fetched again', async () => {
  const zip = makeZip(kaggleLayout());
  const http = await serve(() => ({ status: 200, body: zip }));
  try {
    const ws = workspace(`ingest:\n  source: ${http.url}\n  sha256: ${sha256(zip)}\n`);
    const first = startProgram(ws, 'stages/ingest');
    const [code] = await once(first, 'exit');
    assert.equal(code, 0);
    assert.equal(http.requests(), 1);
    assert.ok(existsSync(join(ws.cache, 'downloads', sha256(zip), 'dataset.zip')));
    // A new artifact store forces a rebuild; the download cache makes it offline.
    const again = startProgram(ws, 'stages/ingest', ['--artifacts', join(ws.dir, 'other')]);
    const [code2] = await once(again, 'exit');
    assert.equal(code2, 0);
    assert.equal(http.requests(), 1);
  } finally {
    http.server.close();
  }
});

test('a download whose checksum does not match is an error and publishes nothing', async () => {
  const zip = makeZip(kaggleLayout());
  const http = await serve(() => ({ status: 200, body: zip }));
  try {
    const ws = workspace(`ingest:\n  source: ${http.url}\n  sha256: '${'0'.repeat(64)}'\n`);
    const child = startProgram(ws, 'stages/ingest');
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const [code] = await once(child, 'exit');
    assert.equal(code, 1);
    assert.match(stderr, new RegExp(`checksum mismatch for .*: expected sha256 0{64}, got ${sha256(zip)}`));
    assert.deepEqual(published(ws), []);
    // Nothing is cached under the expected checksum, and no partial download is left behind.
    assert.equal(existsSync(join(ws.cache, 'downloads', '0'.repeat(64))), false);
    assert.deepEqual(readdirSync(join(ws.cache, 'downloads', '.incoming')), []);
  } finally {
    http.server.close();
  }
});

test('a failing server is retried, and then the download succeeds', async () => {
  const zip = makeZip(kaggleLayout());
  const http = await serve((n) => (n < 3 ? { status: 503 } : { status: 200, body: zip }));
  try {
    const ws = workspace(`ingest:\n  source: ${http.url}\n  sha256: ${sha256(zip)}\n  download:\n    retries: 3\n`);
    const child = startProgram(ws, 'stages/ingest');
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const [code] = await once(child, 'exit');
    assert.equal(code, 0, stderr);
    assert.equal(http.requests(), 3);
    assert.match(stderr, /HTTP 503.*retrying/);
  } finally {
    http.server.close();
  }
});

test('no network is one clear error that says how to use a local copy', async () => {
  const http = await serve(() => ({ status: 200 }));
  const { url } = http;
  http.server.close();
  await once(http.server, 'close');
  const ws = workspace(`ingest:\n  source: ${url}\n  sha256: '${'a'.repeat(64)}'\n  download:\n    retries: 1\n`);
  const result = runProgram(ws, 'stages/ingest');
  assert.equal(result.code, 1);
  assert.match(result.stderr, /^error: ingest\.source: cannot download .*ECONNREFUSED.*point ingest\.source at the local copy/m);
});

test('a stage killed with SIGKILL mid-write publishes nothing, and a rerun succeeds', async () => {
  const ws = workspace('ingest:\n  source: data\n');
  const rows = Array.from({ length: 60_000 }, (_, i) => ({ id: i + 1, genre: ['drama', 'comedy'][i % 2], text: `A long plot description number ${i} `.repeat(8) }));
  ws.write('data/train_data.txt', kaggleLines(rows));
  const child = startProgram(ws, 'stages/ingest');
  const partialFile = () => {
    const dir = join(ws.artifacts, 'ingest');
    const partial = existsSync(dir) ? readdirSync(dir).find((n) => n.startsWith('.partial-')) : undefined;
    return partial && existsSync(join(dir, partial, 'train.parquet'));
  };
  while (!partialFile()) {
    if (child.exitCode !== null) assert.fail('the stage finished before it could be killed; make the input larger');
    await new Promise((r) => setTimeout(r, 20));
  }
  child.kill('SIGKILL');
  await once(child, 'exit');
  assert.deepEqual(published(ws), []);
  assert.equal(existsSync(join(ws.artifacts, 'runs', 'config', 'ingest')), false);
  const rerun = runProgram(ws, 'stages/ingest');
  assert.equal(rerun.code, 0, rerun.stderr);
  assert.match(rerun.stderr, /taking over the lock of pid \d+ on .* \(pid \d+ no longer runs\)/);
  assert.equal(published(ws).length, 1);
  assert.equal(manifestOf(ws).rows.train + manifestOf(ws).rows.validation, 60_000);
});

test('two processes that want the same key build it once', async () => {
  const ws = workspace('ingest:\n  source: data\n');
  const rows = Array.from({ length: 20_000 }, (_, i) => ({ id: i + 1, genre: ['drama', 'comedy'][i % 2] }));
  ws.write('data/train_data.txt', kaggleLines(rows));
  const children = [startProgram(ws, 'stages/ingest'), startProgram(ws, 'stages/ingest')];
  const outputs = children.map((c) => {
    let text = '';
    c.stderr.on('data', (d) => (text += d));
    return () => text;
  });
  const codes = await Promise.all(children.map(async (c) => (await once(c, 'exit'))[0]));
  assert.deepEqual(codes, [0, 0], outputs.map((o) => o()).join('\n---\n'));
  const built = outputs.filter((o) => /ingest: built/.test(o())).length;
  assert.equal(built, 1, outputs.map((o) => o()).join('\n---\n'));
  assert.equal(published(ws).length, 1);
  // What made one of the two exit 1 under load: the other took a link on its way into the run
  // folder (`.ingest.<pid>.tmp`, renamed into place a moment later) for a stale pointer and removed it.
  const runFolder = join(ws.artifacts, 'runs', 'config');
  const inFlight = join(runFolder, '.ingest.999999.tmp');
  symlinkSync(join('..', '..', 'ingest', published(ws)[0]!), inFlight);
  assert.equal(runProgram(ws, 'stages/ingest').code, 0);
  assert.ok(lstatSync(inFlight).isSymbolicLink(), "another process's link in flight is left alone");
  assert.deepEqual(Object.keys(runPointers(new ArtifactStore(ws.artifacts), 'config')), ['ingest']);
});

test('moving the data keeps the key; changing a row or a split param changes it', () => {
  const ws = folderWorkspace();
  const key = () => JSON.parse(runProgram(ws, 'scripts/status', ['--json']).stdout).stages[0].key as string;
  const first = key();
  renameSync(join(ws.dir, 'data'), join(ws.dir, 'moved'));
  ws.write('config.yaml', 'seed: 1\ningest:\n  source: moved\n  download:\n    retries: 9\n');
  assert.equal(key(), first, 'source location and download settings are not part of the key');
  ws.write('config.yaml', 'seed: 1\ningest:\n  source: moved\n  validation_fraction: 0.2\n');
  assert.notEqual(key(), first);
  ws.write('config.yaml', 'seed: 1\ningest:\n  source: moved\n');
  ws.write('moved/train_data.txt', readFileSync(join(ws.dir, 'moved/train_data.txt'), 'utf8').replace('Plot number 0', 'Plot number zero'));
  assert.notEqual(key(), first);
});

test('status says what would rerun and why', () => {
  const ws = folderWorkspace();
  assert.equal(runProgram(ws, 'stages/ingest').code, 0);
  const before = runProgram(ws, 'scripts/status');
  assert.match(before.stdout, /ingest\s+[0-9a-f]{16}\s+built/);
  assert.match(before.stdout, /tokenize\s+cannot be planned: .*model: required from tokenize on/);
  assert.equal(runProgram(ws, 'scripts/status', ['--check']).code, 3, 'a config that cannot run every stage has work left');
  const after = runProgram(ws, 'scripts/status', ['--set', 'ingest.validation_fraction=0.3', '--set', 'seed=9']);
  assert.match(after.stdout, /would run\n\s+ingest\.validation_fraction: 0\.1 -> 0\.3\n\s+seed: 1 -> 9/);
  assert.equal(runProgram(ws, 'scripts/status', ['--check', '--set', 'seed=9']).code, 3);
});

test('gc keeps what a run record keeps; KEEP= forgets older records; clean forgets the run and its records', () => {
  const ws = folderWorkspace();
  assert.equal(runProgram(ws, 'stages/ingest').code, 0);
  assert.equal(runProgram(ws, 'stages/ingest', ['--set', 'seed=5']).code, 0);
  assert.equal(published(ws).length, 2);
  assert.equal(runProgram(ws, 'scripts/gc', ['--yes']).code, 0);
  assert.equal(published(ws).length, 2, 'the seed-42 build the run moved away from is still recorded');
  assert.equal(runProgram(ws, 'scripts/gc', ['--yes', '--keep', '1']).code, 0);
  assert.equal(published(ws).length, 1, 'with one record per run kept, the run points at the seed=5 artifact only');
  assert.equal(runProgram(ws, 'scripts/clean').code, 0);
  assert.equal(existsSync(join(ws.artifacts, 'runs', 'config')), false);
  assert.deepEqual(readdirSync(join(ws.artifacts, 'records')), []);
  assert.equal(runProgram(ws, 'scripts/gc', ['--yes']).code, 0);
  assert.equal(published(ws).length, 0);
});
