import { formatCount, info, progress } from '../log.js';
import { paddedTokens, planShards, shardBatches, type Shard } from './batches.js';
import type { VectorCache } from './vector-cache.js';

/**
 * What the frozen encoders (BERT, Universal Sentence Encoder lite) do alike: take every vector the
 * cache holds, run the model only on the rows it lacks (each distinct key once), shard by shard in
 * rows of similar length, add each finished shard to the cache, and show rows/s, ETA and GFLOP/s.
 */
export interface BatchFigures {
  rows: number;
  /** Padded length of the batch. */
  length: number;
  tokens: number;
  padded: number;
  /** Seconds inside the model's own run call. */
  sessionSeconds: number;
}

export interface ShardEncoder {
  /** The vectors of a shard's rows, in the shard's row order, each batch reported. */
  embedShard(shard: Shard, onBatch: (batch: BatchFigures) => void): Promise<Float32Array>;
  /** Floating-point operations of one batch, for GFLOP/s. */
  flops(rows: number, length: number): number;
  close(): Promise<void>;
}

export interface Computed {
  rows: number;
  tokens: number;
  padded: number;
  sessionSeconds: number;
  flops: number;
  /** Rows of `wanted` whose vector the cache held already. */
  cached: number;
}

/**
 * Makes sure the cache holds a vector for every row of `wanted`; `open` is called only when some
 * row is missing, and its encoder closed at the end. Returns what it ran.
 */
export async function computeMissing(
  cache: VectorCache,
  corpus: { keys: readonly string[]; lengths: Int32Array },
  wanted: Int32Array,
  settings: { shard_rows: number; batch_tokens: number },
  open: () => Promise<ShardEncoder>,
): Promise<Computed> {
  const figures = { rows: 0, tokens: 0, padded: 0, sessionSeconds: 0, flops: 0 };
  // A damaged segment is found (and removed) before anything is decided from what the cache holds.
  cache.checkSegmentsOf(Array.from(wanted, (row) => corpus.keys[row]!));
  const cached = Array.from(wanted).filter((row) => cache.has(corpus.keys[row]!)).length;
  const firstOfKey = new Set<string>();
  const todo = Int32Array.from(Array.from(wanted).filter((row) => !cache.has(corpus.keys[row]!) && !firstOfKey.has(corpus.keys[row]!) && firstOfKey.add(corpus.keys[row]!)));
  if (!todo.length) return { ...figures, cached };
  const encoder = await open();
  const shards = planShards(corpus.lengths, settings.shard_rows, todo);
  // Rows are sorted by length, so later rows cost more: progress and ETA count padded tokens.
  const totalTokens = shards.reduce((n, s) => n + paddedTokens(shardBatches(s, corpus.lengths, settings.batch_tokens)), 0);
  const bar = progress('embed', totalTokens, 'tokens');
  const started = performance.now();
  try {
    for (const shard of shards) {
      const vectors = await encoder.embedShard(shard, (batch) => {
        figures.rows += batch.rows;
        figures.tokens += batch.tokens;
        figures.padded += batch.padded;
        figures.sessionSeconds += batch.sessionSeconds;
        figures.flops += encoder.flops(batch.rows, batch.length);
        const seconds = (performance.now() - started) / 1000;
        bar.tick(batch.padded, `${formatCount(figures.rows)}/${formatCount(todo.length)} rows  ${formatCount(figures.rows / seconds)} rows/s  ${(figures.flops / Math.max(1e-9, figures.sessionSeconds) / 1e9).toFixed(0)} GFLOP/s`);
      });
      // One segment per shard: a crash loses at most the shard in progress.
      cache.append(Array.from(shard.rows, (row) => corpus.keys[row]!), vectors);
    }
  } finally {
    await encoder.close();
  }
  bar.done(`${formatCount(figures.rows)} rows`);
  return { ...figures, cached };
}

/** The log line after an embed: rows computed, from the cache, repeated; throughput when something ran. */
export function logComputed(wanted: number, computed: Computed, wall: number, extra = ''): void {
  const repeats = wanted - computed.rows - computed.cached;
  info(
    `embed: ${formatCount(wanted)} rows: ${formatCount(computed.rows)} computed, ${formatCount(computed.cached)} from the vector cache${repeats ? `, ${formatCount(repeats)} repeating another row` : ''}` +
      (computed.rows ? ` (${formatCount(computed.rows / wall)} rows/s, ${((computed.sessionSeconds / wall) * 100).toFixed(0)}% of the time inside the model, ${((1 - computed.tokens / Math.max(1, computed.padded)) * 100).toFixed(1)}% padding)` : '') +
      extra,
  );
}
