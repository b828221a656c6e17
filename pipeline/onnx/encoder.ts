import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { UserError } from '../errors.js';
import { detail, formatBytes, info, warn } from '../log.js';
import { cacheRoot } from '../download/index.js';
import { checkFolder, forgetFolder, recordFolder, recordedSha256 } from '../download/ledger.js';
import type { Pooling } from './pooling.js';
import { openSession, ort, type OpenSession, type Provider, type ProviderOptions } from './session.js';
import { deriveEncoder, ENCODER_DERIVATION_VERSION, NotAMaskedLmHead } from './derive.js';
import { quantizeDynamic, QUANTIZER_VERSION } from './quantize.js';
import { convertToFloat16, FLOAT16_VERSION } from './float16.js';

/** The integer inputs a BERT-family export may declare, and what the pipeline feeds each. */
export type InputRole = 'input_ids' | 'attention_mask' | 'token_type_ids' | 'position_ids';
const ROLES: readonly InputRole[] = ['input_ids', 'attention_mask', 'token_type_ids', 'position_ids'];

export interface EncoderInput {
  name: InputRole;
  type: 'int64' | 'int32';
}

/** How the model file was turned into per-token (or pooled) vectors: for the log and the manifest. */
export interface Adaptation {
  /** The outputs the published file declares, as `name [dims]`. */
  source_outputs: string[];
  /** The output the pipeline reads. */
  output: string;
  inputs: EncoderInput[];
  /** Set when the file was a fill-mask export and an encoder-only model was derived from it (`sha256`: of the model that ran). */
  derived?: { from_sha256: string; version: number; hidden_value: string; removed_nodes: number; path: string; sha256: string };
  /** Set when the pipeline quantized the (encoder-only) model to int8 itself. */
  quantized?: { from_sha256: string; version: number; matmuls: number; weight_mb_before: number; weight_mb_after: number; path: string; sha256?: string };
  /** Set when the pipeline converted the (encoder-only) model to float16 itself. */
  float16?: { from_sha256: string; version: number; tensors: number; weight_mb_before: number; weight_mb_after: number; path: string; sha256?: string };
}

/** An open model that yields hidden states (or the pooler output) and the inputs it takes. */
export interface Encoder {
  open: OpenSession;
  output: string;
  inputs: EncoderInput[];
  adaptation: Adaptation;
}

export interface EncoderOptions {
  pooling: Pooling;
  hidden: number;
  vocab: number;
  providers: readonly Provider[];
  threads: 'auto' | number;
  providerOptions?: ProviderOptions;
  /** Quantize the fp32 model to int8 (dynamic, per-column weights) and run that. */
  quantize?: boolean;
  /** Convert the fp32 model to float16 (float32 inputs and outputs kept) and run that. */
  float16?: boolean;
}

const HUB_HINT = 'export the checkpoint for feature extraction (`optimum-cli export onnx --model <repo> --task feature-extraction <dir>`) and set model.path to that folder';

/**
 * Opens the model and reads its graph's inputs and outputs instead of assuming their names:
 * a feature-extraction export is used as it is; a fill-mask export (only `logits`) is cut down
 * to its encoder once, cached by the file's sha256 and the derivation's version, and the cut
 * model is opened instead. Anything else is one error naming the file and what would work.
 */
export async function openEncoder(modelPath: string, sha256: string, options: EncoderOptions): Promise<Encoder> {
  if (options.quantize) return openConverted(modelPath, sha256, options, INT8);
  if (options.float16) return openConverted(modelPath, sha256, options, FLOAT16);
  const derivedPath = join(cacheRoot(), 'derived', `${sha256}-encoder-v${ENCODER_DERIVATION_VERSION}`, 'model.onnx');
  if (await trustedCacheFolder(dirname(derivedPath))) {
    const open = await openSession(derivedPath, options.providers, options.threads, options.providerOptions);
    const record = JSON.parse(readFileSync(join(derivedPath, '..', 'derivation.json'), 'utf8')) as Adaptation['derived'] & { source_outputs: string[] };
    info(`embed: ${basename(modelPath)} is a fill-mask export; using the encoder-only model derived from it (cached: ${derivedPath})`);
    return encoderFrom(open, modelPath, options, { ...record, path: derivedPath, sha256: recordedSha256(dirname(derivedPath), 'model.onnx')! }, record.source_outputs);
  }
  const open = await openSession(modelPath, options.providers, options.threads, options.providerOptions);
  const outputs = open.session.outputMetadata;
  const plan = chooseOutput(outputs, modelPath, options);
  if (plan.output) return encoderFrom(open, modelPath, options, undefined, outputs.map(describeValue));

  await open.session.release();
  const derived = await deriveAndCache(modelPath, sha256, plan.logits!, options.vocab, derivedPath, outputs.map(describeValue));
  const reopened = await openSession(derivedPath, options.providers, options.threads, options.providerOptions);
  return encoderFrom(reopened, modelPath, options, derived, outputs.map(describeValue));
}

