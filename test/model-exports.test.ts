import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import onnxProto from 'onnx-proto';
import { rowCosines } from '../pipeline/onnx/pooling.js';
import { readEmbeddings } from '../pipeline/arrow/index.js';
import { deriveEncoder } from '../pipeline/onnx/derive.js';
import type { ExportShape } from '../pipeline/testing/bert-graph.js';
import { REPO, kaggleLines, runProgram, workspace, type Workspace } from './helpers/workspace.js';
import { TINY, writeModelFolder } from './helpers/models.js';
import { sha256 } from '../pipeline/hash.js';

const WORDS = ['cowboy', 'sheriff', 'alien', 'spaceship', 'ghost', 'haunted', 'wedding', 'love', 'detective', 'robbery', 'the', 'a', 'city', 'night'];

/** A data set and one config per model folder; ingest and tokenize are shared (same tokenizer). */
function exportsWorkspace(): Workspace {
  const ws = workspace();
  const genres = ['western', 'sci-fi', 'horror', 'romance'];
  const text = (i: number) => Array.from({ length: 3 + ((i * 37) % 60) }, (_, k) => WORDS[(i * 7 + k * 3) % WORDS.length]).join(' ') + '.';
  ws.write('data/train_data.txt', kaggleLines(Array.from({ length: 80 }, (_, i) => ({ id: i + 1, genre: genres[i % 4], text: text(i) }))));
  ws.write('data/test_data_solution.txt', kaggleLines(Array.from({ length: 20 }, (_, i) => ({ id: i + 1, genre: genres[i % 4], text: text(i + 500) }))));
  return ws;
}

function configFor(ws: Workspace, name: string, model: string, extra = ''): string {
  return ws.write(`${name}.yaml`, `run: ${name}\nseed: 3\ningest:\n  source: data\nmodel:\n  path: ${model}\n${extra}embed:\n  providers: [cpu]\n  threads: 1\n  shard_rows: 32\n`);
}

/** ingest, tokenize, embed; --verbose, since these tests read how the model was opened and fed. */
function embedWith(ws: Workspace, config: string, args: string[] = []) {
  for (const stage of ['ingest', 'tokenize', 'embed']) {
    const result = runProgram(ws, `stages/${stage}`, ['--config', config, '--verbose', ...args]);
    if (result.code !== 0) return result;
    if (stage === 'embed') return result;
  }
  throw new Error('unreachable');
}

function vectorsOf(ws: Workspace, run: string) {
  return ['train', 'test'].map((split) => readEmbeddings(join(ws.artifacts, 'runs', run, 'embed', `${split}.arrow`)).vectors);
}

function maxAbsDiff(a: Float32Array[], b: Float32Array[]): number {
  let max = 0;
  a.forEach((part, p) => {
    assert.equal(part.length, b[p]!.length);
    for (let i = 0; i < part.length; i++) max = Math.max(max, Math.abs(part[i]! - b[p]![i]!));
  });
  return max;
}

/** Embeds with a fill-mask export and with the feature-extraction export of the same weights. */
function compareFillMask(shape: ExportShape, precision: 'fp32' | 'int8' = 'fp32') {
  const ws = exportsWorkspace();
  const withQuantized = precision === 'int8';
  const features = writeModelFolder(join(ws.dir, 'features'), { ...shape, withQuantized });
  const fillMask = writeModelFolder(join(ws.dir, 'fill-mask'), { ...shape, task: 'fill-mask', withQuantized });
  const reference = embedWith(ws, configFor(ws, 'features', features), ['--set', `model.precision=${precision}`]);
  assert.equal(reference.code, 0, reference.stderr);
  const derived = embedWith(ws, configFor(ws, 'fill', fillMask), ['--set', `model.precision=${precision}`]);
  assert.equal(derived.code, 0, derived.stderr);
  return { ws, reference, derived, diff: maxAbsDiff(vectorsOf(ws, 'fill'), vectorsOf(ws, 'features')) };
}

test('a fill-mask export (only logits) is cut to its encoder, whose vectors equal the feature-extraction export of the same weights', () => {
  const { ws, derived, diff } = compareFillMask({ torchNames: true });
  assert.ok(diff <= 1e-5, `max abs diff ${diff}`);
  assert.match(derived.stderr, /model\.onnx is a fill-mask export \(its only output is logits over the \d+-word vocabulary\)/);
  assert.match(derived.stderr, /output \/bert\/encoder\/layer\.1\/output\/LayerNorm\/Add_1_output_0 as last_hidden_state, \d+ head nodes removed/);
  const manifest = JSON.parse(readFileSync(join(ws.artifacts, 'runs', 'fill', 'embed', 'manifest.json'), 'utf8'));
  const adaptation = manifest.details.model_adaptation;
  assert.deepEqual(adaptation.source_outputs, [`logits float32[batch_size, sequence_length, ${TINY.vocab}]`]);
  assert.equal(adaptation.output, 'last_hidden_state');
  assert.equal(adaptation.derived.from_sha256, manifest.sources['model/model.onnx']);
  assert.ok(existsSync(adaptation.derived.path), 'the derived model is kept in the cache');
});

