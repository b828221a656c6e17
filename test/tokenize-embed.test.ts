import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { once } from 'node:events';
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { BertTokenizer } from '../pipeline/tokenizer/index.js';
import { readEmbeddings, readTokens } from '../pipeline/arrow/index.js';
import { poolBatch } from '../pipeline/onnx/pooling.js';
import { planBatches, planShards, paddedTokens } from '../pipeline/embed/batches.js';
import { sha256 } from '../pipeline/hash.js';
import { REPO, kaggleLines, runProgram, runProgramAsync, killEmbedAfterShards, workspace, type Workspace } from './helpers/workspace.js';

const MODEL = join(REPO, 'models', 'demo-bert-random');
const WORDS = ['cowboy', 'sheriff', 'alien', 'spaceship', 'ghost', 'haunted', 'wedding', 'love', 'detective', 'robbery', 'the', 'a', 'city', 'night'];

/** A data set whose descriptions vary in length (3 to ~150 words), so batches and shards differ. */
function pipelineWorkspace(extra = '', rows = 240): Workspace {
  const embed = extra.includes('embed:') ? '' : 'embed:\n  providers: [cpu]\n  threads: 1\n';
  const ws = workspace(`seed: 3\ningest:\n  source: data\nmodel:\n  path: ${MODEL}\n${embed}${extra}`);
  const genres = ['western', 'sci-fi', 'horror', 'romance'];
  const text = (i: number) => Array.from({ length: 3 + ((i * 37) % 150) }, (_, k) => WORDS[(i * 7 + k * 3) % WORDS.length]).join(' ') + '.';
  const train = Array.from({ length: rows }, (_, i) => ({ id: i + 1, genre: genres[i % 4], text: text(i) }));
  const test = Array.from({ length: rows / 4 }, (_, i) => ({ id: i + 1, genre: genres[i % 4], text: text(i + 1000) }));
  ws.write('data/train_data.txt', kaggleLines(train));
  ws.write('data/test_data_solution.txt', kaggleLines(test));
  return ws;
}

function runStages(ws: Workspace, stages: string[], args: string[] = []) {
  for (const stage of stages) {
    const result = runProgram(ws, `stages/${stage}`, args);
    assert.equal(result.code, 0, `${stage}: ${result.stderr}`);
  }
}

const runLink = (ws: Workspace, stage: string) => join(ws.artifacts, 'runs', 'config', stage);
const fileHashes = (dir: string) => Object.fromEntries(['train.arrow', 'test.arrow'].map((f) => [f, sha256(readFileSync(join(dir, f)))]));

test('the committed tokenizer gives [CLS] pieces [SEP] and cuts long texts as BertTokenizerFast does', () => {
  const tokenizer = BertTokenizer.load(join(MODEL, 'tokenizer.json'), join(MODEL, 'tokenizer_config.json'));
  const vocab = JSON.parse(readFileSync(join(MODEL, 'tokenizer.json'), 'utf8')).model.vocab as Record<string, number>;
  const short = tokenizer.encode('A Cowboy meets an ALIEN!', 128);
  assert.deepEqual(short.ids, [101, vocab.a, vocab.cowboy, vocab.meets, vocab.an, vocab.alien, vocab['!'], 102]);
  assert.equal(short.truncated, false);
  // An unknown word is spelled with pieces; accents are stripped.
  assert.deepEqual(tokenizer.encode('Zébu', 128).ids, [101, vocab.z, vocab['##e'], vocab['##b'], vocab['##u'], 102]);
  const long = tokenizer.encode('cowboy '.repeat(300), 16);
  assert.equal(long.ids.length, 16);
  assert.equal(long.ids[0], 101);
  assert.equal(long.ids[15], 102);
  assert.deepEqual(long.ids.slice(1, 15), Array(14).fill(vocab.cowboy));
  assert.equal(long.truncated, true);
});

