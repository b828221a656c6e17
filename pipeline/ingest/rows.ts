import { Rng } from '../random.js';
import type { Reject, SourceRecord } from './formats.js';
import type { TableSchema } from '../parquet/index.js';

export type Split = 'train' | 'validation' | 'test';

/** One movie as the ingest artifact stores it (train.parquet, test.parquet). */
export interface MovieRow {
  id: string;
  title: string;
  year: number | null;
  genre: string | null;
  description: string;
  split: Split;
  /** A poster: an absolute path or an http(s) URL (resolved at ingest), or null. */
  image: string | null;
}

export const MOVIE_SCHEMA: TableSchema = {
  id: { type: 'UTF8' },
  title: { type: 'UTF8' },
  year: { type: 'INT32', optional: true },
  genre: { type: 'UTF8', optional: true },
  description: { type: 'UTF8' },
  split: { type: 'UTF8' },
  image: { type: 'UTF8', optional: true },
};

/** `Oscar et la dame rose (2009)`, `Untitled (????)`, `Alone (2013/I)`: the year, and the title without it. */
export function parseTitle(raw: string): { title: string; year: number | null } {
  const match = /\s*\((\d{4}|\?{4})(?:\/[IVXLC]+)?\)\s*$/.exec(raw);
  if (!match) return { title: raw.trim(), year: null };
  const year = match[1]!.startsWith('?') ? null : Number(match[1]);
  return { title: raw.slice(0, match.index).trim(), year };
}

export function normalizeGenre(genre: string): string {
  return genre.trim().toLowerCase().replace(/\s+/g, ' ');
}

/** Ids in the Kaggle text format are numbers; CSV and JSONL may use any token without spaces. */
const ID_PATTERNS = { text: /^\d{1,18}$/, other: /^[^\s]{1,128}$/ };

/**
 * Turns parsed records into rows, moving each record that cannot be used to `rejects`:
 * a bad or duplicate id, an empty description, a NUL byte, a description longer than the
 * limit, a missing genre, or (for the test split) a genre the training data does not have.
 */
export function validateRecords(
  records: SourceRecord[],
  rejects: Reject[],
  options: { textFormat: boolean; split: Split; knownGenres?: Set<string>; maxDescriptionChars?: number },
): MovieRow[] {
  const maxChars = options.maxDescriptionChars ?? Infinity;
  const idPattern = options.textFormat ? ID_PATTERNS.text : ID_PATTERNS.other;
  const seen = new Map<string, number>();
  const rows: MovieRow[] = [];
  for (const record of records) {
    const reject = (reason: string) => rejects.push({ file: record.file, line: record.line, reason, text: `${record.id} ::: ${record.title}` });
    if (!idPattern.test(record.id)) {
      reject(`bad id ${JSON.stringify(record.id)}`);
      continue;
    }
    const first = seen.get(record.id);
    if (first !== undefined) {
      reject(`duplicate id ${record.id} (first on line ${first})`);
      continue;
    }
    seen.set(record.id, record.line);
    if (!record.description) {
      reject('empty description');
      continue;
    }
    // A NUL byte is no text a plot has: a binary file read as text, or a broken export.
    const withNul = (['title', 'description', 'genre'] as const).find((field) => record[field]?.includes('\u0000'));
    if (withNul) {
      reject(`a NUL byte in the ${withNul} (binary data, not text)`);
      continue;
    }
    if (record.description.length > maxChars) {
      reject(`description of ${record.description.length} characters, more than ingest.max_description_chars (${maxChars})`);
      continue;
    }
    let genre: string | null = null;
    if (record.genre !== null) {
      genre = normalizeGenre(record.genre);
      if (!genre) {
        reject('empty genre');
        continue;
      }
      if (options.knownGenres && !options.knownGenres.has(genre)) {
        reject(`genre "${genre}" does not occur in the training data`);
        continue;
      }
    }
    const { title, year } = parseTitle(record.title);
    rows.push({ id: record.id, title, year, genre, description: record.description, split: options.split, image: record.image ?? null });
  }
  return rows;
}

/**
 * Moves a seeded, stratified share of each genre from train to validation. A genre keeps at
 * least one training row; rows keep their file order.
 */
export function splitValidation(rows: MovieRow[], fraction: number, seed: number): void {
  if (fraction <= 0) return;
  const byGenre = new Map<string, number[]>();
  rows.forEach((row, i) => {
    const list = byGenre.get(row.genre!) ?? [];
    list.push(i);
    byGenre.set(row.genre!, list);
  });
  const rng = new Rng(seed, 'validation-split');
  for (const genre of [...byGenre.keys()].sort()) {
    const indices = byGenre.get(genre)!;
    const count = Math.min(Math.round(indices.length * fraction), indices.length - 1);
    for (const i of rng.shuffle([...indices]).slice(0, count)) rows[i]!.split = 'validation';
  }
}
