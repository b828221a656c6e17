import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { UserError } from '../errors.js';
import { hashValue } from '../hash.js';
import { formatCount, info, progress } from '../log.js';
import { BertTokenizer, concatTokens, resolveWorkers, TokenizerPool } from '../tokenizer/index.js';
import { lengthOf, rowCount, rowLengths, type TokenTable } from '../arrow/index.js';
import type { RowFile } from '../ingest/artifact.js';
import type { Tokens } from '../tokenize/artifact.js';
import { writeVectors } from './artifact.js';
import { readModelInfo, resolveModel, TOKENIZER_FILES, type ModelFiles, type ModelInfo } from '../model/index.js';
import { onnxRuntimeVersion } from '../onnx/session.js';
import { encoderFeeds, openEncoder, type Adaptation, type Encoder, type EncoderOptions } from '../onnx/encoder.js';
import type { LoadedConfig } from '../config/index.js';
import type { EmbedConfig, ModelConfig } from '../config/schema.js';
import type { ArtifactStore, Manifest, ManifestBody } from '../artifacts/store.js';
import type { StageRun } from '../stage-types.js';
import { featurizerCode, type Vectorizer } from './featurizer.js';
import { planShards, shardBatches, type Shard } from './batches.js';
import { computeMissing, logComputed, type BatchFigures } from './frozen.js';
import { bertFlops, poolBatch } from '../onnx/pooling.js';
import { tokenRowKey, VectorCache } from './vector-cache.js';

/** What the BERT featurizer's build sees of the config (featurizer.ts). */
export interface BertParams {
  embed: { method: 'bert'; pooling: EmbedConfig['pooling'] };
  model: { precision: ModelConfig['precision'] };
}
export type BertSettings = Pick<EmbedConfig, 'providers' | 'threads' | 'webgpu' | 'batch_tokens' | 'shard_rows'>;
export type BertRun = StageRun<BertParams, BertSettings, { tokens: Tokens }, { model: ModelFiles }>;

export interface Slice {
  index: number;
  count: number;
}

/** How the program runs embed: the whole corpus, one slice of it, or a merge of slices. */
export type EmbedMode = { slice?: Slice; merge?: number };

const SLICE_FOLDER = 'shards';

/** Ids the model cannot take are a user error here, not a crash inside ONNX Runtime. */
export function checkFitsModel(tokens: TokenTable, counts: Record<string, number>, model: ModelInfo, configPath: string): void {
  const where = (row: number) => (row < counts.train! ? `train row ${row}` : `test row ${row - counts.train!}`);
  for (let row = 0; row < rowCount(tokens); row++) {
    if (lengthOf(tokens, row) > model.maxPositions) {
      throw new UserError(`embed: ${where(row)} has ${lengthOf(tokens, row)} tokens, more than the model's ${model.maxPositions} positions (${configPath}); lower tokenize.max_length`);
    }
  }
  for (let i = 0; i < tokens.ids.length; i++) {
    const id = tokens.ids[i]!;
    if (id < 0 || id >= model.vocab) {
      let row = 0;
      while (tokens.offsets[row + 1]! <= i) row++;
      throw new UserError(`embed: ${where(row)} has token id ${id}, outside the model's vocabulary of ${model.vocab} (${configPath}): the tokenizer does not belong to this model`);
    }
  }
}

/** How the embed stage and predict open the model: the same options, so a description gets the same vector in both. */
export function encoderOptions(params: BertParams, settings: BertSettings, model: ModelInfo, onnxFile: string): EncoderOptions {
  return {
    pooling: params.embed.pooling,
    hidden: model.hidden,
    vocab: model.vocab,
    providers: settings.providers,
    threads: settings.threads,
    providerOptions: { webgpu: settings.webgpu },
    // int8 from model.onnx is made by the pipeline; a published model_quantized.onnx is run as it is.
    quantize: params.model.precision === 'int8' && basename(onnxFile) === 'model.onnx',
    float16: params.model.precision === 'fp16',
  };
}

/**
 * Embeds one shard, batch by batch (rows of similar length up to `batchTokens`), and returns its
 * vectors in the shard's row order. The embed stage and `predict` both call it, so a description
 * gets the same vector wherever it is embedded.
 */