test('mean pooling averages only the real tokens of each row', () => {
  // batch 2, length 3, hidden 2; row 0 has 3 real tokens, row 1 has 1 (two padding positions).
  const hidden = Float32Array.from([1, 2, 3, 4, 5, 9, 10, 20, 99, 99, 99, 99]);
  const out: number[][] = [];
  poolBatch('mean', hidden, 2, 3, 2, [3, 1], (_b, v) => out.push(Array.from(v)));
  assert.deepEqual(out, [[3, 5], [10, 20]]);
  const cls: number[][] = [];
  poolBatch('cls', hidden, 2, 3, 2, [3, 1], (_b, v) => cls.push(Array.from(v)));
  assert.deepEqual(cls, [[1, 2], [10, 20]]);
});

test('batches respect the token budget and pad far less than fixed-length padding', () => {
  const lengths = Int32Array.from({ length: 1000 }, (_, i) => 10 + ((i * 7919) % 119));
  const shards = planShards(lengths, 256);
  assert.equal(shards.length, 4);
  for (const shard of shards) {
    for (let i = 1; i < shard.rows.length; i++) assert.ok(lengths[shard.rows[i - 1]!]! <= lengths[shard.rows[i]!]!);
    for (const batch of planBatches(shard, lengths, 2048)) assert.ok((batch.end - batch.start) * batch.length <= 2048 || batch.end - batch.start === 1);
  }
  const padded = shards.reduce((n, s) => n + paddedTokens(planBatches(s, lengths, 2048)), 0);
  const real = lengths.reduce((a, b) => a + b, 0);
  assert.ok(padded < real * 1.05, `padded ${padded} vs real ${real}`);
  assert.ok(padded < 1000 * 128 * 0.7);
});

test('tokenize writes ids aligned with ingest rows, and statistics', () => {
  const ws = pipelineWorkspace('tokenize:\n  max_length: 64\n');
  runStages(ws, ['ingest', 'tokenize']);
  const tokens = readTokens(join(runLink(ws, 'tokenize'), 'train.arrow'));
  assert.equal(tokens.offsets.length - 1, 240);
  const stats = JSON.parse(readFileSync(join(runLink(ws, 'tokenize'), 'stats.json'), 'utf8'));
  assert.equal(stats.max_length, 64);
  assert.ok(stats.splits.train.truncated_fraction > 0.3 && stats.splits.train.truncated_fraction < 0.8, JSON.stringify(stats.splits.train));
  assert.equal(stats.splits.train.max, 64);
  // Row 0 of train.arrow is row 0 of train.parquet: "western" text number 0 has 3 words.
  assert.equal(tokens.offsets[1]! - tokens.offsets[0]!, 3 + 1 + 2);
});

test('embeddings come back in ingest row order and match a one-row run of the model', async () => {
  const ws = pipelineWorkspace('embed:\n  providers: [cpu]\n  threads: 1\n  shard_rows: 64\n  batch_tokens: 1024\n');
  runStages(ws, ['ingest', 'tokenize', 'embed']);
  const { vectors, hidden } = readEmbeddings(join(runLink(ws, 'embed'), 'train.arrow'));
  assert.equal(hidden, 128);
  assert.equal(vectors.length, 240 * 128);
  const tokens = readTokens(join(runLink(ws, 'tokenize'), 'train.arrow'));
  const session = await ort.InferenceSession.create(join(MODEL, 'model.onnx'));
  for (const row of [0, 1, 57, 239]) {
    const ids = Array.from(tokens.ids.subarray(tokens.offsets[row]!, tokens.offsets[row + 1]!));
    const dims = [1, ids.length];
    const result = await session.run({
      input_ids: new ort.Tensor('int64', BigInt64Array.from(ids.map(BigInt)), dims),
      attention_mask: new ort.Tensor('int64', new BigInt64Array(ids.length).fill(1n), dims),
      token_type_ids: new ort.Tensor('int64', new BigInt64Array(ids.length), dims),
    });
    const states = result.last_hidden_state!.data as Float32Array;
    for (const h of [0, 17, 127]) {
      let mean = 0;
      for (let t = 0; t < ids.length; t++) mean += states[t * hidden + h]!;
      mean /= ids.length;
      assert.ok(Math.abs(mean - vectors[row * hidden + h]!) < 1e-4, `row ${row} dim ${h}: ${mean} vs ${vectors[row * hidden + h]}`);
    }
  }
  const manifest = JSON.parse(readFileSync(join(runLink(ws, 'embed'), 'manifest.json'), 'utf8'));
  assert.equal(manifest.details.provider, 'cpu');
  assert.ok(manifest.timings.session_seconds > 0);
  assert.ok(manifest.details.shards >= 4);
});

