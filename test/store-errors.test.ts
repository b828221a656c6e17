import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sha256 } from '../pipeline/hash.js';
import { makeZip } from './helpers/archives.js';
import { REPO, kaggleLines, runProgram, runProgramAsync, cachedSegments, smallDataset, startProgram, workspace } from './helpers/workspace.js';

const MODEL = join(REPO, 'models', 'demo-bert-random');
const kaggleLayout = () => {
  const data = smallDataset(30);
  return [
    { name: 'Genre Classification Dataset/train_data.txt', content: data.train },
    { name: 'Genre Classification Dataset/test_data_solution.txt', content: data.solution },
  ];
};

function oneUserError(output: string): void {
  assert.equal(output.match(/^error: /gm)?.length, 1, output);
  assert.doesNotMatch(output, /internal error|\n {4}at /);
}

const partials = (dir: string) => (existsSync(dir) ? readdirSync(dir).filter((n) => n.startsWith('.partial-')) : []);

/** One local server: `/data.zip` (counted), `/mid-body` (closes halfway), `/endless` (no Content-Length, 64 KiB). */
async function serveData(zip: Buffer) {
  const asked: Record<string, number> = {};
  const server = createServer((req, res) => {
    asked[req.url!] = (asked[req.url!] ?? 0) + 1;
    if (req.url === '/data.zip') return res.writeHead(200, { 'content-length': zip.length }).end(zip);
    if (req.url === '/mid-body') {
      // The first 100 bytes, then a clean close (FIN, not a reset): the client reads exactly those
      // bytes before it sees the end, however busy the machine. A reset could discard them unread.
      res.writeHead(200, { 'content-length': zip.length });
      return res.write(zip.subarray(0, 100), () => res.socket?.end());
    }
    if (req.url === '/endless') {
      res.writeHead(200);
      for (let i = 0; i < 64; i++) res.write(Buffer.alloc(1024, i));
      return res.end();
    }
    res.writeHead(404).end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, asked, base: `http://127.0.0.1:${(server.address() as { port: number }).port}` };
}

test('no space left on the device is one clear error naming the store, and leaves no partial folder', (t) => {
  const ws = workspace(`ingest:\n  source: data\n`);
  const data = smallDataset(400);
  ws.write('data/train_data.txt', data.train);
  const tiny = join(ws.dir, 'tiny');
  mkdirSync(tiny);
  const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=12k', 'tmpfs', tiny]);
  if (mount.status !== 0) return t.skip(`a small filesystem to fill cannot be mounted here (${mount.stderr.toString().trim() || 'mount failed'})`);
  try {
    const result = runProgram(ws, 'stages/ingest', ['--artifacts', tiny]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, new RegExp(`error: (ingest: no space left on the device while building [0-9a-f]{16} in ${tiny}|no space left on the device)`));
    assert.match(result.stderr, /free some space \(df -h/);
    oneUserError(result.stderr);
    assert.deepEqual(partials(join(tiny, 'ingest')), []);
  } finally {
    spawnSync('umount', [tiny]);
  }
});

test('a zip whose headers understate an entry\'s size is refused as damaged, not a stack trace nor a silently cut file', () => {
  const central = (zip: Buffer) => zip.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
  // Only the uncompressed size understated (offset 24 of the central record): the headers disagree.
  const inconsistent = makeZip(kaggleLayout());
  inconsistent.writeUInt32LE(inconsistent.readUInt32LE(central(inconsistent) + 24) - 10, central(inconsistent) + 24);
  // Both sizes understated alike: consistent headers, and an entry 10 bytes short of its CRC.
  const short = makeZip(kaggleLayout());
  for (const offset of [20, 24]) short.writeUInt32LE(short.readUInt32LE(central(short) + offset) - 10, central(short) + offset);
  for (const [zip, expected] of [
    [inconsistent, /data\.zip: not a valid zip archive \(.*\); download it again/],
    [short, /data\.zip: entry "Genre Classification Dataset\/train_data\.txt" is damaged or does not match its header \(CRC-32/],
  ] as const) {
    const ws = workspace(`ingest:\n  source: data.zip\n`);
    ws.write('data.zip', zip);
    const result = runProgram(ws, 'stages/ingest');
    assert.equal(result.code, 1, result.stderr);
    assert.match(result.stderr, expected);
    oneUserError(result.stderr);
  }
});

test('a connection closed mid-body names what happened; a download without Content-Length stops at max_bytes', async () => {
  const zip = makeZip(kaggleLayout());
  const { server, base } = await serveData(zip);
  try {
    const ws = workspace(`ingest:\n  source: ${base}/mid-body\n  sha256: ${sha256(zip)}\n  download:\n    retries: 0\n`);
    const cut = await runProgramAsync(ws, 'stages/ingest');
    assert.equal(cut.code, 1);
    assert.match(cut.stderr, /cannot download .*mid-body: the connection closed after 100 B of [\d.]+ KiB arrived \((ECONNRESET|aborted)\)/);
    oneUserError(cut.stderr);

    ws.write('config.yaml', `ingest:\n  source: ${base}/endless\n  sha256: ${sha256(zip)}\n  download:\n    retries: 0\n    max_bytes: 10000\n`);
    const big = await runProgramAsync(ws, 'stages/ingest');
    assert.equal(big.code, 1);
    assert.match(big.stderr, /endless: more than the limit of 9\.8 KiB arrived; nothing was kept \(raise ingest\.download\.max_bytes/);
    oneUserError(big.stderr);
    assert.deepEqual(readdirSync(join(ws.cache, 'downloads', '.incoming')), []);
  } finally {
    server.close();
  }
});

test('a swapped file in the download cache, or an edited extraction, is caught and fetched or extracted again', async () => {
  const zip = makeZip(kaggleLayout());
  const { server, asked, base } = await serveData(zip);
  try {
    const ws = workspace(`ingest:\n  source: ${base}/data.zip\n  sha256: ${sha256(zip)}\n`);
    assert.equal((await runProgramAsync(ws, 'stages/ingest')).code, 0);
    const cachedZip = join(ws.cache, 'downloads', sha256(zip), 'data.zip');
    const forged = makeZip(kaggleLayout().map((e) => ({ ...e, content: e.content.replace(/drama/g, 'comedy') })));
    writeFileSync(cachedZip, forged);
    const again = await runProgramAsync(ws, 'stages/ingest', ['--artifacts', join(ws.dir, 'second')]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stderr, /the cached .*data\.zip does not match its sha256 any more; removing it and downloading again/);
    assert.equal(asked['/data.zip'], 2);
    assert.ok(readFileSync(cachedZip).equals(zip));

    const extracted = join(ws.cache, 'extracted', sha256(zip), 'Genre Classification Dataset', 'train_data.txt');
    writeFileSync(extracted, readFileSync(extracted, 'utf8').replace(/drama/g, 'comedy'));
    const third = await runProgramAsync(ws, 'stages/ingest', ['--artifacts', join(ws.dir, 'third')]);
    assert.equal(third.code, 0, third.stderr);
    assert.match(third.stderr, /the extracted copy in .* changed \(Genre Classification Dataset\/train_data\.txt has \d+ bytes, \d+ when it was made\); extracting again/);
    assert.match(readFileSync(extracted, 'utf8'), /drama/);
    // The record of what was extracted is kept outside the folder: a file added with a listing of its own is caught too.
    writeFileSync(join(ws.cache, 'extracted', sha256(zip), 'Genre Classification Dataset', 'test_data.txt'), 'planted');
    writeFileSync(join(ws.cache, 'extracted', sha256(zip), '.extracted.json'), '{}');
    const fourth = await runProgramAsync(ws, 'stages/ingest', ['--artifacts', join(ws.dir, 'fourth')]);
    assert.equal(fourth.code, 0, fourth.stderr);
    assert.match(fourth.stderr, /the extracted copy in .* changed \(.* was added\); extracting again/);
  } finally {
    server.close();
  }
});

test('a same-size edit of a data file with its mtime restored still changes the ingest key', () => {
  const ws = workspace(`ingest:\n  source: data\n`);
  const data = smallDataset(60);
  const file = ws.write('data/train_data.txt', data.train);
  assert.equal(runProgram(ws, 'stages/ingest').code, 0);
  const { atime, mtime } = statSync(file);
  writeFileSync(file, data.train.replace('drama', 'dramA'));
  utimesSync(file, atime, mtime);
  const status = runProgram(ws, 'scripts/status');
  assert.match(status.stdout, /ingest +[0-9a-f]{16} +would run\n +source train changed/);
});

test('hints repeat the --set overrides, and a failed build leaves no partial folder behind', () => {
  const ws = workspace(`ingest:\n  source: data\n  max_reject_fraction: 0\nmodel:\n  path: ${MODEL}\n`);
  const data = smallDataset(60);
  ws.write('data/train_data.txt', `${data.train}not a kaggle line\n`);
  const bad = runProgram(ws, 'stages/ingest');
  assert.equal(bad.code, 1);
  oneUserError(bad.stderr);
  assert.deepEqual(partials(join(ws.artifacts, 'ingest')), []);
  const hint = runProgram(ws, 'stages/tokenize', ['--set', 'ingest.max_reject_fraction=0.5', '--set', 'seed=3']);
  assert.equal(hint.code, 1);
  assert.match(hint.stderr, new RegExp(`run \`make ingest CONFIG=${ws.config} SET="ingest\\.max_reject_fraction=0\\.5 seed=3"\` first`));
});

test('a test_solution file name that is not found is an error; a CSV test file keeps its genre column', () => {
  const ws = workspace(`ingest:\n  source: data\n  files:\n    test_solution: test_solutions.txt\n`);
  const data = smallDataset(60);
  ws.write('data/train_data.txt', data.train);
  ws.write('data/test_data_solution.txt', data.solution);
  const typo = runProgram(ws, 'stages/ingest');
  assert.equal(typo.code, 1);
  assert.match(typo.stderr, /ingest\.files\.test_solution: "test_solutions\.txt" not found under .* \(set it to null if the data has no such file\)/);

  const csv = workspace(`ingest:\n  source: csv\n  files: { train: train.csv, test: test.csv, test_solution: null }\n`);
  const line = (i: number, genre: string) => `${i},Film ${i},${genre},"A plot about ${genre} number ${i}."`;
  csv.write('csv/train.csv', 'id,title,genre,description\n' + Array.from({ length: 60 }, (_, i) => line(i + 1, ['drama', 'comedy'][i % 2]!)).join('\n') + '\n');
  csv.write('csv/test.csv', 'id,title,genre,description\n' + Array.from({ length: 10 }, (_, i) => line(i + 1, ['drama', 'comedy'][i % 2]!)).join('\n') + '\n');
  const result = runProgram(csv, 'stages/ingest');
  assert.equal(result.code, 0, result.stderr);
  assert.doesNotMatch(result.stderr, /no genres|no solution file/, 'a CSV test file with genres is not said to lack them');
  const labels = JSON.parse(readFileSync(join(csv.artifacts, 'runs', 'config', 'ingest', 'labels.json'), 'utf8'));
  assert.equal(labels.counts.drama.test + labels.counts.comedy.test, 10);
});

test('gate: a baseline with a YAML error names its line; gate-update refuses to lower a baseline unless allowed', () => {
  const ws = workspace(`seed: 4\ningest:\n  source: data\nmodel:\n  path: ${MODEL}\nembed:\n  providers: [cpu]\n  threads: 1\ntrain:\n  epochs: 2\n  early_stopping: null\n  layers:\n    - units: 8\n`);
  const data = smallDataset(90);
  ws.write('data/train_data.txt', data.train);
  ws.write('data/test_data_solution.txt', data.solution);
  for (const stage of ['ingest', 'tokenize', 'embed', 'train', 'evaluate']) assert.equal(runProgram(ws, `stages/${stage}`).code, 0, stage);
  const baseline = ws.write('baseline.yaml', 'split: test\nmetrics:\n  accuracy: { value: 0.5, tolerance: [0.1\n');
  const broken = runProgram(ws, 'scripts/gate', ['--baseline', baseline]);
  assert.equal(broken.code, 1);
  assert.match(broken.stderr, /baseline\.yaml:\d+:\d+: invalid YAML: Flow sequence/);
  oneUserError(broken.stderr);

  ws.write('baseline.yaml', 'split: test\nmetrics:\n  accuracy: { value: 0.9999, tolerance: 0.02 }\n  log_loss: { value: 0.0001, tolerance: 0.05 }\n');
  const lower = runProgram(ws, 'scripts/gate', ['--baseline', baseline, '--update']);
  assert.equal(lower.code, 1);
  assert.match(lower.stderr, /this would lower the baseline in .*baseline\.yaml \(test\.accuracy 0\.9999 -> 0\.\d{4}, test\.log_loss 0\.0001 -> \d\.\d{4}\); nothing was written/);
  assert.match(readFileSync(baseline, 'utf8'), /0\.9999/);
  const allowed = runProgram(ws, 'scripts/gate', ['--baseline', baseline, '--update', '--allow-worse']);
  assert.equal(allowed.code, 0, allowed.stderr);
  assert.doesNotMatch(readFileSync(baseline, 'utf8'), /0\.9999/);
  const dry = spawnSync('make', ['-n', '--no-print-directory', 'gate-update', 'ALLOW_WORSE=1', `CONFIG=${ws.config}`], { cwd: REPO, encoding: 'utf8' });
  assert.match(dry.stdout, /gate\.js .* --update --allow-worse/);

  // make predict with SET: the description comes after --, so --set cannot swallow it.
  const predict = spawnSync('make', ['--no-print-directory', 'predict', 'TEXT=A plot about drama.', 'SET=evaluate.top_k=2', `CONFIG=${ws.config}`, `ARTIFACTS=${ws.artifacts}`], { cwd: REPO, encoding: 'utf8', env: { ...process.env, PIPELINE_CACHE: ws.cache } });
  assert.equal(predict.status, 0, predict.stderr);
  assert.match(predict.stdout, /drama|comedy|horror/);
});

test('Ctrl-C says that nothing was published and that a rerun continues', async () => {
  const ws = workspace(`ingest:\n  source: data\nmodel:\n  path: ${MODEL}\nembed:\n  providers: [cpu]\n  threads: 1\n  shard_rows: 16\n  batch_tokens: 256\n`);
  // Every plot its own words (i in base 5 first), so that no row's vector is another's.
  const words = ['cowboy', 'ghost', 'love', 'the', 'city'];
  const text = (i: number) => [...[0, 1, 2, 3].map((d) => words[Math.floor(i / 5 ** d) % 5]), ...Array.from({ length: 40 + (i % 50) }, (_, k) => words[(i + k) % 5])].join(' ');
  ws.write('data/train_data.txt', kaggleLines(Array.from({ length: 600 }, (_, i) => ({ id: i + 1, genre: ['drama', 'comedy'][i % 2], text: text(i) }))));
  assert.equal(runProgram(ws, 'stages/ingest').code, 0);
  assert.equal(runProgram(ws, 'stages/tokenize').code, 0);
  const child = startProgram(ws, 'stages/embed');
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  while (cachedSegments(ws) < 1) {
    if (child.exitCode !== null) assert.fail(`embed finished before it could be interrupted: ${stderr}`);
    await new Promise((r) => setTimeout(r, 5));
  }
  child.kill('SIGINT');
  const [code] = (await once(child, 'exit')) as [number | null];
  assert.equal(code, 130);
  assert.match(stderr, /interrupted: nothing was published; rerun the same command to continue \(the embed stage keeps the shards it finished\)/);
  // Ctrl-C releases the lock on the way out: the rerun does not wait for anyone.
  assert.deepEqual(readdirSync(join(ws.artifacts, 'embed')).filter((n) => n.endsWith('.lock')), [], 'no lock is left');
  const rerun = runProgram(ws, 'stages/embed');
  assert.equal(rerun.code, 0, rerun.stderr);
  // The shards finished before Ctrl-C are in the vector cache: the rerun computes only the rest.
  const resumed = /embed: 600 rows: (\d+) computed, (\d+) from the vector cache/.exec(rerun.stderr);
  assert.ok(resumed && Number(resumed[2]) >= 16 && Number(resumed[1]) + Number(resumed[2]) === 600, rerun.stderr);
});