export async function embedShard(encoder: Encoder, shard: Shard, tokens: TokenTable, lengths: Int32Array, model: ModelInfo, pooling: BertParams['embed']['pooling'], batchTokens: number, onBatch: (figures: BatchFigures) => void = () => {}): Promise<Float32Array> {
  const vectors = new Float32Array(shard.rows.length * model.hidden);
  for (const batch of shardBatches(shard, lengths, batchTokens)) {
    const size = batch.end - batch.start;
    const ids = new BigInt64Array(size * batch.length);
    const mask = new BigInt64Array(size * batch.length);
    const batchLengths = new Int32Array(size);
    for (let b = 0; b < size; b++) {
      const row = shard.rows[batch.start + b]!;
      const start = tokens.offsets[row]!;
      batchLengths[b] = lengthOf(tokens, row);
      for (let t = 0; t < batchLengths[b]!; t++) {
        ids[b * batch.length + t] = BigInt(tokens.ids[start + t]!);
        mask[b * batch.length + t] = 1n;
      }
    }
    const feeds = encoderFeeds(encoder, ids, mask, [size, batch.length]);
    const { output } = encoder;
    const t0 = performance.now();
    const result = await encoder.open.session.run(feeds, [output]);
    const sessionSeconds = (performance.now() - t0) / 1000;
    poolBatch(pooling, result[output]!.data as Float32Array, size, batch.length, model.hidden, batchLengths, (b, vector) => vectors.set(vector, (batch.start + b) * model.hidden));
    result[output]!.dispose?.();
    onBatch({ rows: size, length: batch.length, tokens: batchLengths.reduce((a, n) => a + n, 0), padded: size * batch.length, sessionSeconds });
  }
  return vectors;
}

/** The two files' rows as one table (train first), each row's length and cache key, and each file's row count and ids. */
function joinFiles(files: Tokens) {
  const tokens = concatTokens([files.train.tokens, files.test.tokens]);
  const counts = { train: rowCount(files.train.tokens), test: rowCount(files.test.tokens) };
  return { tokens, lengths: rowLengths(tokens), keys: rowKeys(tokens), counts };
}

/** Each row's key in the vector cache: the sha256 of the ids the encoder reads. */
function rowKeys(tokens: TokenTable): string[] {
  return Array.from({ length: rowCount(tokens) }, (_, row) => tokenRowKey(tokens.ids.subarray(tokens.offsets[row]!, tokens.offsets[row + 1]!)));
}

/**
 * The cache folder of the encoder that made an embed artifact: one per model file checksums,
 * pooling, precision and featurizer code, so that two ways of making vectors never share one.
 */
export function vectorCacheIdentity(header: Pick<Manifest, 'params' | 'sources'> & { code: string }): string {
  return hashValue({ featurizer: 'bert', params: header.params, sources: header.sources, code: header.code }).slice(0, 24);
}

/** The model's own files among a run's sources (a joined featurizer has other members' too). */
const modelHashes = (sources: Record<string, string>) => Object.fromEntries(Object.entries(sources).filter(([name]) => name.startsWith('model/')));

/** The cache of this run's encoder: its params, its model files and bert.js's own code, alone or joined with other featurizers. */
const bertCacheIdentity = (run: BertRun) => vectorCacheIdentity({ params: run.params, sources: modelHashes(run.sourceHashes), code: featurizerCode('bert') });

const cacheDir = (store: ArtifactStore, identity: string) => join(store.root, '.cache', 'vectors', identity);

/**
 * The embed stage with a frozen BERT encoder (nothing to fit): one vector per row, pooled from the
 * model's outputs. Rows whose ids the vector cache already holds are not run again; the others
 * are embedded shard by shard, each shard added to the cache when done. With `mode.slice`, only
 * that slice's shards are embedded and published (as an `embed-slice` artifact) for a later
 * merge; with `mode.merge`, the slices are imported into the cache and the artifact assembled.
 */
