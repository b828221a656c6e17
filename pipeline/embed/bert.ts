import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { UserError } from '../errors.js';
import { formatCount, formatSeconds, info, progress } from '../log.js';
import { BertTokenizer, concatTokens, resolveWorkers, TokenizerPool } from '../tokenizer/index.js';
import { lengthOf, readEmbeddings, rowCount, rowLengths, writeEmbeddings, type TokenTable } from '../arrow/index.js';
import { ROW_FILES, type RowFile } from '../ingest/artifact.js';
import { readTokenFile, readTokenRowIds } from '../tokenize/artifact.js';
import { writeVectors } from './artifact.js';
import { NETWORK_FILES, quantizeInPipeline, readModelInfo, resolveModel, type ModelFiles, type ModelInfo } from '../model/index.js';
import { onnxRuntimeVersion } from '../onnx/session.js';
import { encoderFeeds, openEncoder, type Adaptation, type Encoder, type EncoderOptions } from '../onnx/encoder.js';
import type { LoadedConfig } from '../config/index.js';
import type { ArtifactStore, ManifestBody } from '../artifacts/store.js';
import type { StageRun, UpstreamArtifact } from '../stage-types.js';
import type { Vectorizer } from './featurizer.js';
import type { EmbedConfig } from '../config/schema.js';
import { paddedTokens, planShards, shardBatches, type Shard } from './batches.js';
import { bertFlops, poolBatch } from '../onnx/pooling.js';

export interface Slice {
  index: number;
  count: number;
}

const shardFile = (dir: string, index: number) => join(dir, 'shards', `shard-${String(index).padStart(5, '0')}.arrow`);

/** The rows of both splits as one table (train first), each row's length, and each split's row count. */
function readAllTokens(tokenizeDir: string): { tokens: TokenTable; lengths: Int32Array; counts: Record<RowFile, number> } {
  const parts = ROW_FILES.map((file) => readTokenFile(tokenizeDir, file));
  const tokens = concatTokens(parts);
  return { tokens, lengths: rowLengths(tokens), counts: { train: rowCount(parts[0]!), test: rowCount(parts[1]!) } };
}

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

interface RunFigures {
  rows: number;
  tokens: number;
  padded: number;
  sessionSeconds: number;
  flops: number;
}

export interface BatchFigures {
  rows: number;
  /** Padded length of the batch. */
  length: number;
  tokens: number;
  padded: number;
  sessionSeconds: number;
}

/** How the embed stage and predict open the model: the same options, so a description gets the same vector in both. */
export function encoderOptions(loaded: LoadedConfig, model: ModelInfo): EncoderOptions {
  const { embed } = loaded.config;
  return { pooling: embed.pooling, hidden: model.hidden, vocab: model.vocab, providers: embed.providers, threads: embed.threads, providerOptions: { webgpu: embed.webgpu }, quantize: quantizeInPipeline(loaded), float16: loaded.config.model?.precision === 'fp16' };
}

/**
 * Embeds one shard, batch by batch (rows of similar length up to `embed.batch_tokens`), and
 * returns its vectors in the shard's row order. The embed stage and `predict` both call it, so
 * a description gets the same vector wherever it is embedded.
 */
export async function embedShard(
  encoder: Encoder,
  shard: Shard,
  tokens: TokenTable,
  lengths: Int32Array,
  model: ModelInfo,
  embed: EmbedConfig,
  onBatch: (figures: BatchFigures) => void = () => {},
): Promise<Float32Array> {
  const vectors = new Float32Array(shard.rows.length * model.hidden);
  for (const batch of shardBatches(shard, lengths, embed.batch_tokens)) {
    const size = batch.end - batch.start;
    const ids = new BigInt64Array(size * batch.length);
    const mask = new BigInt64Array(size * batch.length);
    const rowLengths = new Int32Array(size);
    for (let b = 0; b < size; b++) {
      const row = shard.rows[batch.start + b]!;
      const start = tokens.offsets[row]!;
      rowLengths[b] = lengthOf(tokens, row);
      for (let t = 0; t < rowLengths[b]!; t++) {
        ids[b * batch.length + t] = BigInt(tokens.ids[start + t]!);
        mask[b * batch.length + t] = 1n;
      }
    }
    const feeds = encoderFeeds(encoder, ids, mask, [size, batch.length]);
    const { output } = encoder;
    const t0 = performance.now();
    const result = await encoder.open.session.run(feeds, [output]);
    const sessionSeconds = (performance.now() - t0) / 1000;
    poolBatch(embed.pooling, result[output]!.data as Float32Array, size, batch.length, model.hidden, rowLengths, (b, vector) => vectors.set(vector, (batch.start + b) * model.hidden));
    result[output]!.dispose?.();
    onBatch({ rows: size, length: batch.length, tokens: rowLengths.reduce((a, n) => a + n, 0), padded: size * batch.length, sessionSeconds });
  }
  return vectors;
}

