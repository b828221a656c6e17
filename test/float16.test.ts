import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readArrowMetadata } from '../pipeline/arrow/index.js';
import { halfBits } from '../pipeline/onnx/float16.js';
import { REPO, embeddedDemoWorkspace, minRowCosine, runProgram } from './helpers/workspace.js';

const MODEL = join(REPO, 'models', 'demo-bert-random');
const bits = (x: number) => halfBits(new Float32Array([x]))[0]!;

test('float16 bits are IEEE 754 half precision, rounded to nearest even, clamped to the finite range', () => {
  assert.equal(bits(1), 0x3c00);
  assert.equal(bits(-2), 0xc000);
  assert.equal(bits(0.1), 0x2e66);
  assert.equal(bits(65504), 0x7bff);
  assert.equal(bits(1e6), 0x7bff, 'too large: the largest finite half, not infinity');
  assert.equal(bits(-3.4e38), 0xfbff, 'a mask constant of -FLT_MAX stays finite');
  assert.equal(bits(2049), 0x6800, '2049 lies halfway between 2048 and 2050: to even');
  assert.equal(bits(2051), 0x6802, '2051 lies halfway between 2050 and 2052: to even');
  assert.equal(bits(6.1035156e-5), 0x0400, 'the smallest normal');
  assert.equal(bits(6e-8), 0x0001, 'the smallest subnormal');
  assert.equal(bits(1e-9), 0x0000);
  assert.equal(bits(Number.NaN) & 0x7c00, 0x7c00);
  assert.notEqual(bits(Number.NaN) & 0x3ff, 0);
});

test('fp16 made in the pipeline from the committed demo model: cosine >= 0.999 to fp32 on the demo data, keyed apart, cached, and a warning on cpu', () => {
  const { ws, fp32Key } = embeddedDemoWorkspace(MODEL);

  const fp16 = runProgram(ws, 'stages/embed', ['--set', 'model.precision=fp16']);
  assert.equal(fp16.code, 0, fp16.stderr);
  assert.match(fp16.stderr, /converted model\.onnx to float16 in [\d.]+s: \d+ float tensors as float16, float32 outputs/);
  assert.match(fp16.stderr, /warning: float16 on the cpu provider runs slower/);
  const fp16Manifest = JSON.parse(readFileSync(join(ws.artifacts, 'runs', 'config', 'embed', 'manifest.json'), 'utf8'));
  assert.notEqual(fp16Manifest.key, fp32Key, 'fp16 vectors are another artifact');
  assert.equal(fp16Manifest.details.precision, 'fp16');
  assert.ok(fp16Manifest.details.model_adaptation.float16.tensors > 10);

  const minCosine = minRowCosine(ws.artifacts, fp32Key, fp16Manifest.key);
  assert.ok(minCosine >= 0.999, `min cosine ${minCosine}`);
  assert.ok(minCosine < 1, 'the fp16 vectors are not the fp32 ones');
  // The files say what made them; how the model file was converted is in the manifest (above).
  assert.equal(readArrowMetadata(join(ws.artifacts, 'embed', fp16Manifest.key, 'train.arrow')).precision, 'fp16');
  assert.equal(readArrowMetadata(join(ws.artifacts, 'embed', fp32Key, 'train.arrow')).precision, 'fp32');

  for (const stage of ['ingest', 'tokenize']) assert.equal(runProgram(ws, `stages/${stage}`, ['--artifacts', join(ws.dir, 'fresh')]).code, 0);
  const cached = runProgram(ws, 'stages/embed', ['--set', 'model.precision=fp16', '--artifacts', join(ws.dir, 'fresh')]);
  assert.equal(cached.code, 0, cached.stderr);
  assert.match(cached.stderr, /using the float16 model converted from model\.onnx \(cached/);
});
