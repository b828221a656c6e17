import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { createServer } from 'node:http';
import { lookup } from 'node:dns';
import type { AddressInfo } from 'node:net';
import sharp from 'sharp';
import { fetchPublic, isPrivateAddress } from '../pipeline/download/http.js';
import { parse as parseCsv } from 'csv-parse/sync';
import { toCsv } from '../pipeline/csv.js';
import { join } from 'node:path';
import { acquireLock } from '../pipeline/artifacts/lock.js';
import { REPO, cachedSegments, kaggleLines, runProgram, startProgram, workspace, type Workspace } from './helpers/workspace.js';

const MODEL = join(REPO, 'models', 'demo-bert-random');

/** `promise`, or a failure after `ms`: a hang is a failed test, not a suite that times out. */
async function within<T>(ms: number, promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: still waiting after ${ms} ms`)), ms)));
  try {
    return await Promise.race([promise, limit]);
  } finally {
    clearTimeout(timer);
  }
}

/** Whether `promise` is still pending after `ms`. */
async function pendingAfter(ms: number, promise: Promise<unknown>): Promise<boolean> {
  const marker = Symbol('pending');
  const result = await Promise.race([promise.then(() => 'settled', () => 'settled'), new Promise((r) => setTimeout(() => r(marker), ms))]);
  return result === marker;
}

const ago = (path: string, seconds: number) => utimesSync(path, new Date(Date.now() - seconds * 1000), new Date(Date.now() - seconds * 1000));
const otherRunner = { pid: 4242, host: 'other-runner', since: '2026-11-01T00:00:00Z', boot: 'not-this-boot', process: 'not-this-boot:777' };

function lockDir(): string {
  const ws = workspace();
  const dir = join(ws.artifacts, 'embed');
  mkdirSync(dir, { recursive: true });
  return dir;
}

test('a lock from another machine is taken over once its heartbeat is stale, and waited for while it is fresh', async () => {
  const dir = lockDir();
  const stale = join(dir, 'aaaa000000000000.lock');
  writeFileSync(stale, JSON.stringify(otherRunner));
  ago(stale, 3600);
  const taken = await within(5000, acquireLock(stale, 'embed aaaa'), 'a stale lock of another runner');
  taken.release();

  const fresh = join(dir, 'bbbb000000000000.lock');
  writeFileSync(fresh, JSON.stringify(otherRunner));
  const messages: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string) => (messages.push(String(chunk)), true)) as typeof process.stderr.write;
  const waiting = acquireLock(fresh, 'embed bbbb');
  try {
    assert.ok(await pendingAfter(1000, waiting), 'a lock whose holder still beats is respected');
  } finally {
    process.stderr.write = write;
  }
  assert.match(messages.join(''), /waiting for pid 4242 on other-runner \(since 2026-11-01T00:00:00Z\), which is building the same artifact \(held from other-runner: its heartbeat is recent\); if no such build runs, the lock .*bbbb000000000000\.lock is taken over after 60s without a heartbeat, or remove it/);
  // The holder stops beating (its runner is gone): the waiter takes over.
  ago(fresh, 120);
  (await within(5000, waiting, 'the waiter once the heartbeat stopped')).release();
});

test('an empty or unreadable lock (a full disk during its write) is waited for only while it is young', async () => {
  const dir = lockDir();
  for (const [name, content] of [['empty', ''], ['garbage', '{"pid": "x"'], ['no-identity', JSON.stringify({ pid: 1, host: hostname(), since: '2026-01-01T00:00:00Z' })]] as const) {
    const path = join(dir, `${name}.lock`);
    writeFileSync(path, content);
    const waiting = acquireLock(path, name);
    assert.ok(await pendingAfter(500, waiting), `${name}: a lock just written may be a holder writing it`);
    ago(path, 600);
    (await within(5000, waiting, name)).release();
    assert.equal(existsSync(path), false);
  }
});

test('a held lock keeps its heartbeat on a worker thread, even while the holder computes without yielding', () => {
  const ws = workspace();
  const path = join(ws.dir, 'held.lock');
  const script = `
    const { acquireLock } = await import(${JSON.stringify(join(REPO, 'dist', 'pipeline', 'artifacts', 'lock.js'))});
    const { utimesSync, statSync } = await import('node:fs');
    const lock = await acquireLock(${JSON.stringify(path)}, 'test');
    const old = new Date(Date.now() - 3600_000);
    utimesSync(${JSON.stringify(path)}, old, old);
    const busyUntil = Date.now() + 1500;
    while (Date.now() < busyUntil) {}
    console.log(Math.round((Date.now() - statSync(${JSON.stringify(path)}).mtimeMs) / 1000));
    lock.release();`;
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', env: { ...process.env, PIPELINE_HEARTBEAT_MS: '200' } });
  assert.equal(result.status, 0, result.stderr);
  assert.ok(Number(result.stdout.trim()) < 5, `the heartbeat refreshed the lock while the main thread was busy: ${result.stdout}`);
  assert.equal(existsSync(path), false);
});

function embedWorkspace(): Workspace {
  const ws = workspace(`ingest:\n  source: data\nmodel:\n  path: ${MODEL}\nembed:\n  providers: [cpu]\n  threads: 1\n  shard_rows: 16\n  batch_tokens: 256\n`);
  const words = ['cowboy', 'ghost', 'love', 'the', 'city'];
  const text = (i: number) => [...[0, 1, 2, 3].map((d) => words[Math.floor(i / 5 ** d) % 5]), ...Array.from({ length: 40 + (i % 50) }, (_, k) => words[(i + k) % 5])].join(' ');
  ws.write('data/train_data.txt', kaggleLines(Array.from({ length: 600 }, (_, i) => ({ id: i + 1, genre: ['drama', 'comedy'][i % 2], text: text(i) }))));
  for (const stage of ['ingest', 'tokenize']) assert.equal(runProgram(ws, `stages/${stage}`).code, 0);
  return ws;
}

async function killEmbed(ws: Workspace, signal: NodeJS.Signals): Promise<number | null> {
  const child = startProgram(ws, 'stages/embed');
  while (cachedSegments(ws) < 1) {
    if (child.exitCode !== null) assert.fail('embed finished before it could be stopped');
    await new Promise((r) => setTimeout(r, 5));
  }
  child.kill(signal);
  const [code] = (await once(child, 'exit')) as [number | null];
  return code;
}

const locks = (ws: Workspace) => readdirSync(join(ws.artifacts, 'embed')).filter((n) => n.endsWith('.lock'));

test('the documented CI resume: a killed embed whose store is restored on another runner resumes instead of waiting', async () => {
  const ws = embedWorkspace();
  await killEmbed(ws, 'SIGKILL');
  const [lock] = locks(ws);
  assert.ok(lock, 'SIGKILL leaves the lock');
  // The next runner restores the store: another host name, another boot, the lock as old as the cache.
  const path = join(ws.artifacts, 'embed', lock!);
  writeFileSync(path, readFileSync(path, 'utf8').replace(/"host":"[^"]*"/, '"host":"other-runner"').replace(/"boot":"[^"]*"/, '"boot":"restored"').replace(/"process":"[^"]*"/, '"process":"restored:1"'));
  ago(path, 3 * 3600);
  const rerun = await within(60_000, new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = startProgram(ws, 'stages/embed');
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stderr }));
  }), 'embed after a restore');
  assert.equal(rerun.code, 0, rerun.stderr);
  assert.match(rerun.stderr, /taking over the lock of pid \d+ on other-runner .*held from other-runner: no heartbeat for \d+s/);
  assert.match(rerun.stderr, /from the vector cache/);
});

test('SIGTERM (a CI step time-out) and SIGINT release the lock on the way out', async () => {
  for (const [signal, code] of [['SIGTERM', 143], ['SIGINT', 130]] as const) {
    const ws = embedWorkspace();
    assert.equal(await killEmbed(ws, signal), code, signal);
    assert.deepEqual(locks(ws), [], `${signal} leaves no lock`);
    assert.deepEqual(readdirSync(join(ws.artifacts, '.leases')), [], `${signal} leaves no lease`);
  }
});

test('make gc lists and removes stale locks and leases, of this machine or another, and keeps live ones', () => {
  const ws = workspace('ingest:\n  source: data\n');
  const dir = join(ws.artifacts, 'embed');
  mkdirSync(dir, { recursive: true });
  mkdirSync(join(ws.artifacts, '.leases'), { recursive: true });
  const staleLock = join(dir, 'cccc000000000000.lock');
  const liveLock = join(dir, 'dddd000000000000.lock');
  writeFileSync(staleLock, JSON.stringify(otherRunner));
  ago(staleLock, 3600);
  writeFileSync(liveLock, JSON.stringify(otherRunner));
  const staleLease = join(ws.artifacts, '.leases', 'other-runner-1-1-0.json');
  writeFileSync(staleLease, JSON.stringify({ owner: otherRunner, keys: ['embed/eeee000000000000'] }));
  ago(staleLease, 3600);
  mkdirSync(join(dir, 'eeee000000000000'));
  writeFileSync(join(dir, 'eeee000000000000', 'manifest.json'), '{}');
  const dry = runProgram(ws, 'scripts/gc', ['--dry-run']);
  assert.match(dry.stderr, /would remove .*cccc000000000000\.lock/);
  assert.match(dry.stderr, /would remove .*other-runner-1-1-0\.json/);
  assert.doesNotMatch(dry.stderr, /dddd000000000000\.lock/);
  assert.equal(runProgram(ws, 'scripts/gc', ['--yes']).code, 0);
  assert.equal(existsSync(staleLock), false);
  assert.equal(existsSync(liveLock), true, 'a lock whose holder beats is kept');
  assert.equal(existsSync(staleLease), false);
  assert.equal(existsSync(join(dir, 'eeee000000000000')), false, 'the stale lease no longer keeps its keys');
  assert.ok(statSync(liveLock).isFile());
});

test('poster addresses: loopback, private, link-local and IPv4 inside IPv6 are not public, in every spelling', () => {
  for (const address of ['127.0.0.1', '127.1.2.3', '10.0.0.8', '172.16.5.4', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '224.0.0.1', '::1', '::', 'fe80::1', 'fd00::1', '::ffff:127.0.0.1', '::ffff:7f00:1', '0:0:0:0:0:ffff:7f00:0001', '[::ffff:10.0.0.1]', '64:ff9b::7f00:1', '::127.0.0.1']) {
    assert.equal(isPrivateAddress(address), true, address);
  }
  for (const address of ['93.184.216.34', '8.8.8.8', '2606:4700:4700::1111', '::ffff:93.184.216.34']) assert.equal(isPrivateAddress(address), false, address);
});

test('a poster fetch checks the address of every hop: a name resolving to loopback, a redirect to a private address or to file: are refused', async () => {
  const png = await sharp({ create: { width: 4, height: 4, channels: 3, background: '#c00' } }).png().toBuffer();
  // A stand-in for the public internet on 127.0.0.2 (all of 127/8 is loopback on Linux), and a private server on 127.0.0.1.
  const server = createServer((req, res) => {
    if (req.url === '/poster.png') return res.writeHead(200, { 'content-type': 'image/png' }).end(png);
    if (req.url === '/to-private') return res.writeHead(302, { location: `http://127.0.0.1:${port}/poster.png` }).end();
    if (req.url === '/to-file') return res.writeHead(302, { location: 'file:///etc/passwd' }).end();
    if (req.url === '/loop') return res.writeHead(302, { location: '/loop' }).end();
    res.writeHead(404).end();
  });
  server.listen(0, '0.0.0.0');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  const options = { maxBytes: 100_000, timeoutMs: 5000, allowPrivate: false, isPublic: (a: string) => a === '127.0.0.2' };
  try {
    assert.deepEqual(await fetchPublic(`http://127.0.0.2:${port}/poster.png`, options), png, 'a public address is fetched');
    // The name is resolved once and the connection goes to that address.
    const names = (to: string) => ({ ...options, lookup: (_: string, cb: (e: Error | null, a: { address: string; family: number }[]) => void) => cb(null, [{ address: to, family: 4 }]) });
    assert.deepEqual(await fetchPublic(`http://posters.example:${port}/poster.png`, names('127.0.0.2')), png);
    await assert.rejects(fetchPublic(`http://posters.example:${port}/poster.png`, names('127.0.0.1')), /posters\.example resolves to 127\.0\.0\.1, a local or private address/);
    await assert.rejects(fetchPublic(`http://127.0.0.2:${port}/to-private`, options), /127\.0\.0\.1 is a local or private address/);
    await assert.rejects(fetchPublic(`http://127.0.0.2:${port}/to-file`, options), /a redirect to file: URLs are not fetched/);
    await assert.rejects(fetchPublic(`http://127.0.0.2:${port}/loop`, options), /more than 5 redirects/);
    await assert.rejects(fetchPublic(`http://[::ffff:127.0.0.1]:${port}/poster.png`, options), /is a local or private address/);
    // And with the system's resolver: this machine's own name, which /etc/hosts maps to loopback.
    const own = await new Promise<string | undefined>((resolve) => lookup(hostname(), (error, address) => resolve(error ? undefined : address)));
    if (own && isPrivateAddress(own)) await assert.rejects(fetchPublic(`http://${hostname()}:${port}/poster.png`, { ...options, isPublic: undefined }), new RegExp(`${hostname()} resolves to ${own.replace(/\./g, '\\.')}`));
  } finally {
    server.close();
  }
});