/**
 * Embeds the shards that `slice` selects (all of them by default) into `<dir>/shards/`, each
 * written whole or not at all, skipping shards an interrupted run already finished.
 */
async function embedShards(run: StageRun, shards: Shard[], tokens: TokenTable, lengths: Int32Array, model: ModelInfo, encoder: Encoder): Promise<RunFigures> {
  const { embed } = run.loaded.config;
  const plan = { shard_rows: embed.shard_rows, shards: shards.length, rows: lengths.length };
  keepShardsOfThisPlan(run.dir, plan);
  mkdirSync(join(run.dir, 'shards'), { recursive: true });
  const todo = shards.filter((s) => !existsSync(shardFile(run.dir, s.index)));
  if (todo.length < shards.length) info(`embed: resuming, ${shards.length - todo.length} of ${shards.length} shards already done`);
  // Rows are sorted by length, so later rows cost more: progress and ETA count padded tokens.
  const totalRows = todo.reduce((n, s) => n + s.rows.length, 0);
  const totalTokens = todo.reduce((n, s) => n + paddedTokens(shardBatches(s, lengths, embed.batch_tokens)), 0);
  const bar = progress('embed', totalTokens, 'tokens');
  const figures: RunFigures = { rows: 0, tokens: 0, padded: 0, sessionSeconds: 0, flops: 0 };
  const started = performance.now();

  for (const shard of todo) {
    const vectors = await embedShard(encoder, shard, tokens, lengths, model, embed, (batch) => {
      figures.rows += batch.rows;
      figures.tokens += batch.tokens;
      figures.padded += batch.padded;
      figures.sessionSeconds += batch.sessionSeconds;
      figures.flops += bertFlops(model, batch.rows, batch.length);
      const seconds = (performance.now() - started) / 1000;
      bar.tick(batch.padded, `${formatCount(figures.rows)}/${formatCount(totalRows)} rows  ${formatCount(figures.rows / seconds)} rows/s  ${(figures.flops / figures.sessionSeconds / 1e9).toFixed(0)} GFLOP/s`);
    });
    // Written whole, then renamed: a shard file that exists is complete.
    const path = shardFile(run.dir, shard.index);
    writeEmbeddings(`${path}.tmp`, { vectors, hidden: model.hidden, rowIndex: Int32Array.from(shard.rows) });
    if (!existsSync(join(run.dir, 'shard-plan.json'))) writeFileSync(join(run.dir, 'shard-plan.json'), `${JSON.stringify(plan)}\n`);
    renameSync(`${path}.tmp`, path);
  }
  bar.done(`${formatCount(figures.rows)} rows`);
  return figures;
}

/**
 * Shard files are only resumable under the plan that cut them: an interrupted build resumed with
 * another `embed.shard_rows` (which does not change the vectors, so not the key) starts over.
 */
function keepShardsOfThisPlan(dir: string, plan: { shard_rows: number; shards: number; rows: number }): void {
  const path = join(dir, 'shard-plan.json');
  if (existsSync(path)) {
    const previous = JSON.parse(readFileSync(path, 'utf8')) as typeof plan;
    if (previous.shard_rows === plan.shard_rows && previous.shards === plan.shards && previous.rows === plan.rows) return;
    info(`embed: the interrupted build cut its shards with shard_rows ${previous.shard_rows}, this one with ${plan.shard_rows}: starting over`);
  }
  rmSync(join(dir, 'shards'), { recursive: true, force: true });
  rmSync(path, { force: true });
}