test('the derived model is reused from the cache by a later run, and a fresh store gets the same vectors', () => {
  const { ws } = compareFillMask({});
  const fresh = embedWith(ws, join(ws.dir, 'fill.yaml'), ['--artifacts', join(ws.dir, 'second')]);
  assert.equal(fresh.code, 0, fresh.stderr);
  assert.match(fresh.stderr, /using the encoder-only model derived from it \(cached/);
  assert.doesNotMatch(fresh.stderr, /deriving/);
  const first = vectorsOf(ws, 'fill');
  const second = ['train', 'test'].map((split) => readEmbeddings(join(ws.dir, 'second', 'runs', 'fill', 'embed', `${split}.arrow`)).vectors);
  assert.equal(maxAbsDiff(first, second), 0);
});

test('a derived model swapped or truncated in the cache is made again, and the manifest credits the file that ran', () => {
  const { ws } = compareFillMask({});
  const manifest = JSON.parse(readFileSync(join(ws.artifacts, 'runs', 'fill', 'embed', 'manifest.json'), 'utf8'));
  const derivedPath = manifest.details.model_adaptation.derived.path as string;
  assert.equal(manifest.details.model_adaptation.derived.sha256, sha256(readFileSync(derivedPath)), 'the manifest names the derived file by its sha256');
  const original = readFileSync(derivedPath);
  const first = vectorsOf(ws, 'fill');
  // Another model in its place (a valid ONNX file: it would run), then the file cut short.
  for (const [what, damage] of [['swapped', () => writeFileSync(derivedPath, readFileSync(join(ws.dir, 'features', 'model.onnx')))], ['truncated', () => writeFileSync(derivedPath, original.subarray(0, 1000))]] as const) {
    damage();
    const store = join(ws.dir, `after-${what}`);
    const rerun = embedWith(ws, join(ws.dir, 'fill.yaml'), ['--artifacts', store]);
    assert.equal(rerun.code, 0, `${what}: ${rerun.stderr}`);
    assert.match(rerun.stderr, /warning: the cached .* cannot be trusted \(model\.onnx (does not match its sha256|has \d+ bytes)/, what);
    assert.match(rerun.stderr, /deriving an encoder-only model/, what);
    const again = ['train', 'test'].map((split) => readEmbeddings(join(store, 'runs', 'fill', 'embed', `${split}.arrow`)).vectors);
    assert.equal(maxAbsDiff(first, again), 0, `${what}: the vectors of the model made again`);
    assert.ok(readFileSync(derivedPath).equals(original), `${what}: the cache holds the derived model again`);
  }
});

test('an export without token_type_ids is fed only the inputs it declares, fill-mask or not', () => {
  const { derived, reference, diff } = compareFillMask({ tokenTypeIds: false, torchNames: true });
  assert.ok(diff <= 1e-5, `max abs diff ${diff}`);
  for (const run of [derived, reference]) assert.match(run.stderr, /feeding input_ids, attention_mask$/m);
});

test('int32 inputs are fed as int32', () => {
  const { reference, diff } = compareFillMask({ idType: 'int32' });
  assert.ok(diff <= 1e-5, `max abs diff ${diff}`);
  assert.match(reference.stderr, /feeding input_ids \(int32\), attention_mask \(int32\), token_type_ids \(int32\)/);
});

test('the quantized fill-mask file (model_quantized.onnx) is cut the same way with model.precision int8', () => {
  const { derived, diff } = compareFillMask({ torchNames: true }, 'int8');
  assert.ok(diff <= 1e-5, `max abs diff ${diff}`);
  assert.match(derived.stderr, /model_quantized\.onnx is a fill-mask export/);
});

test('the derived model does not compute the vocabulary projection', () => {
  const ws = workspace();
  const dir = writeModelFolder(join(ws.dir, 'fill-mask'), { task: 'fill-mask', torchNames: true });
  const cut = deriveEncoder(readFileSync(join(dir, 'model.onnx')), 'logits', TINY.vocab);
  const model = onnxProto.onnx.ModelProto.decode(cut.bytes);
  assert.deepEqual(model.graph!.output!.map((o) => o.name), ['last_hidden_state']);
  assert.equal(model.graph!.node!.filter((n) => n.name!.startsWith('/cls/')).length, 0, 'no node of the head is left');
  // The decoder read the word embeddings through a Transpose: only the embedding lookup reads them now.
  const readers = model.graph!.node!.filter((n) => n.input!.includes('bert.embeddings.word_embeddings.weight'));
  assert.deepEqual(readers.map((n) => n.opType), ['Gather']);
  assert.ok(cut.removedNodes >= 10, `${cut.removedNodes} nodes removed`);
});

test('pooling: pooler on a model without pooler_output names the file and its outputs', () => {
  const ws = exportsWorkspace();
  const model = writeModelFolder(join(ws.dir, 'no-pooler'), { pooler: false });
  const result = embedWith(ws, configFor(ws, 'pooler', model), ['--set', 'embed.pooling=pooler']);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /^error: embed\.pooling: pooler needs a pooler_output, and .*no-pooler\/model\.onnx has only last_hidden_state float32\[batch_size, sequence_length, 32\]; use embed\.pooling: mean or cls/m);
  assert.doesNotMatch(result.stderr, /internal error/);
});

test('a model with neither hidden states nor masked-LM logits, or with an input it cannot feed, is one clear error', () => {
  const ws = exportsWorkspace();
  const dir = writeModelFolder(join(ws.dir, 'sentence'), {});
  // A sentence-embedding export: one pooled output and nothing per token.
  const { onnx } = onnxProto;
  const model = onnx.ModelProto.decode(readFileSync(join(dir, 'model.onnx')));
  model.graph!.output = model.graph!.output!.filter((o) => o.name === 'pooler_output');
  model.graph!.output[0]!.name = 'pooler_output';
  writeFileSync(join(dir, 'model.onnx'), onnx.ModelProto.encode(model).finish());
  const result = embedWith(ws, configFor(ws, 'sentence', dir));
  assert.equal(result.code, 1);
  assert.match(result.stderr, /^error: .*sentence\/model\.onnx: no per-token hidden states among its outputs \(pooler_output float32\[batch_size, 32\]\).*optimum-cli export onnx --model <repo> --task feature-extraction/m);

  const extra = onnx.ModelProto.decode(readFileSync(join(writeModelFolder(join(ws.dir, 'extra-input'), {}), 'model.onnx')));
  extra.graph!.input!.push({ name: 'pixel_values', type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT, shape: { dim: [{ dimParam: 'b' }] } } } });
  writeFileSync(join(ws.dir, 'extra-input', 'model.onnx'), onnx.ModelProto.encode(extra).finish());
  const input = embedWith(ws, configFor(ws, 'extra', join(ws.dir, 'extra-input')));
  assert.equal(input.code, 1);
  assert.match(input.stderr, /^error: .*extra-input\/model\.onnx: input pixel_values float32\[b\] is not one the embed stage can feed/m);
});