function builtWorkspace(): Workspace {
  const ws = workspace(`ingest:\n  source: data\nmodel:\n  path: ${MODEL}\nembed:\n  providers: [cpu]\n  threads: 1\ntrain:\n  epochs: 1\n  layers:\n    - units: 8\nreport:\n  gallery: 2\n  mistakes: 0\n`);
  ws.write('data/train_data.txt', kaggleLines(Array.from({ length: 60 }, (_, i) => ({ id: i + 1, genre: ['drama', 'comedy'][i % 2], text: `A ${['ghost', 'love'][i % 2]} story, number ${i}.` }))));
  ws.write('data/test_data_solution.txt', kaggleLines(Array.from({ length: 20 }, (_, i) => ({ id: i + 1, genre: ['drama', 'comedy'][i % 2], text: `A ${['ghost', 'love'][i % 2]} tale ${i}.` }))));
  for (const stage of ['ingest', 'tokenize', 'embed', 'train', 'evaluate']) {
    const result = runProgram(ws, `stages/${stage}`);
    assert.equal(result.code, 0, `${stage}: ${result.stderr}`);
  }
  return ws;
}

const oneError = (output: string, pattern: RegExp) => {
  assert.match(output, pattern);
  assert.doesNotMatch(output, /internal error|TypeError|at .*\.js:\d+/);
  assert.equal(output.split('\n').filter((l) => l.startsWith('error:')).length, 1, output);
};

