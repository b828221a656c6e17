import { join } from 'node:path';
import { readEmbeddings, writeEmbeddings, type EmbeddingTable } from '../arrow/index.js';
import type { RowFile } from '../ingest/artifact.js';

/**
 * The embed artifact, what train, evaluate and predict read:
 *
 *   train.arrow, test.arrow   `embedding` (FixedSizeList<Float32>[dim]) per row, with each row's
 *                             `id`; row i is row i of ingest's Parquet file of the same name
 *   tfidf.json                TF-IDF only: the fitted vocabulary and IDF that predict transforms with
 */
export const TFIDF_STATE_FILE = 'tfidf.json';

export const vectorsPath = (dir: string, file: RowFile) => join(dir, `${file}.arrow`);

export function writeVectors(dir: string, file: RowFile, table: EmbeddingTable, annotations: { rowIds?: string[]; metadata: Record<string, string> }): void {
  writeEmbeddings(vectorsPath(dir, file), table, { ...annotations, metadata: { ...annotations.metadata, rows_align_with: `ingest ${file}.parquet` } });
}

export const readVectors = (dir: string, file: RowFile): EmbeddingTable => readEmbeddings(vectorsPath(dir, file));
