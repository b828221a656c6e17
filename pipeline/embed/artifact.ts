import { join } from 'node:path';
import { readVectorFile, writeEmbeddings, writeSparseEmbeddings, type EmbeddingTable } from '../arrow/index.js';
import { isSparse, pickRows, rowCount, type FeatureRows, type SparseRows } from '../mlp/rows.js';
import { contract, port, type View } from '../artifacts/contract.js';
import { ROW_FILES, type Genres, type RowFile, type Split, type Splits } from '../ingest/artifact.js';

/**
 * The embed artifact, what train, evaluate and predict read:
 *
 *   train.arrow, test.arrow   `embedding` (FixedSizeList<Float32>[dim]) per row, or, for a sparse
 *                             featurizer (TF-IDF), `indices` and `values` lists per row with the
 *                             width in the schema metadata; with each row's `id`; row i is row i
 *                             of ingest's Parquet file of the same name
 *   tfidf.json                TF-IDF only: the fitted vocabulary and IDF that predict transforms with
 *
 * One view, `vectors`: what train and evaluate read. Predict opens the featurizer's own state
 * (`Featurizer.state`) instead.
 */
export const TFIDF_STATE_FILE = 'tfidf.json';

export const vectorsPath = (dir: string, file: RowFile) => join(dir, `${file}.arrow`);

/** One file's rows: dense vectors, or sparse rows (their width is the vectors' dimension). */
export type VectorTable = EmbeddingTable | SparseRows;

const isSparseTable = (table: VectorTable): table is SparseRows => 'indptr' in table;
export const widthOf = (table: VectorTable) => (isSparseTable(table) ? table.width : table.hidden);
export const featureRows = (table: VectorTable): FeatureRows => (isSparseTable(table) ? table : table.vectors);

export function writeVectors(dir: string, file: RowFile, table: VectorTable, annotations: { rowIds?: string[]; metadata: Record<string, string> }): void {
  const annotated = { ...annotations, metadata: { ...annotations.metadata, rows_align_with: `ingest ${file}.parquet` } };
  if (isSparseTable(table)) writeSparseEmbeddings(vectorsPath(dir, file), table, annotated);
  else writeEmbeddings(vectorsPath(dir, file), table, annotated);
}

export const readVectors = (dir: string, file: RowFile): VectorTable => readVectorFile(vectorsPath(dir, file));

/** Both files' vectors: row i of each is row i of ingest's file of the same name. */
export type Vectors = Record<RowFile, VectorTable>;
export const VECTORS = port<Vectors>('vectors');
export const vectorsView: View<Vectors> = {
  port: VECTORS,
  files: ROW_FILES.map((file) => `${file}.arrow`),
  open: (dir) => ({ train: readVectors(dir, 'train'), test: readVectors(dir, 'test') }),
};

export const embedArtifact = contract('embed', import.meta.url, { vectorsView });

/** One split's rows: their vectors, label indices and positions in the ingest file. */
export interface SplitFeatures {
  /** The rows' features, `dim` wide: dense row-major, or sparse when the featurizer's are. */
  x: FeatureRows;
  /** Label index per row, or -1 where the row has no genre. */
  y: Int32Array;
  /** Position of each row in its ingest Parquet file. */
  rows: Int32Array;
}

export interface Features {
  dim: number;
  /** Whether the rows are sparse (then every split's `x` is). */
  sparse: boolean;
  labels: string[];
  splits: Partial<Record<Split, SplitFeatures>>;
}

/** The vectors grouped by ingest's splits, with each row's label (row i of each file is the same movie). */
export function featuresBySplit(vectors: Vectors, splits: Splits, genres: Genres): Features {
  const index = new Map(genres.labels.map((l, i) => [l, i]));
  const bySplit: Features['splits'] = {};
  let dim = 0;
  for (const file of ROW_FILES) {
    const x = featureRows(vectors[file]);
    const hidden = widthOf(vectors[file]);
    dim = hidden;
    const fileSplits = splits[file];
    if (rowCount(x, hidden) !== fileSplits.length) throw new Error(`${file}: ${fileSplits.length} ingest rows but ${rowCount(x, hidden)} vectors`);
    const rowsOf = new Map<Split, number[]>();
    fileSplits.forEach((split, i) => {
      const rows = rowsOf.get(split);
      if (rows) rows.push(i);
      else rowsOf.set(split, [i]);
    });
    for (const [split, rows] of rowsOf) {
      const part = pickRows(x, hidden, rows);
      const y = Int32Array.from(rows, (r) => {
        const genre = genres.files[file][r];
        return genre ? (index.get(genre) ?? -1) : -1;
      });
      bySplit[split] = { x: part, y, rows: Int32Array.from(rows) };
    }
  }
  return { dim, sparse: isSparse(featureRows(vectors.train)), labels: genres.labels, splits: bySplit };
}
