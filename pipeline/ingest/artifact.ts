import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readParquet, writeParquet } from '../parquet/index.js';
import { hashValue } from '../hash.js';
import { contract, port, type View } from '../artifacts/contract.js';
import { MOVIE_SCHEMA, type MovieRow, type Split } from './rows.js';

export type { MovieRow, Split } from './rows.js';

/**
 * The ingest artifact, as ingest writes it and every later stage reads it:
 *
 *   train.parquet   training and validation rows (MOVIE_SCHEMA); the `split` column tells them apart
 *   test.parquet    test rows (genre null when the test file has none)
 *   labels.json     the genres in label-index order, with their counts per split
 *   rejects.jsonl   one line per rejected input row: file, line, reason
 *
 * Later stages read it through four views, each digested on its own: `texts` (what tokenize and
 * the encoders read), `splits` (which rows train on), `genres` (the labels) and `movies` (every
 * column, for evaluate's predictions and the report's gallery). A new seed redraws `splits` and
 * leaves `texts` as it was, so nothing that reads only texts is rebuilt.
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

/** Both row files' columns `columns`, by file. */
async function readColumns<K extends keyof MovieRow>(dir: string, columns: K[]): Promise<Record<RowFile, Pick<MovieRow, K>[]>> {
  return { train: await readRows(dir, 'train', columns), test: await readRows(dir, 'test', columns) };
}

const ROW_FILE_NAMES = ROW_FILES.map((file) => `${file}.parquet`);

/** Every row's id and description, by file: what a featurizer reads. */
export type Texts = Record<RowFile, Pick<MovieRow, 'id' | 'description'>[]>;
export const TEXTS = port<Texts>('texts');
export const textsView: View<Texts> = {
  port: TEXTS,
  files: ROW_FILE_NAMES,
  digest: async (dir) => hashValue(await readColumns(dir, ['id', 'description'])).slice(0, 32),
  open: (dir) => readColumns(dir, ['id', 'description']),
};

/** Every row's split, by file (validation rows are in the train file). */
export type Splits = Record<RowFile, Split[]>;
export const SPLITS = port<Splits>('splits');
async function readSplits(dir: string): Promise<Splits> {
  const rows = await readColumns(dir, ['id', 'split']);
  return { train: rows.train.map((r) => r.split), test: rows.test.map((r) => r.split) };
}
export const splitsView: View<Splits> = {
  port: SPLITS,
  files: ROW_FILE_NAMES,
  // The ids are part of it: the same splits over other rows are other splits.
  digest: async (dir) => hashValue(await readColumns(dir, ['id', 'split'])).slice(0, 32),
  open: (dir) => readSplits(dir),
};

/** The genres in label order with their counts, and every row's genre (null where the test file has none). */
export interface Genres extends LabelsFile {
  files: Record<RowFile, (string | null)[]>;
}
export const GENRES = port<Genres>('genres');
async function readGenres(dir: string): Promise<Genres> {
  const rows = await readColumns(dir, ['genre']);
  return { ...readLabels(dir), files: { train: rows.train.map((r) => r.genre), test: rows.test.map((r) => r.genre) } };
}
export const genresView: View<Genres> = {
  port: GENRES,
  files: [...ROW_FILE_NAMES, 'labels.json'],
  digest: async (dir) => hashValue({ ...(await readColumns(dir, ['id', 'genre'])), labels: readLabels(dir) }).slice(0, 32),
  open: (dir) => readGenres(dir),
};

/** Every column of every row, for predictions and the gallery, and the folder the data came from. */
export interface Movies {
  read<K extends keyof MovieRow>(file: RowFile, columns: K[]): Promise<Pick<MovieRow, K>[]>;
  /** Posters the data names are read only from inside this folder. */
  dataRoot: string | null;
}
export const MOVIES = port<Movies>('movies');
export const moviesView: View<Movies> = {
  port: MOVIES,
  files: ROW_FILE_NAMES,
  digest: (_dir, draft) => hashValue({ files: ROW_FILE_NAMES.map((f) => draft.files[f]!.sha256), dataRoot: draft.details.data_root ?? null }).slice(0, 32),
  open: (dir, manifest) => ({ read: (file, columns) => readRows(dir, file, columns), dataRoot: (manifest.details.data_root as string | undefined) ?? null }),
};

export const ingestArtifact = contract('ingest', import.meta.url, { textsView, splitsView, genresView, moviesView });
