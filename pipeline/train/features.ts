import { readLabels, readRows, ROW_FILES } from '../ingest/artifact.js';
import { readVectors } from '../embed/artifact.js';
import type { Split } from '../ingest/rows.js';

export interface SplitFeatures {
  /** Row-major features, `dim` per row. */
  x: Float32Array;
  /** Label index per row, or -1 where the row has no genre. */
  y: Int32Array;
  /** Position of each row in its ingest Parquet file. */
  rows: Int32Array;
}

export interface Features {
  dim: number;
  labels: string[];
  splits: Partial<Record<Split, SplitFeatures>>;
}

/** Joins the embed vectors with ingest's genres and splits (row i of each file is the same movie). */
export async function loadFeatures(ingestDir: string, embedDir: string): Promise<Features> {
  const { labels } = readLabels(ingestDir);
  const index = new Map(labels.map((l, i) => [l, i]));
  const splits: Features['splits'] = {};
  let dim = 0;
  for (const file of ROW_FILES) {
    const meta = await readRows(ingestDir, file, ['genre', 'split']);
    const { vectors, hidden } = readVectors(embedDir, file);
    dim = hidden;
    if (vectors.length !== meta.length * hidden) throw new Error(`${file}: ${meta.length} ingest rows but ${vectors.length / hidden} vectors`);
    const bySplit = new Map<Split, number[]>();
    meta.forEach((row, i) => {
      const rows = bySplit.get(row.split);
      if (rows) rows.push(i);
      else bySplit.set(row.split, [i]);
    });
    for (const [split, rows] of bySplit) {
      const x = new Float32Array(rows.length * hidden);
      rows.forEach((r, i) => x.set(vectors.subarray(r * hidden, (r + 1) * hidden), i * hidden));
      const y = Int32Array.from(rows, (r) => (meta[r]!.genre ? index.get(meta[r]!.genre) ?? -1 : -1));
      splits[split] = { x, y, rows: Int32Array.from(rows) };
    }
  }
  return { dim, labels, splits };
}