test('embed killed with SIGKILL resumes from the shards it finished (kept in the vector cache) and ends byte-identical', async () => {
  const extra = 'embed:\n  providers: [cpu]\n  threads: 1\n  shard_rows: 16\n  batch_tokens: 512\n';
  const reference = pipelineWorkspace(extra, 320);
  runStages(reference, ['ingest', 'tokenize', 'embed']);

  const ws = pipelineWorkspace(extra, 320);
  runStages(ws, ['ingest', 'tokenize']);
  await killEmbedAfterShards(ws, 3);
  assert.equal(existsSync(runLink(ws, 'embed')), false);
  const rerun = runProgram(ws, 'stages/embed');
  assert.equal(rerun.code, 0, rerun.stderr);
  const manifest = JSON.parse(readFileSync(join(runLink(ws, 'embed'), 'manifest.json'), 'utf8'));
  assert.ok(manifest.details.rows_from_cache >= 3 * 16, `at least the 3 finished shards came from the cache: ${rerun.stderr}`);
  assert.equal(manifest.details.rows_computed + manifest.details.rows_from_cache + manifest.details.rows_repeating_another, 400);
  assert.match(rerun.stderr, new RegExp(`${manifest.details.rows_computed} computed, ${manifest.details.rows_from_cache} from the vector cache`));
  assert.deepEqual(fileHashes(runLink(ws, 'embed')), fileHashes(runLink(reference, 'embed')));
});

test('--shard i/n slices merged with --merge n equal a single run, byte for byte', () => {
  const extra = 'embed:\n  providers: [cpu]\n  threads: 1\n  shard_rows: 32\n';
  const single = pipelineWorkspace(extra);
  runStages(single, ['ingest', 'tokenize', 'embed']);
  const ws = pipelineWorkspace(extra);
  runStages(ws, ['ingest', 'tokenize']);
  const missing = runProgram(ws, 'stages/embed', ['--merge', '3']);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /slice 0\/3 is missing/);
  // Each slice on its own "machine" (its own store, so its own vector cache), gathered into one store for the merge.
  for (const i of [2, 0, 1]) {
    const machine = join(ws.dir, `machine-${i}`);
    runStages(ws, ['ingest', 'tokenize'], ['--artifacts', machine]);
    assert.equal(runProgram(ws, 'stages/embed', ['--shard', `${i}/3`, '--artifacts', machine]).code, 0);
    assert.equal(existsSync(join(machine, 'runs', 'config', 'embed')), false, 'a slice is not the stage artifact');
    cpSync(join(machine, 'embed-slice'), join(ws.artifacts, 'embed-slice'), { recursive: true });
  }
  const merged = runProgram(ws, 'stages/embed', ['--merge', '3']);
  assert.equal(merged.code, 0, merged.stderr);
  // Nothing is computed at the merge: every row's vector came from a slice.
  assert.match(merged.stderr, /embed: 300 rows: 0 computed, \d+ from the vector cache(, \d+ repeating another row)?; \d+ rows imported from 3 slices/);
  assert.deepEqual(fileHashes(runLink(ws, 'embed')), fileHashes(runLink(single, 'embed')));
});