test('webgpu falls back to cpu with the reason in the log and the manifest when no GPU adapter exists', () => {
  const ws = exportsWorkspace();
  const config = configFor(ws, 'gpu', writeModelFolder(join(ws.dir, 'features'), {}));
  const result = embedWith(ws, config, ['--set', 'embed.providers=[webgpu,cpu]']);
  assert.equal(result.code, 0, result.stderr);
  const manifest = JSON.parse(readFileSync(join(ws.artifacts, 'runs', 'gpu', 'embed', 'manifest.json'), 'utf8'));
  if (manifest.details.provider === 'webgpu') {
    assert.deepEqual(manifest.details.provider_fallbacks, []);
    return;
  }
  assert.equal(manifest.details.provider, 'cpu');
  assert.match(manifest.details.provider_fallbacks[0], /^webgpu provider unavailable \(.*\); it needs a GPU whose driver provides Vulkan \(check with `vulkaninfo --summary`\)$/);
  assert.match(result.stderr, /embed: webgpu provider unavailable/);
});

test('webgpu vectors equal the cpu ones within 1e-3 on the demo data, and fp16 on webgpu keeps cosine >= 0.999 (where a GPU adapter exists)', async (t) => {
  const ort = await import('onnxruntime-node');
  try {
    const probe = await ort.InferenceSession.create(join(REPO, 'models', 'demo-bert-random', 'model.onnx'), { executionProviders: ['webgpu'], logSeverityLevel: 4 });
    await probe.release();
  } catch (error) {
    return t.skip(`no WebGPU adapter on this machine (${((error as Error).message.match(/Failed to get a WebGPU adapter: [^\n]*/) ?? ['session failed'])[0]})`);
  }
  const ws = exportsWorkspace();
  const model = join(REPO, 'models', 'demo-bert-random');
  assert.equal(embedWith(ws, configFor(ws, 'cpu', model), ['--set', 'embed.providers=[cpu]']).code, 0);
  const gpu = embedWith(ws, configFor(ws, 'webgpu', model), ['--set', 'embed.providers=[webgpu]']);
  assert.equal(gpu.code, 0, gpu.stderr);
  const diff = maxAbsDiff(vectorsOf(ws, 'webgpu'), vectorsOf(ws, 'cpu'));
  assert.ok(diff <= 1e-3, `max abs diff ${diff}`);
  const half = embedWith(ws, configFor(ws, 'webgpu-fp16', model, '  precision: fp16\n'), ['--set', 'embed.providers=[webgpu]']);
  assert.equal(half.code, 0, half.stderr);
  const cpu = vectorsOf(ws, 'cpu');
  const { hidden } = readEmbeddings(join(ws.artifacts, 'runs', 'cpu', 'embed', 'train.arrow'));
  vectorsOf(ws, 'webgpu-fp16').forEach((part, p) => {
    for (const cosine of rowCosines(cpu[p]!, part, hidden)) assert.ok(cosine >= 0.999, `cosine ${cosine}`);
  });
});
