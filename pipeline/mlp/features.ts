import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readEmbeddings } from '../arrow/index.js';
import { readParquet } from '../parquet/index.js';
import type { LabelsFile } from '../ingest/index.js';
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
  const { labels } = JSON.parse(readFileSync(join(ingestDir, 'labels.json'), 'utf8')) as LabelsFile;
  const index = new Map(labels.map((l, i) => [l, i]));
  const splits: Features['splits'] = {};
  let dim = 0;
  for (const file of ['train', 'test'] as const) {
    const meta = await readParquet<{ genre?: string; split: Split }>(join(ingestDir, `${file}.parquet`), ['genre', 'split']);
    const { vectors, hidden } = readEmbeddings(join(embedDir, `${file}.arrow`));
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
      const y = Int32Array.from(rows, (r) => (meta[r]!.genre !== undefined ? index.get(meta[r]!.genre!) ?? -1 : -1));
      splits[split] = { x, y, rows: Int32Array.from(rows) };
    }
  }
  return { dim, labels, splits };
}