/** Joins shard files into train.arrow and test.arrow, in ingest row order (with each row's id and what made the vectors), and removes the shards. */
function mergeShards(dir: string, counts: Record<string, number>, hidden: number, expectedShards: number, tokenizeDir: string, metadata: Record<string, string>): void {
  const total = counts.train! + counts.test!;
  const vectors = new Float32Array(total * hidden);
  const filled = new Uint8Array(total);
  const files = readdirSync(join(dir, 'shards')).filter((f) => f.endsWith('.arrow'));
  if (files.length !== expectedShards) {
    throw new UserError(`embed: expected ${expectedShards} shard files, found ${files.length}: the slices were cut with another embed.shard_rows; embed every slice again with the same config`);
  }
  for (const file of files.sort()) {
    const shard = readEmbeddings(join(dir, 'shards', file));
    if (shard.hidden !== hidden) throw new UserError(`embed: ${file} has vectors of ${shard.hidden}, not ${hidden}: the slices come from different models`);
    shard.rowIndex!.forEach((row, i) => {
      vectors.set(shard.vectors.subarray(i * hidden, (i + 1) * hidden), row * hidden);
      filled[row] = 1;
    });
  }
  const missing = filled.indexOf(0);
  if (missing >= 0) throw new Error(`row ${missing} has no embedding after merging shards`);
  const annotations = (file: RowFile) => ({ rowIds: readTokenRowIds(tokenizeDir, file), metadata });
  writeVectors(dir, 'train', { vectors: vectors.subarray(0, counts.train! * hidden), hidden }, annotations('train'));
  writeVectors(dir, 'test', { vectors: vectors.subarray(counts.train! * hidden), hidden }, annotations('test'));
  rmSync(join(dir, 'shards'), { recursive: true, force: true });
  rmSync(join(dir, 'shard-plan.json'), { force: true });
}

/**
 * The embed stage with a frozen BERT encoder (nothing to fit): one vector per row, pooled from
 * the model's outputs. With `slice`, only that slice's shards are embedded (and published as an
 * `embed-slice` artifact for a later merge).
 */
export async function build(run: StageRun, slice?: Slice): Promise<ManifestBody> {
  const { config } = run.loaded;
  const files = await resolveModel(run.loaded, NETWORK_FILES(run.loaded));
  const model = readModelInfo(files.config);
  const { tokens, lengths, counts } = readAllTokens(run.inputs.tokenize!.dir);
  checkFitsModel(tokens, counts, model, files.config);
  const shards = planShards(lengths, config.embed.shard_rows);
  const mine = slice ? shards.filter((s) => s.index % slice.count === slice.index) : shards;

  const encoder = await openEncoder(files.onnx, run.planned.sources[`model/${basename(files.onnx)}`]!, encoderOptions(run.loaded, model));
  const { open } = encoder;
  if (model.random) info('embed: the model has RANDOM weights (the project\'s own test model): vectors carry tokens, not meaning');
  const started = performance.now();
  const figures = await embedShards(run, mine, tokens, lengths, model, encoder);
  if (!slice) mergeShards(run.dir, counts, model.hidden, shards.length, run.inputs.tokenize!.dir, vectorMetadata(run, encoder.adaptation));
  const wall = (performance.now() - started) / 1000;
  const allBatches = mine.flatMap((s) => shardBatches(s, lengths, config.embed.batch_tokens));
  const rowsEmbedded = mine.reduce((n, s) => n + s.rows.length, 0);
  const padded = paddedTokens(allBatches);
  const realTokens = mine.reduce((n, s) => n + s.rows.reduce((a, r) => a + lengths[r]!, 0), 0);
  info(
    `embed: ${formatCount(figures.rows)} rows in ${formatSeconds(wall)} (${formatCount(figures.rows / wall)} rows/s), ` +
      `${((figures.sessionSeconds / wall) * 100).toFixed(0)}% of the time inside session.run, ` +
      `${((1 - realTokens / padded) * 100).toFixed(1)}% padding`,
  );
  return {
    rows: slice ? { rows: rowsEmbedded, shards: mine.length } : { train: counts.train, test: counts.test },
    timings: {
      embed_seconds: round(wall),
      session_seconds: round(figures.sessionSeconds),
      rows_per_second: Math.round(figures.rows / wall),
      tokens_per_second: Math.round(figures.tokens / wall),
      gflops_per_second: round(figures.flops / Math.max(1e-9, figures.sessionSeconds) / 1e9),
    },
    versions: { onnxruntime: onnxRuntimeVersion() },
    details: {
      provider: open.provider,
      provider_fallbacks: open.fallbacks,
      threads: open.threads,
      pooling: config.embed.pooling,
      precision: config.model?.precision,
      hidden: model.hidden,
      random_model: model.random,
      model_adaptation: encoder.adaptation,
      batch_tokens: config.embed.batch_tokens,
      shards: shards.length,
      slice: slice ? `${slice.index}/${slice.count}` : undefined,
      padded_fraction: round(1 - realTokens / padded),
      rows_embedded_this_run: figures.rows,
    },
  };
}