export async function build(run: BertRun, mode: EmbedMode = {}): Promise<ManifestBody> {
  const files = run.sources.model;
  const model = readModelInfo(files.config);
  const { tokens, lengths, keys, counts } = joinFiles(run.inputs.tokens);
  checkFitsModel(tokens, counts, model, files.config);
  const identity = bertCacheIdentity(run);
  const cache = VectorCache.open(cacheDir(run.store, identity), model.hidden, { featurizer: 'bert', params: run.params, sources: modelHashes(run.sourceHashes), code: featurizerCode('bert') });
  const imported = mode.merge ? importSlices(run, cache, mode.merge) : 0;

  const shards = planShards(lengths, run.settings.shard_rows);
  const mine = mode.slice ? shards.filter((s) => s.index % mode.slice!.count === mode.slice!.index) : shards;
  const wanted = Int32Array.from(mine.flatMap((s) => Array.from(s.rows)));
  const started = performance.now();
  const computed = await embedMissing(run, cache, { tokens, lengths, keys }, wanted, model);
  const wall = (performance.now() - started) / 1000;
  const fromCache = computed.cached;
  // Rows whose ids repeat another row's (the same plot twice) are computed once.
  const repeats = wanted.length - computed.rows - fromCache;
  logComputed(wanted.length, computed, wall, imported ? `; ${formatCount(imported)} rows imported from ${mode.merge} slices` : '');

  if (mode.slice) cache.exportSegment(unique(Array.from(wanted, (row) => keys[row]!)), join(run.dir, SLICE_FOLDER));
  else writeArtifact(run, cache, keys, counts, model.hidden);
  return {
    rows: mode.slice ? { rows: wanted.length, shards: mine.length } : { train: counts.train, test: counts.test },
    timings: {
      embed_seconds: round(wall),
      session_seconds: round(computed.sessionSeconds),
      rows_per_second: computed.rows ? Math.round(computed.rows / wall) : 0,
      tokens_per_second: computed.rows ? Math.round(computed.tokens / wall) : 0,
      gflops_per_second: round(computed.flops / Math.max(1e-9, computed.sessionSeconds) / 1e9),
    },
    versions: { onnxruntime: onnxRuntimeVersion() },
    details: {
      provider: computed.provider ?? 'none (every row came from the vector cache)',
      provider_fallbacks: computed.fallbacks,
      threads: computed.threads,
      pooling: run.params.embed.pooling,
      precision: run.params.model.precision,
      hidden: model.hidden,
      random_model: model.random,
      model_adaptation: computed.adaptation,
      batch_tokens: run.settings.batch_tokens,
      shards: shards.length,
      slice: mode.slice ? `${mode.slice.index}/${mode.slice.count}` : undefined,
      merged_from_slices: mode.merge,
      padded_fraction: computed.padded ? round(1 - computed.tokens / computed.padded) : 0,
      rows_computed: computed.rows,
      rows_from_cache: fromCache,
      rows_repeating_another: repeats,
      vector_cache: identity,
    },
  };
}

/**
 * Runs the model on the rows of `wanted` whose keys the cache does not hold (each distinct key
 * once), shard by shard, adding each shard to the cache as it finishes. The model is opened only
 * when there is something to run.
 */
/**
 * Runs the model on the rows of `wanted` the cache lacks (frozen.ts); the model is opened only
 * when there is something to run. How the model file was read is known once it is opened; the
 * cache remembers it for the runs that never open it.
 */
async function embedMissing(run: BertRun, cache: VectorCache, corpus: { tokens: TokenTable; lengths: Int32Array; keys: string[] }, wanted: Int32Array, model: ModelInfo) {
  let encoder: Encoder | undefined;
  const computed = await computeMissing(cache, corpus, wanted, run.settings, async () => {
    const files = run.sources.model;
    encoder = await openEncoder(files.onnx, run.sourceHashes[`model/${basename(files.onnx)}`]!, encoderOptions(run.params, run.settings, model, files.onnx));
    cache.remember('adaptation', encoder.adaptation);
    if (model.random) info("embed: the model has RANDOM weights (the project's own test model): vectors carry tokens, not meaning");
    const opened = encoder;
    return {
      embedShard: (shard, onBatch) => embedShard(opened, shard, corpus.tokens, corpus.lengths, model, run.params.embed.pooling, run.settings.batch_tokens, onBatch),
      flops: (rows, length) => bertFlops(model, rows, length),
      close: () => opened.open.session.release(),
    };
  });
  return {
    ...computed,
    adaptation: (encoder?.adaptation ?? cache.recall<Adaptation>('adaptation')) as Adaptation | undefined,
    provider: encoder?.open.provider as string | undefined,
    fallbacks: encoder?.open.fallbacks as string[] | undefined,
    threads: encoder?.open.threads as number | undefined,
  };
}

/** train.arrow and test.arrow, in ingest row order, every vector read from the cache. */
function writeArtifact(run: BertRun, cache: VectorCache, keys: string[], counts: Record<RowFile, number>, hidden: number): void {
  const vectors = new Float32Array(keys.length * hidden);
  const filled = cache.read(keys, vectors);
  const missing = filled.indexOf(0);
  if (missing >= 0) throw new UserError(`embed: row ${missing} has no vector in the cache after embedding (a cache segment was damaged while this ran): run embed again`);
  const metadata = vectorMetadata(run);
  const annotations = (file: RowFile) => ({ rowIds: run.inputs.tokens[file].rowIds, metadata });
  writeVectors(run.dir, 'train', { vectors: vectors.subarray(0, counts.train * hidden), hidden }, annotations('train'));
  writeVectors(run.dir, 'test', { vectors: vectors.subarray(counts.train * hidden), hidden }, annotations('test'));
}

