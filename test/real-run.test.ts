import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { readEmbeddings } from '../pipeline/arrow/index.js';
import { makeZip } from './helpers/archives.js';
import { REPO, kaggleLines, workspace, type Workspace } from './helpers/workspace.js';
import { lstatSync, symlinkSync } from 'node:fs';
import { writeModelFolder } from './helpers/models.js';
import type { ExportShape } from '../pipeline/testing/bert-graph.js';

/**
 * The real run, end to end, against local stand-ins for the Hugging Face hub and Kaggle on
 * 127.0.0.1: `make pin` on a config with `revision: main` and PIN-ME placeholders, then
 * `make all` on it, for the shapes that published exports come in.
 */
const TOKEN = 'hf_test_token';
const KAGGLE = { user: 'kaggle-user', key: 'kaggle-key' };
const COMMIT = 'c0ffee5e1ec7ed0c0ffee5e1ec7ed0c0ffee5e1e';
const DATASET = '/kaggle/api/v1/datasets/download/hijest/genre-classification-dataset-imdb';
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

interface Repo {
  files: Map<string, Buffer>;
  /** Where the same weights live as a feature-extraction folder: the reference vectors. */
  reference: string;
}

const repos = new Map<string, Repo>();
const requests: string[] = [];
let server: Server;
let base: string;
let models: Workspace;
let kaggleZip: Buffer;

function hubRepo(name: string, shape: ExportShape, seed: number): void {
  const dir = writeModelFolder(join(models.dir, name), { ...shape, onnxDir: true, withQuantized: shape.task === 'fill-mask' }, seed);
  const reference = writeModelFolder(join(models.dir, `${name}-reference`), { tokenTypeIds: shape.tokenTypeIds, torchNames: shape.torchNames }, seed);
  const files = new Map<string, Buffer>();
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      if (entry.isDirectory()) walk(join(d, entry.name));
      else files.set(relative(dir, join(d, entry.name)), readFileSync(join(d, entry.name)));
    }
  };
  walk(dir);
  repos.set(`acme/${name}`, { files, reference });
}

before(async () => {
  models = workspace();
  hubRepo('bert-fill-mask', { task: 'fill-mask', torchNames: true }, 11);
  hubRepo('bert-no-token-types', { tokenTypeIds: false }, 12);
  hubRepo('bert-features', {}, 13);
  const genres = ['western', 'horror', 'romance'];
  const words: Record<string, string> = { western: 'cowboy sheriff saloon', horror: 'ghost haunted demon', romance: 'love wedding kiss' };
  const rows = (n: number, offset: number) => Array.from({ length: n }, (_, i) => ({ id: i + 1, genre: genres[i % 3], text: `A ${words[genres[i % 3]!]} at night in the city, number ${i + offset}.` }));
  const test = rows(15, 100);
  kaggleZip = makeZip([
    { name: 'Genre Classification Dataset/train_data.txt', content: kaggleLines(rows(60, 0)) },
    { name: 'Genre Classification Dataset/test_data.txt', content: kaggleLines(test, false) },
    { name: 'Genre Classification Dataset/test_data_solution.txt', content: kaggleLines(test) },
  ]);

  server = createServer((req, res) => {
    const url = new URL(req.url!, 'http://hub');
    requests.push(`${req.method} ${url.pathname}`);
    const auth = req.headers.authorization;
    if (url.pathname === DATASET) {
      if (auth !== `Basic ${Buffer.from(`${KAGGLE.user}:${KAGGLE.key}`).toString('base64')}`) return res.writeHead(401).end('{"message":"Unauthenticated"}');
      // Kaggle answers with a redirect to signed storage; the file has no extension.
      return res.writeHead(302, { location: '/storage/genre-classification-dataset-imdb' }).end();
    }
    if (url.pathname === '/storage/genre-classification-dataset-imdb') return res.end(kaggleZip);
    // A dataset whose rules were not accepted: Kaggle answers 200 with a web page.
    if (url.pathname === '/kaggle/api/v1/datasets/download/owner/rules-not-accepted') return res.writeHead(200, { 'content-type': 'text/html' }).end('<!DOCTYPE html><html><body>Please accept the rules</body></html>');
    // The hub's CDN: content by checksum, no credentials (fetch drops them on redirect anyway).
    const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(url.pathname);
    if (cdn) {
      for (const repo of repos.values()) for (const data of repo.files.values()) if (sha256(data) === cdn[1]) return res.end(data);
      return res.writeHead(404).end();
    }
    if (auth !== `Bearer ${TOKEN}`) return res.writeHead(401, { 'x-error-code': 'RepoNotFound' }).end('Invalid credentials in Authorization header');
    const revision = /^\/api\/models\/([\w.-]+\/[\w.-]+)\/revision\/([^/]+)$/.exec(url.pathname);
    if (revision) {
      const repo = repos.get(revision[1]!);
      if (!repo || ![COMMIT, 'main'].includes(decodeURIComponent(revision[2]!))) return res.writeHead(404).end('{"error":"Revision Not Found"}');
      return res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: revision[1], sha: COMMIT, siblings: [...repo.files.keys()].map((rfilename) => ({ rfilename })) }));
    }
    const resolve = /^\/([\w.-]+\/[\w.-]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    const repo = resolve ? repos.get(resolve[1]!) : undefined;
    const data = repo && [COMMIT, 'main'].includes(resolve![2]!) ? repo.files.get(resolve![3]!) : undefined;
    if (!data) return res.writeHead(404, { 'x-error-code': 'EntryNotFound' }).end('Entry not found');
    if (resolve![3]!.endsWith('.onnx')) {
      // Large files live in LFS: the answer is a redirect whose X-Linked-Etag is the sha256.
      return res.writeHead(302, { location: `/cdn/${sha256(data)}`, 'x-linked-etag': `"${sha256(data)}"`, 'x-linked-size': String(data.length) }).end();
    }
    // Small files: the ETag is the git blob id, not a sha256.
    res.writeHead(200, { etag: `"${createHash('sha1').update(data).digest('hex')}"`, 'content-length': data.length });
    res.end(req.method === 'HEAD' ? undefined : data);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});