test('a damaged manifest is one error naming the file and the fix everywhere, make verify lists it and goes on, and FORCE rebuilds it', () => {
  const ws = builtWorkspace();
  const embed = join(ws.artifacts, 'runs', 'config', 'embed', 'manifest.json');
  const original = readFileSync(embed);
  for (const [what, damage] of [['truncated', original.subarray(0, 500)], ['empty object', Buffer.from('{}')]] as const) {
    writeFileSync(embed, damage);
    const status = runProgram(ws, 'scripts/status');
    assert.equal(status.code, 1, what);
    oneError(status.stderr, /manifest\.json: the manifest is damaged \((not valid JSON \(.*\)|no stage)\), so the embed artifact [0-9a-f]{16} cannot be trusted: rebuild it with `make embed FORCE=embed`/);
    const train = runProgram(ws, 'stages/train', ['--set', 'train.epochs=2']);
    assert.equal(train.code, 1, what);
    oneError(train.stderr, /the manifest is damaged/);
    const verify = runProgram(ws, 'scripts/verify');
    assert.equal(verify.code, 1);
    assert.match(verify.stderr, /CHANGED .*embed\/[0-9a-f]{16}: its manifest is damaged/);
    assert.match(verify.stderr, /verify: [5-9] artifact\(s\)/, 'the other artifacts are still checked');
  }
  const forced = runProgram(ws, 'stages/embed', ['--force']);
  assert.equal(forced.code, 0, forced.stderr);
  assert.equal(runProgram(ws, 'scripts/verify').code, 0);
});