/** Copies the shard files of every slice `i/count` into the artifact being built, then merges them. */
export function mergeSlices(run: StageRun, store: ArtifactStore, count: number): ManifestBody {
  const { lengths, counts } = readAllTokens(run.inputs.tokenize!.dir);
  const shards = planShards(lengths, run.loaded.config.embed.shard_rows);
  const manifests = [];
  for (let i = 0; i < count; i++) {
    const key = sliceKey(run.planned.key, { index: i, count });
    const manifest = store.readManifest('embed-slice', key);
    if (!manifest) throw new UserError(`embed --merge ${count}: slice ${i}/${count} is missing (${store.keyDir('embed-slice', key)}); run \`embed --shard ${i}/${count}\` with the same config first`);
    cpSync(join(store.keyDir('embed-slice', key), 'shards'), join(run.dir, 'shards'), { recursive: true });
    manifests.push(manifest);
  }
  const hidden = manifests[0]!.details.hidden as number;
  mergeShards(run.dir, counts, hidden, shards.length, run.inputs.tokenize!.dir, vectorMetadata(run, manifests[0]!.details.model_adaptation as Adaptation));
  return {
    rows: { train: counts.train, test: counts.test },
    versions: manifests[0]!.versions,
    details: { ...manifests[0]!.details, slice: undefined, merged_from_slices: count, providers: manifests.map((m) => m.details.provider) },
  };
}

/** What the vectors came from, in the Arrow files' schema metadata. */
function vectorMetadata(run: StageRun, adaptation: Adaptation | undefined): Record<string, string> {
  const { config } = run.loaded;
  const model = Object.entries(run.planned.sources).find(([name]) => name.endsWith('.onnx'));
  return {
    featurizer: 'bert',
    model_file: model?.[0].replace(/^model\//, '') ?? '',
    model_sha256: model?.[1] ?? '',
    pooling: config.embed.pooling,
    precision: config.model?.precision ?? 'fp32',
    output: adaptation?.output ?? '',
    derived: adaptation?.derived ? 'encoder-only model cut from a fill-mask export' : 'no',
    quantized: adaptation?.quantized ? `int8 by the pipeline (v${adaptation.quantized.version})` : 'no',
    // Only when used, so that fp32 and int8 files stay as they were.
    ...(adaptation?.float16 ? { float16: `float16 by the pipeline (v${adaptation.float16.version})` } : {}),
  };
}

export function sliceKey(key: string, slice: Slice): string {
  return `${key}-${slice.index}of${slice.count}`;
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/**
 * New descriptions through the same tokenizer, model (checked against the checksum the embed
 * artifact recorded) and batching as the stage: `predict`'s vectors.
 */
export async function open(loaded: LoadedConfig, embedArtifact: UpstreamArtifact): Promise<Vectorizer> {
  const { config } = loaded;
  const files = await resolveModel(loaded);
  const model = readModelInfo(files.config);
  // The session loads while the descriptions are tokenized.
  const encoderReady = openEncoder(files.onnx, embedArtifact.manifest.sources[`model/${basename(files.onnx)}`]!, encoderOptions(loaded, model));
  return {
    dim: model.hidden,
    async vectorize(texts) {
      const t0 = performance.now();
      const tokens = await tokenizeTexts(texts, files, config.tokenize);
      const t1 = performance.now();
      const encoder = await encoderReady;
      const lengths = rowLengths(tokens);
      const vectors = new Float32Array(lengths.length * model.hidden);
      const bar = lengths.length >= 1000 ? progress('predict', lengths.length) : null;
      for (const shard of planShards(lengths, config.embed.shard_rows)) {
        const part = await embedShard(encoder, shard, tokens, lengths, model, config.embed, (b) => bar?.tick(b.rows));
        shard.rows.forEach((row, i) => vectors.set(part.subarray(i * model.hidden, (i + 1) * model.hidden), row * model.hidden));
      }
      bar?.done();
      return { vectors, seconds: { tokenize: (t1 - t0) / 1000, embed: (performance.now() - t1) / 1000 } };
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
