import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readParquet, writeParquet } from '../parquet/index.js';
import { MOVIE_SCHEMA, type MovieRow, type Split } from './rows.js';

/**
 * The ingest artifact, as ingest writes it and every later stage reads it:
 *
 *   train.parquet   training and validation rows (MOVIE_SCHEMA); the `split` column tells them apart
 *   test.parquet    test rows (genre null when the test file has none)
 *   labels.json     the genres in label-index order, with their counts per split
 *   rejects.jsonl   one line per rejected input row: file, line, reason
 */
export type RowFile = 'train' | 'test';
export const ROW_FILES: readonly RowFile[] = ['train', 'test'];

/** Validation rows are split off the training file and stay in it: the split is a column, not a file. */
export const rowFileOf = (split: Split): RowFile => (split === 'test' ? 'test' : 'train');

export const rowsPath = (dir: string, file: RowFile) => join(dir, `${file}.parquet`);
export const rejectsPath = (dir: string) => join(dir, 'rejects.jsonl');
const labelsPath = (dir: string) => join(dir, 'labels.json');

export interface LabelsFile {
  /** Genres in label-index order (sorted by name). */
  labels: string[];
  counts: Record<string, Record<Split, number>>;
}

export async function writeRows(dir: string, file: RowFile, rows: MovieRow[]): Promise<void> {
  await writeParquet(rowsPath(dir, file), MOVIE_SCHEMA, rows as never);
}

/** The named columns of one row file, in file order (row i of every later artifact is row i here). */
export function readRows<K extends keyof MovieRow>(dir: string, file: RowFile, columns: K[]): Promise<Pick<MovieRow, K>[]> {
  return readParquet<Pick<MovieRow, K>>(rowsPath(dir, file), columns);
}

export function writeLabels(dir: string, labels: LabelsFile): void {
  writeFileSync(labelsPath(dir), `${JSON.stringify(labels, null, 2)}\n`);
}

export function readLabels(dir: string): LabelsFile {
  return JSON.parse(readFileSync(labelsPath(dir), 'utf8')) as LabelsFile;
}
