import { UserError } from '../errors.js';
import { formatCount, info, progress } from '../log.js';
import { ROW_FILES, type RowFile } from '../ingest/artifact.js';
import { writeTokenFile, writeTokenStats, type LengthStats } from './artifact.js';
import { lengthOf, rowCount, type TokenTable } from '../arrow/index.js';
import { readModelInfo } from '../model/index.js';
import type { ManifestBody } from '../artifacts/store.js';
import { resolveWorkers, TokenizerPool } from '../tokenizer/index.js';
import type { TokenizeRun } from './signature.js';

export type { LengthStats, TokenStatsFile } from './artifact.js';

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
export async function tokenize(run: TokenizeRun): Promise<ManifestBody> {
  const model = run.sources.model;
  const modelInfo = readModelInfo(model.config);
  const maxLength = run.params.tokenize.max_length;
  if (maxLength > modelInfo.maxPositions) {
    throw new UserError(`tokenize.max_length: ${maxLength} is more than the model's ${modelInfo.maxPositions} positions (${model.config})`);
  }
  const workers = resolveWorkers(run.settings.workers);
  const pool = TokenizerPool.start({ tokenizer: model.tokenizer, config: model.tokenizerConfig }, maxLength, workers);
  const texts: Record<RowFile, string[]> = { train: [], test: [] };
  const rowIds: Record<RowFile, string[]> = { train: [], test: [] };
  for (const file of ROW_FILES) {
    texts[file] = run.inputs.texts[file].map((r) => r.description);
    rowIds[file] = run.inputs.texts[file].map((r) => r.id);
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
  const parts = { train: sliceTokens(all, 0, texts.train.length), test: sliceTokens(all, texts.train.length, total) };
  const stats = {} as Record<RowFile, LengthStats>;
  for (const file of ROW_FILES) {
    writeTokenFile(run.dir, file, parts[file], {
      rowIds: rowIds[file],
      metadata: { tokenizer: 'tokenizer.json', tokenizer_sha256: run.sourceHashes['model/tokenizer.json'] ?? '', max_length: String(maxLength) },
    });
    stats[file] = lengthStats(parts[file]);
  }
  bar.done(`${formatCount(tokensDone / seconds)} tokens/s, ${workers} worker${workers > 1 ? 's' : ''}`);
  writeTokenStats(run.dir, { max_length: maxLength, splits: stats });
  const truncated = (stats.train.truncated_fraction * stats.train.rows + stats.test.truncated_fraction * stats.test.rows) / Math.max(1, total);
  info(`tokenize: ${formatCount(total)} rows, median ${stats.train.p50} tokens, ${(truncated * 100).toFixed(1)}% cut at ${maxLength}`);
  return {
    rows: { train: stats.train.rows, test: stats.test.rows, tokens: stats.train.tokens + stats.test.tokens },
    timings: { tokenize_seconds: Number(seconds.toFixed(3)), rows_per_second: Math.round(total / seconds) },
    details: { max_length: maxLength, workers, truncated_fraction: truncated, vocab: modelInfo.vocab, random_model: modelInfo.random },
  };
}