after(() => server.close());

function realConfig(ws: Workspace, repo: string, options: { files?: string[]; baseUrl?: string } = {}): string {
  const files = options.files ?? ['onnx/model.onnx', 'tokenizer.json', 'tokenizer_config.json', 'config.json'];
  return ws.write(
    'config.yaml',
    `# The real run, as a user writes it before pinning.
run: real
seed: 3
ingest:
  source: kaggle://hijest/genre-classification-dataset-imdb
  sha256: PIN-ME # make pin fills this
  download:
    kaggle_api: ${base}/kaggle/api/v1
    retries: 0
model:
  hub:
    repo: ${repo}
    revision: main # a branch: make pin turns it into a commit id
    base_url: ${options.baseUrl ?? base}
    files:
${files.map((f) => `      ${f}: PIN-ME`).join('\n')}
embed:
  providers: [cpu]
  threads: 1
train:
  epochs: 3
  layers:
    - units: 16
report:
  gallery: 4
  mistakes: 2
`,
  );
}

interface Env {
  HF_TOKEN?: string;
  KAGGLE_USERNAME?: string;
  KAGGLE_KEY?: string;
}

/** Runs make without blocking this process, which serves the HTTP stand-ins. */
async function make(ws: Workspace, args: string[], env: Env = { HF_TOKEN: TOKEN, KAGGLE_USERNAME: KAGGLE.user, KAGGLE_KEY: KAGGLE.key }) {
  const { HF_TOKEN: _t, KAGGLE_USERNAME: _u, KAGGLE_KEY: _k, ...outer } = process.env;
  const emptyKaggleDir = join(ws.dir, 'no-kaggle-json');
  mkdirSync(emptyKaggleDir, { recursive: true });
  // The workspace's config first: a CONFIG= in `args` names another (make takes the last one).
  const child = spawn('make', ['--no-print-directory', `CONFIG=${ws.config}`, `ARTIFACTS=${ws.artifacts}`, ...args], {
    cwd: REPO,
    env: { ...outer, ...env, PIPELINE_CACHE: ws.cache, KAGGLE_CONFIG_DIR: emptyKaggleDir, CI: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, output };
}

function maxAbsDiff(ws: Workspace, referenceRun: string): number {
  let max = 0;
  for (const split of ['train', 'test']) {
    const a = readEmbeddings(join(ws.artifacts, 'runs', 'real', 'embed', `${split}.arrow`)).vectors;
    const b = readEmbeddings(join(ws.artifacts, 'runs', referenceRun, 'embed', `${split}.arrow`)).vectors;
    assert.equal(a.length, b.length);
    for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  }
  return max;
}

async function pinThenMakeAll(repo: string) {
  const ws = workspace();
  realConfig(ws, repo);
  const unpinned = await make(ws, ['all']);
  assert.notEqual(unpinned.code, 0);
  assert.match(unpinned.output, /not pinned yet \(ingest\.sha256, model\.hub\.files\.onnx\/model\.onnx, .* are PIN-ME\): run `make pin CONFIG=/);

  requests.length = 0;
  const pin = await make(ws, ['pin']);
  assert.equal(pin.code, 0, pin.output);
  const pinned = readFileSync(ws.config, 'utf8');
  // The line's own comment stays, with what was pinned after it.
  assert.match(pinned, new RegExp(`revision: ${COMMIT} # a branch: make pin turns it into a commit id; was main on \\d{4}-\\d{2}-\\d{2} \\(make pin\\)`));
  assert.match(pinned, /^# The real run, as a user writes it before pinning\.$/m, 'comments are kept');
  const files = repos.get(repo)!.files;
  for (const file of ['onnx/model.onnx', 'config.json']) assert.match(pinned, new RegExp(`${file}: "?${sha256(files.get(file)!)}"?`));
  assert.match(pinned, new RegExp(`sha256: "?${sha256(kaggleZip)}"?`));
  assert.match(pin.output, /model\.hub\.files\.onnx\/model\.onnx: PIN-ME -> [0-9a-f]{64} {2}\(X-Linked-Etag\)/);
  assert.match(pin.output, /model\.hub\.files\.config\.json: PIN-ME -> [0-9a-f]{64} {2}\(downloaded\)/);
  assert.ok(!requests.some((r) => r.startsWith('GET /cdn/')), 'the large model file is pinned from its header, not downloaded');

  const again = await make(ws, ['pin']);
  assert.equal(again.code, 0, again.output);
  assert.match(again.output, /is pinned already; nothing changed/);

  // VERBOSE=1: the tests below read which inputs were fed and which output was read.
  const all = await make(ws, ['all', 'VERBOSE=1']);
  assert.equal(all.code, 0, all.output);
  assert.ok(existsSync(join(ws.artifacts, 'runs', 'real', 'report', 'report.html')));
  // The same weights as a local feature-extraction folder: `null` removes the inherited hub section.
  const reference = repos.get(repo)!.reference;
  const local = await make(ws, ['embed', `SET=run=reference model.hub=null model.path=${reference}`]);
  assert.equal(local.code, 0, local.output);
  const diff = maxAbsDiff(ws, 'reference');
  assert.ok(diff <= 1e-5, `max abs diff ${diff}`);
  return { ws, all };
}

test('real run: a fill-mask hub export (only logits), pinned from revision main, then make all', async () => {
  const { ws, all } = await pinThenMakeAll('acme/bert-fill-mask');
  assert.match(all.output, /is a fill-mask export/);
  // predict goes through the same derived encoder as the embed stage.
  const predict = await make(ws, ['predict', 'TEXT=A cowboy and a sheriff at the saloon.']);
  assert.equal(predict.code, 0, predict.output);
  assert.match(predict.output, /using the encoder-only model derived from it \(cached/);
});

test('real run: a hub export without token_type_ids', async () => {
  const { all } = await pinThenMakeAll('acme/bert-no-token-types');
  assert.match(all.output, /feeding input_ids, attention_mask$/m);
});

test('real run: a feature-extraction hub export', async () => {
  const { all } = await pinThenMakeAll('acme/bert-features');
  assert.match(all.output, /reading last_hidden_state of model\.onnx/);
});

test('make pin: a wrong token, a missing file, an unreachable hub and missing Kaggle credentials are one clear error each', async () => {
  const ws = workspace();
  realConfig(ws, 'acme/bert-features');
  const oneError = (output: string) => {
    assert.equal(output.match(/^error: /gm)?.length, 1, output);
    assert.doesNotMatch(output, /internal error|at .*\.js:\d+/);
  };
  const wrongToken = await make(ws, ['pin'], { HF_TOKEN: 'hf_wrong', KAGGLE_USERNAME: KAGGLE.user, KAGGLE_KEY: KAGGLE.key });
  assert.notEqual(wrongToken.code, 0);
  assert.match(wrongToken.output, /error: model\.hub\.revision: .*\/api\/models\/acme\/bert-features\/revision\/main was refused \(HTTP 401 Unauthorized\): the hub refused the HF_TOKEN that was sent: check that it is valid and has read access/);
  const noToken = await make(ws, ['pin'], { KAGGLE_USERNAME: KAGGLE.user, KAGGLE_KEY: KAGGLE.key });
  assert.match(noToken.output, /was refused \(HTTP 401 Unauthorized\): a private or gated repository needs an access token .* set HF_TOKEN/);
  oneError(noToken.output);
  oneError(wrongToken.output);

  realConfig(ws, 'acme/bert-features', { files: ['onnx/model.onnx', 'onnx/missing.onnx'] });
  const missing = await make(ws, ['pin']);
  assert.notEqual(missing.code, 0);
  assert.match(missing.output, /error: model\.hub\.files\.onnx\/missing\.onnx: .*\/acme\/bert-features\/resolve\/c0ffee[0-9a-f]+\/onnx\/missing\.onnx does not exist \(HTTP 404 Not Found\)/);
  oneError(missing.output);

  const closed = createServer();
  closed.listen(0, '127.0.0.1');
  await once(closed, 'listening');
  const deadPort = (closed.address() as { port: number }).port;
  closed.close();
  realConfig(ws, 'acme/bert-features', { baseUrl: `http://127.0.0.1:${deadPort}` });
  const unreachable = await make(ws, ['pin']);
  assert.notEqual(unreachable.code, 0);
  assert.match(unreachable.output, new RegExp(`error: model\\.hub\\.revision: cannot reach http://127\\.0\\.0\\.1:${deadPort} \\(ECONNREFUSED\\)`));
  oneError(unreachable.output);
  assert.match(readFileSync(ws.config, 'utf8'), /revision: main/, 'nothing is written when pinning fails');

  realConfig(ws, 'acme/bert-features');
  const noKaggle = await make(ws, ['pin'], { HF_TOKEN: TOKEN });
  assert.notEqual(noKaggle.code, 0);
  assert.match(noKaggle.output, /error: ingest\.source: downloading from Kaggle needs your API token: set KAGGLE_USERNAME and KAGGLE_KEY, or save kaggle\.json .* as .*no-kaggle-json\/kaggle\.json/);
  oneError(noKaggle.output);

  const wrongKaggle = await make(ws, ['pin'], { HF_TOKEN: TOKEN, KAGGLE_USERNAME: KAGGLE.user, KAGGLE_KEY: 'wrong' });
  assert.notEqual(wrongKaggle.code, 0);
  assert.match(wrongKaggle.output, /error: ingest\.source: .*datasets\/download\/hijest\/genre-classification-dataset-imdb was refused \(HTTP 401 Unauthorized\): check KAGGLE_USERNAME and KAGGLE_KEY/);
  oneError(wrongKaggle.output);
});

test('make pin refuses a web page for data, writes through a symbolic link, and refuses --set (it writes the file as the file is)', async () => {
  const ws = workspace();
  const env = { KAGGLE_USERNAME: KAGGLE.user, KAGGLE_KEY: KAGGLE.key };
  ws.write('page.yaml', `ingest:\n  source: kaggle://owner/rules-not-accepted\n  sha256: PIN-ME\n  download:\n    kaggle_api: ${base}/kaggle/api/v1\n`);
  const page = await make(ws, ['pin', `CONFIG=${join(ws.dir, 'page.yaml')}`], env);
  assert.notEqual(page.code, 0);
  assert.match(page.output, /error: pin: kaggle:\/\/owner\/rules-not-accepted answered with a web page, not data/);
  assert.match(readFileSync(join(ws.dir, 'page.yaml'), 'utf8'), /sha256: PIN-ME/, 'nothing was pinned');

  realConfig(ws, 'acme/bert-features');
  const link = join(ws.dir, 'linked.yaml');
  symlinkSync(ws.config, link);
  const refused = await make(ws, ['pin', `CONFIG=${link}`, 'SET=seed=3']);
  assert.notEqual(refused.code, 0);
  assert.match(refused.output, /error: pin: --set \(SET=\) does not apply: make pin writes the pins of .*linked\.yaml as the file is/);
  const pinned = await make(ws, ['pin', `CONFIG=${link}`]);
  assert.equal(pinned.code, 0, pinned.output);
  assert.ok(lstatSync(link).isSymbolicLink(), 'the link is still a link');
  assert.match(readFileSync(ws.config, 'utf8'), new RegExp(`revision: ${COMMIT}`), 'the file it names is pinned');
});
