import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import { formatCount, info, progress } from '../log.js';
import { readParquet } from '../parquet/index.js';
import { lengthOf, rowCount, writeTokens, type TokenTable } from '../arrow/index.js';
import { readModelInfo, resolveModel, TOKENIZER_FILES } from '../model/index.js';
import type { ManifestBody } from '../artifacts/store.js';
import type { StageRun } from '../stage-run.js';
import { resolveWorkers, TokenizerPool } from './index.js';

/** Length statistics of one split, for the manifest and the report's histogram. */
/** stats.json of the tokenize artifact: the length statistics of each split. */
export interface TokenStatsFile {
  max_length: number;
  splits: Record<string, LengthStats>;
}

export interface LengthStats {
  rows: number;
  tokens: number;
  truncated_fraction: number;
  mean: number;
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  max: number;
  /** Rows per length bin of 8 tokens: histogram[k] counts lengths in [8k, 8k + 8). */
  histogram: number[];
}

/** Rows [from, to) of a token table, as a table of their own. */
export function sliceTokens(tokens: TokenTable, from: number, to: number): TokenTable {
  const base = tokens.offsets[from]!;
  return {
    ids: tokens.ids.subarray(base, tokens.offsets[to]!),
    offsets: tokens.offsets.subarray(from, to + 1).map((o) => o - base),
    truncated: tokens.truncated.subarray(from, to),
  };
}

export function lengthStats(tokens: TokenTable): LengthStats {
  const rows = rowCount(tokens);
  const lengths = Array.from({ length: rows }, (_, i) => lengthOf(tokens, i)).sort((a, b) => a - b);
  const at = (q: number) => (rows ? lengths[Math.min(rows - 1, Math.floor(q * rows))]! : 0);
  const histogram: number[] = [];
  for (const length of lengths) histogram[length >> 3] = (histogram[length >> 3] ?? 0) + 1;
  let truncated = 0;
  for (const flag of tokens.truncated) truncated += flag;
  return {
    rows,
    tokens: tokens.ids.length,
    truncated_fraction: rows ? truncated / rows : 0,
    mean: rows ? tokens.ids.length / rows : 0,
    p50: at(0.5),
    p90: at(0.9),
    p95: at(0.95),
    p99: at(0.99),
    max: lengths[rows - 1] ?? 0,
    histogram: Array.from(histogram, (n) => n ?? 0),
  };
}

/**
 * Tokenizes the descriptions of train.parquet and test.parquet into train.arrow and test.arrow
 * (row i of each matches row i of its Parquet file), with length statistics in stats.json.
 */
export async function tokenize(run: StageRun): Promise<ManifestBody> {
  const { config } = run.loaded;
  const model = await resolveModel(run.loaded, TOKENIZER_FILES);
  const modelInfo = readModelInfo(model.config);
  const maxLength = config.tokenize.max_length;
  if (maxLength > modelInfo.maxPositions) {
    throw new UserError(`tokenize.max_length: ${maxLength} is more than the model's ${modelInfo.maxPositions} positions (${model.config})`);
  }
  const workers = resolveWorkers(config.tokenize.workers);
  // The workers load their tokenizer while the descriptions are read.
  const pool = TokenizerPool.start({ tokenizer: model.tokenizer, config: model.tokenizerConfig }, maxLength, workers);
  const texts: Record<'train' | 'test', string[]> = { train: [], test: [] };
  const rowIds: Record<'train' | 'test', string[]> = { train: [], test: [] };
  for (const split of ['train', 'test'] as const) {
    const rows = await readParquet<{ id: string; description: string }>(join(run.inputs.ingest!.dir, `${split}.parquet`), ['id', 'description']);
    texts[split] = rows.map((r) => r.description);
    rowIds[split] = rows.map((r) => r.id);
  }
  const total = texts.train.length + texts.test.length;
  const bar = progress('tokenize', total);
  let tokensDone = 0;
  const started = performance.now();
  // Both splits in one pass, so the workers start once.
  let all: TokenTable;
  try {
    all = await pool.tokenize([...texts.train, ...texts.test], (rows, tokens) => {
      tokensDone += tokens;
      bar.tick(rows, `${formatCount(tokensDone / ((performance.now() - started) / 1000))} tokens/s`);
    });
  } finally {
    await pool.close();
  }
  const seconds = (performance.now() - started) / 1000;
  const stats: Record<string, LengthStats> = {};
  const parts = { train: sliceTokens(all, 0, texts.train.length), test: sliceTokens(all, texts.train.length, total) };
  for (const [split, table] of Object.entries(parts) as ['train' | 'test', TokenTable][]) {
    writeTokens(join(run.dir, `${split}.arrow`), table, {
      rowIds: rowIds[split],
      metadata: { rows_align_with: `ingest ${split}.parquet`, tokenizer: 'tokenizer.json', tokenizer_sha256: run.planned.sources['model/tokenizer.json'] ?? '', max_length: String(maxLength) },
    });
    stats[split] = lengthStats(table);
  }
  bar.done(`${formatCount(tokensDone / seconds)} tokens/s, ${workers} worker${workers > 1 ? 's' : ''}`);
  writeFileSync(join(run.dir, 'stats.json'), `${JSON.stringify({ max_length: maxLength, splits: stats } satisfies TokenStatsFile, null, 2)}\n`);
  const truncated = (stats.train!.truncated_fraction * stats.train!.rows + stats.test!.truncated_fraction * stats.test!.rows) / Math.max(1, total);
  info(`tokenize: ${formatCount(total)} rows, median ${stats.train!.p50} tokens, ${(truncated * 100).toFixed(1)}% cut at ${maxLength}`);
  return {
    rows: { train: stats.train!.rows, test: stats.test!.rows, tokens: stats.train!.tokens + stats.test!.tokens },
    timings: { tokenize_seconds: Number(seconds.toFixed(3)), rows_per_second: Math.round(total / seconds) },
    details: { max_length: maxLength, workers, truncated_fraction: truncated, vocab: modelInfo.vocab, random_model: modelInfo.random },
  };
}