/** Imports every slice `i/count` (embed-slice artifacts of this key) into the vector cache; returns the rows that were new to it. */
function importSlices(run: BertRun, cache: VectorCache, count: number): number {
  let added = 0;
  for (let i = 0; i < count; i++) {
    const key = sliceKey(run.key, { index: i, count });
    if (!run.store.readManifest('embed-slice', key)) throw new UserError(`embed --merge ${count}: slice ${i}/${count} is missing (${run.store.keyDir('embed-slice', key)}); run \`embed --shard ${i}/${count}\` with the same config first`);
    added += cache.importSegments(join(run.store.keyDir('embed-slice', key), SLICE_FOLDER));
  }
  return added;
}

/**
 * What the vectors came from, in the Arrow files' schema metadata: only what is known without
 * opening the model, so that an artifact assembled from the cache is byte for byte the one a
 * fresh build writes. How the file was adapted (cut from a fill-mask export, quantized) is in
 * the manifest (`model_adaptation`).
 */
function vectorMetadata(run: BertRun): Record<string, string> {
  const model = Object.entries(run.sourceHashes).find(([name]) => name.endsWith('.onnx'));
  return {
    featurizer: 'bert',
    model_file: model?.[0].replace(/^model\//, '') ?? '',
    model_sha256: model?.[1] ?? '',
    pooling: run.params.embed.pooling,
    precision: run.params.model.precision,
    vector_cache: bertCacheIdentity(run),
  };
}

export function sliceKey(key: string, slice: Slice): string {
  return `${key}-${slice.index}of${slice.count}`;
}

function unique(keys: string[]): string[] {
  return [...new Set(keys)];
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/**
 * New descriptions through the same tokenizer, model (checked against the checksum the embed
 * artifact recorded) and batching as the stage: `predict`'s vectors. Texts whose ids the vector
 * cache holds (a description already embedded) are taken from it; the model is opened only for
 * the others.
 */
export async function open(loaded: LoadedConfig, embed: { dir: string; manifest: Manifest }, store: ArtifactStore): Promise<Vectorizer> {
  const { config } = loaded;
  const files = await resolveModel(loaded, [...TOKENIZER_FILES, ...new Set(Object.keys(embed.manifest.sources).map((f) => f.replace(/^model\//, '')))]);
  const model = readModelInfo(files.config);
  const params = embed.manifest.params as BertParams;
  const settings = { ...config.embed };
  const identity = embed.manifest.details.vector_cache as string | undefined;
  const cache = identity && existsSync(cacheDir(store, identity)) ? VectorCache.open(cacheDir(store, identity), model.hidden) : undefined;
  let encoder: Promise<Encoder> | undefined;
  const openModel = () => (encoder ??= openEncoder(files.onnx, embed.manifest.sources[`model/${basename(files.onnx)}`]!, encoderOptions(params, settings, model, files.onnx)));
  // Most texts are new: the session loads while they are tokenized.
  if (!cache) void openModel();
  return {
    dim: model.hidden,
    async vectorize(texts) {
      const t0 = performance.now();
      const tokens = await tokenizeTexts(texts, files, config.tokenize);
      const t1 = performance.now();
      const lengths = rowLengths(tokens);
      const keys = rowKeys(tokens);
      const vectors = new Float32Array(lengths.length * model.hidden);
      const filled = cache ? cache.read(keys, vectors) : new Uint8Array(keys.length);
      const missing = Int32Array.from(Array.from(filled.keys()).filter((row) => !filled[row]));
      const bar = missing.length >= 1000 ? progress('predict', missing.length) : null;
      for (const shard of missing.length ? planShards(lengths, settings.shard_rows, missing) : []) {
        const part = await embedShard(await openModel(), shard, tokens, lengths, model, params.embed.pooling, settings.batch_tokens, (b) => bar?.tick(b.rows));
        shard.rows.forEach((row, i) => vectors.set(part.subarray(i * model.hidden, (i + 1) * model.hidden), row * model.hidden));
      }
      bar?.done();
      return { vectors, seconds: { tokenize: (t1 - t0) / 1000, embed: (performance.now() - t1) / 1000 }, fromCache: texts.length - missing.length };
    },
  };
}

/**
 * Token ids as the tokenize stage makes them. Workers pay off once tokenizing takes longer than
 * starting them (~0.3 s): about a million characters at the ~3 M characters/s one thread manages.
 */
async function tokenizeTexts(texts: string[], files: ModelFiles, settings: LoadedConfig['config']['tokenize']): Promise<TokenTable> {
  const characters = texts.reduce((n, t) => n + t.length, 0);
  if (characters < 1_000_000) return BertTokenizer.load(files.tokenizer, files.tokenizerConfig).encodeAll(texts, settings.max_length);
  const pool = TokenizerPool.start({ tokenizer: files.tokenizer, config: files.tokenizerConfig }, settings.max_length, resolveWorkers(settings.workers));
  try {
    return await pool.tokenize(texts, () => {});
  } finally {
    await pool.close();
  }
}
