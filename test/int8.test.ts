import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, embeddedDemoWorkspace, minRowCosine, runProgram } from './helpers/workspace.js';

const MODEL = join(REPO, 'models', 'demo-bert-random');

test('int8 made in the pipeline from the committed demo model: cosine >= 0.99 to fp32 on the demo data, keyed apart, and cached', () => {
  const { ws, fp32Key } = embeddedDemoWorkspace(MODEL);

  const int8 = runProgram(ws, 'stages/embed', ['--set', 'model.precision=int8']);
  assert.equal(int8.code, 0, int8.stderr);
  assert.match(int8.stderr, /quantized model\.onnx to int8 in [\d.]+s: 13 MatMuls as DynamicQuantizeMatMul/);
  const int8Manifest = JSON.parse(readFileSync(join(ws.artifacts, 'runs', 'config', 'embed', 'manifest.json'), 'utf8'));
  assert.notEqual(int8Manifest.key, fp32Key, 'int8 vectors are another artifact');
  assert.equal(int8Manifest.details.model_adaptation.quantized.matmuls, 13);

  const minCosine = minRowCosine(ws.artifacts, fp32Key, int8Manifest.key);
  assert.ok(minCosine >= 0.99, `min cosine ${minCosine}`);
  assert.ok(minCosine < 1, 'the int8 vectors are not the fp32 ones');

  for (const stage of ['ingest', 'tokenize']) assert.equal(runProgram(ws, `stages/${stage}`, ['--artifacts', join(ws.dir, 'fresh')]).code, 0);
  const cached = runProgram(ws, 'stages/embed', ['--set', 'model.precision=int8', '--artifacts', join(ws.dir, 'fresh')]);
  assert.equal(cached.code, 0, cached.stderr);
  assert.match(cached.stderr, /using the int8 model quantized from model\.onnx \(cached/);
  assert.doesNotMatch(cached.stderr, /quantized model\.onnx to int8 in/);
});