test('a damaged run record is one error where it is read, and make runs shows that run as damaged and the others as they are', () => {
  const ws = builtWorkspace();
  assert.equal(runProgram(ws, 'stages/evaluate', ['--set', 'run=other']).code, 0);
  writeFileSync(join(ws.artifacts, 'runs', 'config', 'config.yaml'), 'train: [unclosed\n');
  writeFileSync(join(ws.artifacts, 'runs', 'other', 'run.json'), '{"config": ');
  const runs = runProgram(ws, 'scripts/runs');
  assert.equal(runs.code, 0, runs.stderr);
  assert.match(runs.stderr, /runs: config: damaged: .*config\.yaml.* the run's config\.yaml is damaged/);
  assert.match(runs.stderr, /runs: other: damaged: .*run\.json: damaged \(not valid JSON\)/);
  const predict = runProgram(ws, 'scripts/predict', ['a ghost story', '--run', 'config']);
  assert.equal(predict.code, 1);
  oneError(predict.stderr, /config\.yaml.*the run's config\.yaml is damaged; rebuild the run/);
});

test('hostile YAML: a prototype key (directly, through extends or --set), an alias bomb and a folder are each one error naming the file', () => {
  const ws = workspace('ingest:\n  source: data\ntrain:\n  __proto__:\n    epochs: 3\n');
  const direct = runProgram(ws, 'scripts/config');
  assert.equal(direct.code, 1);
  oneError(direct.stderr, /config\.yaml:4: "__proto__" is not a key this project reads/);
  ws.write('base.yaml', 'ingest:\n  source: data\ntrain:\n  __proto__: { batch_size: 7 }\n');
  ws.write('child.yaml', 'extends: base.yaml\n');
  const inherited = runProgram(ws, 'scripts/config', ['--config', join(ws.dir, 'child.yaml')]);
  assert.equal(inherited.code, 1);
  oneError(inherited.stderr, /base\.yaml:4: "__proto__" is not a key/);
  ws.write('ok.yaml', 'ingest:\n  source: data\n');
  const set = runProgram(ws, 'scripts/config', ['--config', join(ws.dir, 'ok.yaml'), '--set', 'train={"__proto__":{"epochs":3}}']);
  assert.equal(set.code, 1);
  oneError(set.stderr, /--set train=.*"__proto__" is not a key/);
  const lol = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]', ...Array.from({ length: 8 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [${Array(9).fill(`*${String.fromCharCode(97 + i)}`).join(',')}]`)].join('\n');
  ws.write('bomb.yaml', `ingest:\n  source: data\n${lol}\n`);
  const bomb = runProgram(ws, 'scripts/config', ['--config', join(ws.dir, 'bomb.yaml')]);
  assert.equal(bomb.code, 1);
  oneError(bomb.stderr, /bomb\.yaml: cannot be read: .*alias/);
  // The gate reads its baseline once the run is evaluated.
  const built = builtWorkspace();
  built.write('baseline-bomb.yaml', lol);
  mkdirSync(join(built.dir, 'baselines-folder'));
  for (const [baseline, pattern] of [[join(built.dir, 'baselines-folder'), /baselines-folder: is a folder, not a gate baseline/], [join(built.dir, 'baseline-bomb.yaml'), /baseline-bomb\.yaml: cannot be read/], [join(built.dir, 'missing.yaml'), /gate baseline not found: .*missing\.yaml; create it from a run you trust with `make gate-update CONFIG=.*config\.yaml`/]] as const) {
    const gate = runProgram(built, 'scripts/gate', ['--baseline', baseline]);
    assert.equal(gate.code, 1);
    oneError(gate.stderr, pattern);
  }
  ws.write('sweep-bomb.yaml', `base: ok.yaml\ngrid:\n  train.seed: [1, 2]\n${lol}\n`);
  const sweep = runProgram(ws, 'scripts/sweep', [join(ws.dir, 'sweep-bomb.yaml')]);
  assert.equal(sweep.code, 1);
  oneError(sweep.stderr, /sweep-bomb\.yaml: cannot be read/);
});

test('two runs of one sweep at once: the second waits for the first, and both end with the leaderboard', async () => {
  const ws = builtWorkspace();
  ws.write('twice.yaml', 'base: config.yaml\nreport: false\ngrid:\n  train.seed: [1, 2]\n');
  const start = () =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = startProgram(ws, 'scripts/sweep', [join(ws.dir, 'twice.yaml')]);
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      child.on('exit', (code) => resolve({ code, stderr }));
    });
  // While another run holds the sweep (this test does), a run waits, and says for whom.
  mkdirSync(join(ws.artifacts, 'sweeps'), { recursive: true });
  const held = await acquireLock(join(ws.artifacts, 'sweeps', 'twice.lock'), 'test');
  let waiting = '';
  const blocked = new Promise<number | null>((resolve) => {
    const child = startProgram(ws, 'scripts/sweep', [join(ws.dir, 'twice.yaml')]);
    child.stderr.on('data', (d) => (waiting += d));
    child.on('exit', resolve);
  });
  while (!/waiting for pid/.test(waiting)) {
    assert.ok(await pendingAfter(50, blocked), `the sweep waits for the holder: ${waiting}`);
  }
  assert.match(waiting, new RegExp(`sweep twice: waiting for pid ${process.pid} on `));
  held.release();
  assert.equal(await within(120_000, blocked, 'the sweep once released'), 0, waiting);
  // Two at once: whichever waits finds the variants built; neither trips over the other's files.
  const [first, second] = await within(120_000, Promise.all([start(), start()]), 'two sweeps');
  for (const run of [first, second]) {
    assert.equal(run.code, 0, run.stderr);
    oneErrorFree(run.stderr);
  }
  assert.ok(existsSync(join(ws.artifacts, 'sweeps', 'twice', 'leaderboard.parquet')));
});

