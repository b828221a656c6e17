import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bertConfigJson, buildBertModel, type BertShape, type ExportShape } from '../../pipeline/testing/bert-graph.js';
import { REPO } from './workspace.js';

/** The committed demo model's tokenizer (528 words), shared by every test model. */
export const DEMO_MODEL = join(REPO, 'models', 'demo-bert-random');
const vocab = Object.keys(JSON.parse(readFileSync(join(DEMO_MODEL, 'tokenizer.json'), 'utf8')).model.vocab).length;

/** A small encoder: fast enough to embed a few hundred rows in a test. */
export const TINY: BertShape = { layers: 2, hidden: 32, heads: 2, intermediate: 64, vocab, maxPositions: 512, typeVocab: 2 };

/**
 * Writes a model folder as a hub repository or `optimum-cli` would lay it out: the ONNX export
 * (in `onnx/` when `onnxDir`), its int8 twin when `quantized`, config.json and the tokenizer.
 * Exports of one seed share their encoder's weights, whatever their shape.
 */
export function writeModelFolder(dir: string, exportShape: ExportShape & { withQuantized?: boolean; onnxDir?: boolean } = {}, seed = 7, shape = TINY): string {
  const onnxDir = exportShape.onnxDir ? join(dir, 'onnx') : dir;
  mkdirSync(onnxDir, { recursive: true });
  writeFileSync(join(onnxDir, 'model.onnx'), buildBertModel(shape, seed, exportShape));
  if (exportShape.withQuantized) writeFileSync(join(onnxDir, 'model_quantized.onnx'), buildBertModel(shape, seed, { ...exportShape, quantized: true }));
  const config = bertConfigJson(shape, exportShape.task);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
  for (const file of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(DEMO_MODEL, file), join(dir, file));
  return dir;
}