function encoderFrom(open: OpenSession, modelPath: string, options: EncoderOptions, derived: Adaptation['derived'], sourceOutputs: string[], converted: Pick<Adaptation, 'quantized' | 'float16'> = {}): Encoder {
  const output = chooseOutput(open.session.outputMetadata, modelPath, options).output!;
  const inputs = chooseInputs(open.session.inputMetadata, modelPath);
  const fed = inputs.map((i) => (i.type === 'int64' ? i.name : `${i.name} (${i.type})`)).join(', ');
  detail(`embed: reading ${output} of ${basename(modelPath)}${converted.quantized ? ' (int8)' : converted.float16 ? ' (float16)' : ''}; feeding ${fed}`);
  if (converted.float16 && open.provider === 'cpu') warn('embed: warning: float16 on the cpu provider runs slower than float32 (ONNX Runtime casts back where it has no float16 kernel); model.precision fp16 is for GPU providers');
  return { open, output, inputs, adaptation: { source_outputs: sourceOutputs, output, inputs, derived, ...converted } };
}

/** A conversion of the fp32 encoder that the pipeline makes once and caches: int8 or float16. */
interface Conversion {
  name: 'int8' | 'float16';
  /** The log's verb: "quantized", "converted". */
  verb: string;
  version: number;
  /** Where the manifest records it (`model_adaptation.quantized` or `.float16`). */
  field: 'quantized' | 'float16';
  /** The record beside the cached model. */
  recordFile: string;
  convert(bytes: Uint8Array): { bytes: Uint8Array; summary: Record<string, number>; log: string };
}

const INT8: Conversion = {
  name: 'int8',
  verb: 'quantized',
  version: QUANTIZER_VERSION,
  field: 'quantized',
  recordFile: 'quantization.json',
  convert(bytes) {
    const q = quantizeDynamic(bytes);
    return { bytes: q.bytes, summary: { matmuls: q.matmuls, ...megabytes(q.weightBytes) }, log: `${q.matmuls} MatMuls as DynamicQuantizeMatMul` };
  },
};

const FLOAT16: Conversion = {
  name: 'float16',
  verb: 'converted',
  version: FLOAT16_VERSION,
  field: 'float16',
  recordFile: 'conversion.json',
  convert(bytes) {
    const h = convertToFloat16(bytes);
    return { bytes: h.bytes, summary: { tensors: h.tensors, ...megabytes(h.weightBytes) }, log: `${h.tensors} float tensors as float16, float32 outputs` };
  },
};

const megabytes = (weights: { before: number; after: number }) => ({ weight_mb_before: Math.round(weights.before / 2 ** 20), weight_mb_after: Math.round(weights.after / 2 ** 20) });

/**
 * int8 or float16 from an fp32 model: the fp32 encoder (the file itself, or the encoder cut from a
 * fill-mask export) is converted once and cached by the file's sha256, the conversion's version
 * and the derivation's, then that model runs.
 */
