/**
 * How rows become batches. Rows are sorted by length (ties by row), cut into fixed shards (the
 * unit of `--shard i/n` slices, and of each write to the vector cache, so an interrupted embed
 * loses at most one shard's work), and each shard into batches that fill a token budget, each
 * padded only to its own longest row. A row's vector does not depend on its batch: padding is
 * masked, and ONNX Runtime computes each row alike (the cache tests check byte equality).
 */
export interface Shard {
  index: number;
  /** Global row indices, sorted by length. */
  rows: Int32Array;
}

export interface Batch {
  /** Positions in the shard's `rows`. */
  start: number;
  end: number;
  /** Padded sequence length: the longest row in the batch. */
  length: number;
}

/** Shards of `rows` (every row by default), each `shardRows` rows of similar length. */
export function planShards(lengths: Int32Array, shardRows: number, rows: Int32Array = Int32Array.from(lengths.keys())): Shard[] {
  const order = Int32Array.from(rows).sort((a, b) => lengths[a]! - lengths[b]! || a - b);
  const shards: Shard[] = [];
  for (let start = 0, index = 0; start < order.length; start += shardRows, index++) shards.push({ index, rows: order.subarray(start, start + shardRows) });
  return shards;
}

/** Batches of a shard whose rows are sorted by length: each batch holds at most `batchTokens` padded tokens. */
export function planBatches(shard: Shard, lengths: Int32Array, batchTokens: number, maxRows = 512): Batch[] {
  const batches: Batch[] = [];
  let start = 0;
  while (start < shard.rows.length) {
    let end = start + 1;
    // Rows are sorted, so the last row of a batch is its longest.
    while (end < shard.rows.length && end - start < maxRows && (end - start + 1) * lengths[shard.rows[end]!]! <= batchTokens) end++;
    batches.push({ start, end, length: lengths[shard.rows[end - 1]!]! });
    start = end;
  }
  return batches;
}

/** Tokens fed to the model, padding included, for a set of batches. */
export function paddedTokens(batches: Batch[]): number {
  return batches.reduce((sum, b) => sum + (b.end - b.start) * b.length, 0);
}

const planned = new WeakMap<Shard, { batchTokens: number; batches: Batch[] }>();

/** A shard's batches, planned once: the progress total, the work itself and the manifest all ask for them. */
export function shardBatches(shard: Shard, lengths: Int32Array, batchTokens: number): Batch[] {
  const hit = planned.get(shard);
  if (hit && hit.batchTokens === batchTokens) return hit.batches;
  const batches = planBatches(shard, lengths, batchTokens);
  planned.set(shard, { batchTokens, batches });
  return batches;
}
