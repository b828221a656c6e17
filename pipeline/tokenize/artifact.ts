import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readTokens, writeTokens, type TokenTable } from '../arrow/index.js';
import { contract, port, type View } from '../artifacts/contract.js';
import { ROW_FILES, type RowFile } from '../ingest/artifact.js';

/**
 * The tokenize artifact:
 *
 *   train.arrow, test.arrow   `input_ids` (List<Int32>) and `truncated` per row, with each row's
 *                             `id`; row i is row i of ingest's Parquet file of the same name
 *   stats.json                the length statistics of each file (TokenStatsFile)
 *
 * Views: `tokens` (the ids, for BERT's embed) and `token-stats` (for the report).
 */
export const tokensPath = (dir: string, file: RowFile) => join(dir, `${file}.arrow`);
const statsPath = (dir: string) => join(dir, 'stats.json');

/** Length statistics of one file, for the manifest and the report's histogram. */
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

export interface TokenStatsFile {
  max_length: number;
  splits: Record<RowFile, LengthStats>;
}

export function writeTokenFile(dir: string, file: RowFile, tokens: TokenTable, annotations: { rowIds: string[]; metadata: Record<string, string> }): void {
  writeTokens(tokensPath(dir, file), tokens, { ...annotations, metadata: { rows_align_with: `ingest ${file}.parquet`, ...annotations.metadata } });
}

export function writeTokenStats(dir: string, stats: TokenStatsFile): void {
  writeFileSync(statsPath(dir), `${JSON.stringify(stats, null, 2)}\n`);
}

/** One file's token ids, with each row's movie id. */
export interface TokenFile {
  tokens: TokenTable;
  rowIds: string[];
}
export type Tokens = Record<RowFile, TokenFile>;

function readTokenFile(dir: string, file: RowFile): TokenFile {
  const { rowIds, ...tokens } = readTokens(tokensPath(dir, file));
  return { tokens, rowIds: rowIds ?? [] };
}

export const TOKENS = port<Tokens>('tokens');
export const tokensView: View<Tokens> = {
  port: TOKENS,
  files: ROW_FILES.map((file) => `${file}.arrow`),
  open: (dir) => ({ train: readTokenFile(dir, 'train'), test: readTokenFile(dir, 'test') }),
};

export const TOKEN_STATS = port<TokenStatsFile>('token-stats');
export const tokenStatsView: View<TokenStatsFile> = {
  port: TOKEN_STATS,
  files: ['stats.json'],
  open: (dir) => JSON.parse(readFileSync(statsPath(dir), 'utf8')) as TokenStatsFile,
};

export const tokenizeArtifact = contract('tokenize', import.meta.url, { tokensView, tokenStatsView });