const oneErrorFree = (output: string) => assert.doesNotMatch(output, /internal error|ENOENT|^error:/m);

test('CSV the project writes opens in a spreadsheet as text: a cell that would be a formula gets a leading quote', () => {
  const ws = builtWorkspace();
  const input = ws.write('hostile.jsonl', [
    JSON.stringify({ id: '=1+1', title: '=HYPERLINK("http://attacker.example","click")', description: 'A ghost story.' }),
    JSON.stringify({ id: '2', title: '@SUM(A1:A9)', description: 'A love story.' }),
    JSON.stringify({ id: '3', title: '\tTab', description: 'A love story, again.' }),
    JSON.stringify({ id: '4', title: 'Plain title - with a dash', description: 'A ghost tale.' }),
  ].join('\n'));
  const output = join(ws.dir, 'out.csv');
  const result = runProgram(ws, 'scripts/predict', ['--input', input, '--output', output]);
  assert.equal(result.code, 0, result.stderr);
  const rows = parseCsv(readFileSync(output, 'utf8'), { columns: true }) as Record<string, string>[];
  assert.deepEqual(rows.map((r) => r.title), [`'=HYPERLINK("http://attacker.example","click")`, "'@SUM(A1:A9)", "'\tTab", 'Plain title - with a dash']);
  assert.equal(rows[0]!.id, "'=1+1");
  assert.ok(rows.every((r) => !r.top1_prob!.startsWith("'") && Number(r.top1_prob) > 0), 'numbers stay numbers');
  assert.deepEqual(toCsv([{ a: -0.5, b: '-0.5', c: '+x', d: 'ok' }], ['a', 'b', 'c', 'd']).split('\n')[1], "-0.5,'-0.5,'+x,ok");
});