test('a hub model is downloaded once with pinned checksums; a wrong checksum is refused', async () => {
  const files = ['model.onnx', 'tokenizer.json', 'tokenizer_config.json', 'config.json'];
  const served: string[] = [];
  const server = createServer((req, res) => {
    served.push(req.url!);
    const match = /^\/acme\/bert-random\/resolve\/v1\/(onnx\/)?([\w.]+)$/.exec(req.url!);
    if (!match || !files.includes(match[2]!)) return res.writeHead(404).end();
    res.end(readFileSync(join(MODEL, match[2]!)));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const sums = files.map((f) => `      ${f === 'model.onnx' ? 'onnx/model.onnx' : f}: '${sha256(readFileSync(join(MODEL, f)))}'`).join('\n');
    const hub = (s: string) => `seed: 3\ningest:\n  source: data\nmodel:\n  hub:\n    repo: acme/bert-random\n    revision: v1\n    base_url: ${base}\n    files:\n${s}\nembed:\n  providers: [cpu]\n`;
    const ws = pipelineWorkspace();
    ws.write('config.yaml', hub(sums));
    for (const stage of ['ingest', 'tokenize', 'embed']) {
      const result = await runProgramAsync(ws, `stages/${stage}`);
      assert.equal(result.code, 0, result.stderr);
    }
    assert.equal(served.length, 4);
    const again = await runProgramAsync(ws, 'stages/embed', ['--artifacts', join(ws.dir, 'fresh')]);
    assert.notEqual(again.code, 0, 'a fresh store has no tokenize artifact');
    assert.equal(served.length, 4, 'planning never downloads');
    ws.write('config.yaml', hub(sums.replace(/config\.json: '[0-9a-f]+'/, `config.json: '${'1'.repeat(64)}'`)));
    const bad = await runProgramAsync(ws, 'stages/tokenize');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /model\.hub: checksum mismatch for .*config\.json/);
  } finally {
    server.close();
  }
});

test('token ids outside the model vocabulary are a clear error, not a crash in ONNX Runtime', () => {
  const ws = pipelineWorkspace();
  cpSync(MODEL, join(ws.dir, 'small-vocab'), { recursive: true });
  const config = JSON.parse(readFileSync(join(ws.dir, 'small-vocab', 'config.json'), 'utf8'));
  writeFileSync(join(ws.dir, 'small-vocab', 'config.json'), JSON.stringify({ ...config, vocab_size: 150 }));
  ws.write('config.yaml', readFileSync(ws.config, 'utf8').replace(MODEL, 'small-vocab'));
  runStages(ws, ['ingest', 'tokenize']);
  const result = runProgram(ws, 'stages/embed');
  assert.equal(result.code, 1);
  assert.match(result.stderr, /^error: embed: train row \d+ has token id \d+, outside the model's vocabulary of 150/m);
});

test('max_length beyond the model and a bad --shard are clear errors', () => {
  const ws = pipelineWorkspace();
  runStages(ws, ['ingest']);
  const long = runProgram(ws, 'stages/tokenize', ['--set', 'tokenize.max_length=1024']);
  assert.equal(long.code, 1);
  assert.match(long.stderr, /tokenize\.max_length: 1024 is more than the model's 512 positions/);
  runStages(ws, ['tokenize']);
  const shard = runProgram(ws, 'stages/embed', ['--shard', '3/2']);
  assert.equal(shard.code, 1);
  assert.match(shard.stderr, /expected i\/n with 0 <= i < n/);
});

test('the Arrow files carry each row\'s id (as in the Parquet file) and say in their metadata what made them', async () => {
  const { readArrowMetadata, readRowIds } = await import('../pipeline/arrow/index.js');
  const { readParquet } = await import('../pipeline/parquet/index.js');
  const ws = pipelineWorkspace();
  runStages(ws, ['ingest', 'tokenize', 'embed']);
  for (const split of ['train', 'test']) {
    const parquetIds = (await readParquet<{ id: string }>(join(runLink(ws, 'ingest'), `${split}.parquet`), ['id'])).map((r) => r.id);
    assert.deepEqual(readRowIds(join(runLink(ws, 'tokenize'), `${split}.arrow`)), parquetIds);
    assert.deepEqual(readRowIds(join(runLink(ws, 'embed'), `${split}.arrow`)), parquetIds);
  }
  const tokens = readArrowMetadata(join(runLink(ws, 'tokenize'), 'train.arrow'));
  assert.equal(tokens.max_length, '128');
  assert.equal(tokens.rows_align_with, 'ingest train.parquet');
  const vectors = readArrowMetadata(join(runLink(ws, 'embed'), 'test.arrow'));
  const manifest = JSON.parse(readFileSync(join(runLink(ws, 'embed'), 'manifest.json'), 'utf8'));
  assert.equal(vectors.featurizer, 'bert');
  assert.equal(vectors.pooling, 'mean');
  assert.equal(vectors.model_sha256, manifest.sources['model/model.onnx']);
  assert.equal(vectors.rows_align_with, 'ingest test.parquet');
});