async function openConverted(modelPath: string, sha256: string, options: EncoderOptions, conversion: Conversion): Promise<Encoder> {
  const dir = join(cacheRoot(), 'derived', `${sha256}-${conversion.name}-v${conversion.version}-encoder-v${ENCODER_DERIVATION_VERSION}`);
  const path = join(dir, 'model.onnx');
  const { recordFile } = conversion;
  if (await trustedCacheFolder(dir)) {
    info(`embed: using the ${conversion.name} model ${conversion.verb} from ${basename(modelPath)} (cached: ${path})`);
  } else {
    const fp32 = await openEncoder(modelPath, sha256, { ...options, quantize: false, float16: false, providers: ['cpu'] });
    await fp32.open.session.release();
    const started = performance.now();
    const made = conversion.convert(readFileSync(fp32.adaptation.derived?.path ?? modelPath));
    const record = { from_sha256: sha256, version: conversion.version, ...made.summary };
    await publishCacheFolder(dir, { 'model.onnx': made.bytes, [recordFile]: `${JSON.stringify({ [conversion.field]: record, derived: fp32.adaptation.derived, source_outputs: fp32.adaptation.source_outputs }, null, 2)}\n` });
    info(
      `embed: ${conversion.verb} ${basename(modelPath)} to ${conversion.name} in ${((performance.now() - started) / 1000).toFixed(1)}s: ${made.log}, ` +
        `weights ${made.summary.weight_mb_before} -> ${made.summary.weight_mb_after} MB -> ${path}`,
    );
  }
  const record = JSON.parse(readFileSync(join(dir, recordFile), 'utf8')) as Record<string, unknown> & { derived: Adaptation['derived']; source_outputs: string[] };
  const open = await openSession(path, options.providers, options.threads, options.providerOptions);
  return encoderFrom(open, modelPath, options, record.derived, record.source_outputs, { [conversion.field]: { ...(record[conversion.field] as object), path, sha256: recordedSha256(dir, 'model.onnx') } });
}

/** Writes a folder of the cache whole, renames it into place, and records its files in the cache's ledger. */
async function publishCacheFolder(dir: string, files: Record<string, string | Uint8Array>): Promise<void> {
  const partial = `${dir}.partial-${process.pid}`;
  mkdirSync(partial, { recursive: true });
  for (const [name, data] of Object.entries(files)) writeFileSync(join(partial, name), data);
  mkdirSync(join(dir, '..'), { recursive: true });
  try {
    renameSync(partial, dir);
  } catch (error) {
    // Another process made the same folder meanwhile: its copy is as good as ours.
    if (!existsSync(dir)) throw error;
    rmSync(partial, { recursive: true, force: true });
    return;
  }
  await recordFolder(dir);
}

/**
 * Whether a derived model's folder can be used: it exists and every file matches the ledger
 * kept outside it. One that does not (swapped, truncated, made by something else) is removed,
 * so that the caller makes it again instead of running it or failing on it forever.
 */
async function trustedCacheFolder(dir: string): Promise<boolean> {
  if (!existsSync(dir)) return false;
  const problem = await checkFolder(dir);
  if (!problem) return true;
  warn(`embed: warning: the cached ${dir} cannot be trusted (${problem}); making it again`);
  forgetFolder(dir);
  return false;
}

/** Which output gives the vectors, or which `logits` to cut the head from. */
export function chooseOutput(outputs: readonly ort.InferenceSession.ValueMetadata[], modelPath: string, options: Pick<EncoderOptions, 'pooling' | 'hidden' | 'vocab'>): { output?: string; logits?: string } {
  const tensors = outputs.filter((o): o is ort.InferenceSession.TensorValueMetadata => o.isTensor);
  const listed = outputs.map(describeValue).join(', ');
  if (options.pooling === 'pooler') {
    if (tensors.some((o) => o.name === 'pooler_output')) return { output: 'pooler_output' };
    throw new UserError(
      `embed.pooling: pooler needs a pooler_output, and ${modelPath} has only ${listed}; ` +
        `use embed.pooling: mean or cls, or an export that has one (optimum-cli export onnx --task feature-extraction)`,
    );
  }
  if (tensors.some((o) => o.name === 'last_hidden_state')) return { output: 'last_hidden_state' };
  const lastDim = (o: ort.InferenceSession.TensorValueMetadata) => (o.shape.length === 3 ? o.shape[2] : undefined);
  // Some exports name the per-token states otherwise (sentence-transformers: token_embeddings).
  const states = tensors.filter((o) => o.type === 'float32' && lastDim(o) === options.hidden);
  if (states.length === 1) return { output: states[0]!.name };
  const logits = tensors.filter((o) => lastDim(o) === options.vocab);
  if (logits.length === 1 && tensors.length === 1) return { logits: logits[0]!.name };
  throw new UserError(
    `${modelPath}: no per-token hidden states among its outputs (${listed}): the embed stage reads last_hidden_state ` +
      `[batch, sequence, ${options.hidden}], or derives it from a fill-mask export's only output, logits [batch, sequence, ${options.vocab}]; ${HUB_HINT}`,
  );
}