test('paths stay inside what they name: data files in the source, hub files in the repository, runs under runs/', () => {
  const ws = workspace('ingest:\n  source: data.zip\n  files:\n    train: ../../../../etc/passwd\n');
  const escape = runProgram(ws, 'scripts/config', ['--check']);
  assert.equal(escape.code, 1);
  oneError(escape.stderr, /ingest\.files\.train: expected a path inside the source \(relative, without "\.\."\)/);
  ws.write('abs.yaml', 'ingest:\n  source: data\n  files:\n    test: /etc/passwd\n');
  oneError(runProgram(ws, 'scripts/config', ['--config', join(ws.dir, 'abs.yaml'), '--check']).stderr, /ingest\.files\.test: expected a path inside the source/);
  const sum = 'a'.repeat(64);
  ws.write('hub.yaml', `ingest:\n  source: data\nmodel:\n  hub:\n    repo: a/b\n    revision: ${'c'.repeat(40)}\n    files:\n      ../../secrets/model.onnx: ${sum}\n`);
  oneError(runProgram(ws, 'scripts/config', ['--config', join(ws.dir, 'hub.yaml'), '--check']).stderr, /model\.hub\.files\.\.\.\/\.\.\/secrets\/model\.onnx: expected a path inside the source/);
  ws.write('twice.yaml', `ingest:\n  source: data\nmodel:\n  hub:\n    repo: a/b\n    revision: ${'c'.repeat(40)}\n    files:\n      onnx/model.onnx: ${sum}\n      model.onnx: ${sum}\n`);
  oneError(runProgram(ws, 'scripts/config', ['--config', join(ws.dir, 'twice.yaml'), '--check']).stderr, /model\.onnx and onnx\/model\.onnx would both land in the model folder as model\.onnx/);
  const built = builtWorkspace();
  for (const name of ['../runs/config', '..', 'config/../../x']) {
    const predict = runProgram(built, 'scripts/predict', ['a ghost', '--run', name]);
    assert.equal(predict.code, 1, name);
    oneError(predict.stderr, /is not a run name/);
  }
  ws.write('refs.yaml', 'ingest:\n  source: data\nreport:\n  reference_runs: [".."]\n');
  oneError(runProgram(ws, 'scripts/config', ['--config', join(ws.dir, 'refs.yaml'), '--check']).stderr, /report\.reference_runs\[0\]: expected a run name/);
});

test('downloads: a redirect loop or a redirect to file: is one error, not retried; the hub has its own size cap; what a killed download left is removed', async () => {
  const asked: Record<string, number> = {};
  const server = createServer((req, res) => {
    asked[req.url!] = (asked[req.url!] ?? 0) + 1;
    if (req.url === '/loop') return res.writeHead(302, { location: '/loop' }).end();
    if (req.url === '/to-file') return res.writeHead(302, { location: 'file:///etc/passwd' }).end();
    if (req.url!.includes('/resolve/')) return res.writeHead(200, { 'content-length': 5000 }).end(Buffer.alloc(5000));
    res.writeHead(404).end();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  try {
    for (const [path, pattern] of [['/loop', /more than 10 redirects \(a redirect loop\?\); the server's redirects cannot be followed/], ['/to-file', /a redirect to file: URLs are not fetched \(http and https only\)/]] as const) {
      const ws = workspace(`ingest:\n  source: ${base}${path}\n  sha256: ${'a'.repeat(64)}\n  download:\n    retries: 3\n`);
      const result = await runProgramAsyncHere(ws, 'stages/ingest');
      assert.equal(result.code, 1);
      oneError(result.stderr, pattern);
      assert.doesNotMatch(result.stderr, /offline|retrying/);
      assert.equal(asked[path], path === '/loop' ? 11 : 1, `${path}: asked once (a loop follows its 10 redirects), never retried`);
    }
    // The hub's files have their own cap, named in the refusal.
    const ws = workspace(`ingest:\n  source: data\nmodel:\n  hub:\n    repo: acme/big\n    revision: ${'c'.repeat(40)}\n    base_url: ${base}\n    download:\n      max_bytes: 1000\n    files:\n      tokenizer.json: ${'b'.repeat(64)}\n      tokenizer_config.json: ${'b'.repeat(64)}\n      config.json: ${'b'.repeat(64)}\n      model.onnx: ${'b'.repeat(64)}\n`);
    ws.write('data/train_data.txt', kaggleLines([{ id: 1, genre: 'drama' }, { id: 2, genre: 'comedy' }]));
    assert.equal(runProgram(ws, 'stages/ingest', ['--set', 'ingest.max_reject_fraction=1', '--set', 'ingest.validation_fraction=0']).code, 0);
    const big = await runProgramAsyncHere(ws, 'stages/tokenize', ['--set', 'ingest.max_reject_fraction=1', '--set', 'ingest.validation_fraction=0']);
    assert.equal(big.code, 1);
    oneError(big.stderr, /model\.hub: .*tokenizer\.json: the server announces 4\.9 KiB, more than the limit of 1000 B; nothing was kept \(raise model\.hub\.download\.max_bytes/);
    // A download killed mid-way leaves its partial file; the next download, and make gc, remove it.
    const incoming = join(ws.cache, 'downloads', '.incoming');
    mkdirSync(incoming, { recursive: true });
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
    writeFileSync(join(incoming, `${dead}-1700000000000`), 'half a download');
    mkdirSync(join(ws.cache, 'extracted', `${'d'.repeat(64)}.partial-${dead}`), { recursive: true });
    const gc = runProgram(ws, 'scripts/gc', ['--dry-run']);
    assert.match(gc.stderr, new RegExp(`would remove .*\\.incoming/${dead}-1700000000000`));
    assert.match(gc.stderr, new RegExp(`would remove .*extracted/d+\\.partial-${dead}`));
    await runProgramAsyncHere(ws, 'stages/tokenize', ['--set', 'ingest.max_reject_fraction=1', '--set', 'ingest.validation_fraction=0']);
    assert.deepEqual(readdirSync(incoming), [], 'the next download removed it');
    assert.equal(runProgram(ws, 'scripts/gc', ['--yes']).code, 0);
    assert.deepEqual(readdirSync(join(ws.cache, 'extracted')), []);
  } finally {
    server.close();
  }
});

/** A program run without blocking this process, which serves HTTP to it. */
function runProgramAsyncHere(ws: Workspace, program: string, args: string[] = []): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = startProgram(ws, program, args);
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('exit', (code) => resolve({ code, stderr }));
  });
}

test('degenerate input: a NUL byte and an overlong description are rejects with reasons, a tiny TF-IDF vocabulary is warned of, a damaged model file is named as such', () => {
  const ws = workspace('ingest:\n  source: data\n  max_reject_fraction: 0.5\nembed:\n  method: tfidf\n  tfidf:\n    min_df: 1\n    ngram_max: 1\n');
  const rows = [
    ...Array.from({ length: 20 }, (_, i) => ({ id: i + 1, genre: ['drama', 'comedy'][i % 2], text: 'oh oh.' })),
    { id: 21, genre: 'drama', text: 'A plot with a \u0000 inside.' },
    { id: 22, genre: 'comedy', text: 'long '.repeat(5000) },
  ];
  ws.write('data/train_data.txt', kaggleLines(rows));
  assert.equal(runProgram(ws, 'stages/ingest').code, 0);
  const rejects = readFileSync(join(ws.artifacts, 'runs', 'config', 'ingest', 'rejects.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { line: number; reason: string });
  assert.deepEqual(rejects.map((r) => [r.line, r.reason]), [[21, 'a NUL byte in the description (binary data, not text)'], [22, 'description of 24999 characters, more than ingest.max_description_chars (20000)']]);
  const embed = runProgram(ws, 'stages/embed');
  assert.equal(embed.code, 0, embed.stderr);
  assert.match(embed.stderr, /embed: warning: only 1 n-gram met min_df 1 in 18 training descriptions: the vectors can tell little apart \(the training text is very short or repetitive\)/);
  const manifest = JSON.parse(readFileSync(join(ws.artifacts, 'runs', 'config', 'embed', 'manifest.json'), 'utf8'));
  assert.equal(manifest.details.warnings.length, 1);
  ws.write('data/train_data.txt', kaggleLines(Array.from({ length: 20 }, (_, i) => ({ id: i + 1, genre: ['drama', 'comedy'][i % 2], text: 'a b c.' }))));
  assert.equal(runProgram(ws, 'stages/ingest').code, 0);
  const empty = runProgram(ws, 'stages/embed');
  assert.equal(empty.code, 1);
  oneError(empty.stderr, /TF-IDF found no word in the 18 training descriptions/);
  assert.doesNotMatch(empty.stderr, /lower it/, 'min_df is 1 already');

  const model = join(ws.dir, 'broken-model');
  cpSync(MODEL, model, { recursive: true });
  writeFileSync(join(model, 'model.onnx'), readFileSync(join(MODEL, 'model.onnx')).subarray(0, 5000));
  ws.write('bert.yaml', `ingest:\n  source: data\nmodel:\n  path: ${model}\nembed:\n  providers: [webgpu, cpu]\n`);
  for (const stage of ['ingest', 'tokenize']) assert.equal(runProgram(ws, `stages/${stage}`, ['--config', join(ws.dir, 'bert.yaml')]).code, 0);
  const damaged = runProgram(ws, 'stages/embed', ['--config', join(ws.dir, 'bert.yaml')]);
  assert.equal(damaged.code, 1);
  oneError(damaged.stderr, /broken-model\/model\.onnx: the model file is damaged or not an ONNX model \(ONNX Runtime: Protobuf parsing failed/);
  assert.doesNotMatch(damaged.stderr, /embed\.providers/);
});