/** Feeds only what the model declares, in the integer type it declares. */
export function chooseInputs(inputs: readonly ort.InferenceSession.ValueMetadata[], modelPath: string): EncoderInput[] {
  const chosen: EncoderInput[] = [];
  for (const input of inputs) {
    const role = ROLES.find((r) => r === input.name);
    const type = input.isTensor ? input.type : undefined;
    if (!role || (type !== 'int64' && type !== 'int32')) {
      throw new UserError(
        `${modelPath}: input ${describeValue(input)} is not one the embed stage can feed (int64 or int32 ${ROLES.join(', ')}); ${HUB_HINT}`,
      );
    }
    chosen.push({ name: role, type });
  }
  if (!chosen.some((i) => i.name === 'input_ids')) throw new UserError(`${modelPath}: the model has no input_ids input (its inputs: ${inputs.map(describeValue).join(', ')}); ${HUB_HINT}`);
  return chosen;
}

async function deriveAndCache(modelPath: string, sha256: string, logits: string, vocab: number, derivedPath: string, sourceOutputs: string[]): Promise<NonNullable<Adaptation['derived']>> {
  info(`embed: ${basename(modelPath)} is a fill-mask export (its only output is ${logits} over the ${vocab}-word vocabulary); deriving an encoder-only model that outputs the encoder's last hidden state`);
  const started = performance.now();
  const source = readFileSync(modelPath);
  let cut;
  try {
    cut = deriveEncoder(source, logits, vocab);
  } catch (error) {
    if (!(error instanceof NotAMaskedLmHead)) throw error;
    throw new UserError(`${modelPath}: its only output ${logits} looks like masked-LM logits, but the graph cannot be cut below the head (${error.message}); ${HUB_HINT}`);
  }
  const record = { from_sha256: sha256, version: ENCODER_DERIVATION_VERSION, hidden_value: cut.hiddenValue, removed_nodes: cut.removedNodes, source_outputs: sourceOutputs };
  await publishCacheFolder(join(derivedPath, '..'), { 'model.onnx': cut.bytes, 'derivation.json': `${JSON.stringify(record, null, 2)}\n` });
  info(
    `embed: derived ${formatBytes(cut.bytes.length)} encoder-only model in ${((performance.now() - started) / 1000).toFixed(1)}s: ` +
      `output ${cut.hiddenValue} as last_hidden_state, ${cut.removedNodes} head nodes removed -> ${derivedPath}`,
  );
  return { from_sha256: sha256, version: ENCODER_DERIVATION_VERSION, hidden_value: cut.hiddenValue, removed_nodes: cut.removedNodes, path: derivedPath, sha256: recordedSha256(dirname(derivedPath), 'model.onnx')! };
}

function describeValue(value: ort.InferenceSession.ValueMetadata): string {
  if (!value.isTensor) return `${value.name} (not a tensor)`;
  return `${value.name} ${value.type}[${value.shape.map(String).join(', ')}]`;
}

/** The feeds of one batch: ids and mask as tokenized, token types 0, positions 0..length-1. */
export function encoderFeeds(encoder: Encoder, ids: BigInt64Array, mask: BigInt64Array, dims: [number, number]): Record<string, ort.Tensor> {
  const [rows, length] = dims;
  const values: Record<InputRole, () => BigInt64Array> = {
    input_ids: () => ids,
    attention_mask: () => mask,
    token_type_ids: () => new BigInt64Array(rows * length),
    position_ids: () => BigInt64Array.from({ length: rows * length }, (_, i) => BigInt(i % length)),
  };
  const feeds: Record<string, ort.Tensor> = {};
  for (const input of encoder.inputs) {
    const data = values[input.name]();
    feeds[input.name] = input.type === 'int64' ? new ort.Tensor('int64', data, dims) : new ort.Tensor('int32', Int32Array.from(data, Number), dims);
  }
  return feeds;
}
