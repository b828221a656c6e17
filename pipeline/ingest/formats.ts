import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import type { IngestConfig } from '../config/index.js';
import { UserError } from '../errors.js';
import type { Role } from './source.js';

/** One row as read from a file, before validation. */
export interface SourceRecord {
  file: string;
  line: number;
  id: string;
  title: string;
  genre: string | null;
  description: string;
  /** CSV and JSONL only: the `image` column, as written. */
  image?: string | null;
}

/** A row that could not be used, with where it was and why. */
export interface Reject {
  file: string;
  line: number;
  reason: string;
  text: string;
}

export type Format = 'text' | 'csv' | 'jsonl';

export function formatOf(path: string, configured: IngestConfig['format']): Format {
  if (configured !== 'auto') return configured;
  const ext = extname(path).toLowerCase();
  if (ext === '.csv') return 'csv';
  if (ext === '.jsonl' || ext === '.ndjson') return 'jsonl';
  return 'text';
}

/** Train and solution files carry a genre; the Kaggle test file does not. */
export const hasGenre = (role: Role) => role !== 'test';

/** Reads one data file; `name` is how rejects and errors refer to it (relative to the source). */
export function readRecords(path: string, name: string, role: Role, ingest: Pick<IngestConfig, 'format' | 'columns'>): { records: SourceRecord[]; rejects: Reject[] } {
  const format = formatOf(path, ingest.format);
  const lines = decodeLines(readFileSync(path), name);
  if (format === 'text') return parseText(lines, name, role);
  if (format === 'jsonl') return parseJsonl(lines, name, role, ingest.columns);
  return parseCsvFile(lines, name, role, ingest.columns);
}

type Line = { line: number; text: string } | { line: number; invalidUtf8: true };

/**
 * Splits a file into lines, decoding UTF-8 strictly. The whole file is decoded at once; only if
 * that fails is it decoded line by line, so the bad lines can be rejected and the rest kept.
 */
function decodeLines(buffer: Buffer, path: string): Line[] {
  const strict = new TextDecoder('utf-8', { fatal: true });
  try {
    const text = strict.decode(buffer);
    return text.split('\n').map((t, i) => ({ line: i + 1, text: t.endsWith('\r') ? t.slice(0, -1) : t }));
  } catch {
    // fall through to line-by-line decoding
  }
  const lines: Line[] = [];
  let start = 0;
  let number = 1;
  while (start <= buffer.length) {
    let end = buffer.indexOf(0x0a, start);
    if (end < 0) end = buffer.length;
    try {
      const t = strict.decode(buffer.subarray(start, end));
      lines.push({ line: number, text: t.endsWith('\r') ? t.slice(0, -1) : t });
    } catch {
      lines.push({ line: number, invalidUtf8: true });
    }
    start = end + 1;
    number++;
  }
  if (!lines.length) throw new UserError(`${path}: empty file`);
  return lines;
}

const SEPARATOR = ' ::: ';

/** `ID ::: TITLE ::: GENRE ::: DESCRIPTION` (train, solution) or `ID ::: TITLE ::: DESCRIPTION` (test). */
function parseText(lines: Line[], file: string, role: Role) {
  const expected = hasGenre(role) ? 4 : 3;
  const records: SourceRecord[] = [];
  const rejects: Reject[] = [];
  for (const entry of lines) {
    if ('invalidUtf8' in entry) {
      rejects.push({ file, line: entry.line, reason: 'invalid UTF-8', text: '' });
      continue;
    }
    if (!entry.text.trim()) continue;
    const fields = entry.text.split(SEPARATOR);
    // The description is last: a trailing " :::" left by some exports is tolerated.
    if (fields.length === expected + 1 && fields[expected]!.trim() === '') fields.pop();
    if (fields.length !== expected) {
      rejects.push({ file, line: entry.line, reason: `expected ${expected} fields separated by " ::: ", found ${fields.length}`, text: excerpt(entry.text) });
      continue;
    }
    const [id, title, ...rest] = fields.map((f) => f.trim());
    records.push({ file, line: entry.line, id: id!, title: title!, genre: hasGenre(role) ? rest[0]! : null, description: rest[rest.length - 1]! });
  }
  return { records, rejects };
}

function parseJsonl(lines: Line[], file: string, role: Role, columns: IngestConfig['columns']) {
  const records: SourceRecord[] = [];
  const rejects: Reject[] = [];
  for (const entry of lines) {
    if ('invalidUtf8' in entry) {
      rejects.push({ file, line: entry.line, reason: 'invalid UTF-8', text: '' });
      continue;
    }
    if (!entry.text.trim()) continue;
    let value: unknown;
    try {
      value = JSON.parse(entry.text);
    } catch (error) {
      rejects.push({ file, line: entry.line, reason: `invalid JSON: ${(error as Error).message}`, text: excerpt(entry.text) });
      continue;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      rejects.push({ file, line: entry.line, reason: 'expected a JSON object', text: excerpt(entry.text) });
      continue;
    }
    const record = fromColumns(value as Record<string, unknown>, columns, role);
    if (typeof record === 'string') rejects.push({ file, line: entry.line, reason: record, text: excerpt(entry.text) });
    else records.push({ file, line: entry.line, ...record });
  }
  return { records, rejects };
}

function parseCsvFile(lines: Line[], file: string, role: Role, columns: IngestConfig['columns']) {
  const records: SourceRecord[] = [];
  const rejects: Reject[] = [];
  const badLines = new Set<number>();
  for (const entry of lines) {
    if ('invalidUtf8' in entry) {
      rejects.push({ file, line: entry.line, reason: 'invalid UTF-8', text: '' });
      badLines.add(entry.line);
    }
  }
  // Bad lines are blanked rather than dropped, so that csv-parse's line numbers stay the file's.
  const text = lines.map((l) => ('invalidUtf8' in l ? '' : l.text)).join('\n');
  let rows: { record: string[]; info: { lines: number } }[];
  try {
    rows = parseCsv(text, { bom: true, info: true, relax_column_count: true, skip_empty_lines: true, relax_quotes: true }) as never;
  } catch (error) {
    throw new UserError(`${file}: cannot read as CSV: ${(error as Error).message}`);
  }
  const header = rows.shift()?.record;
  if (!header) throw new UserError(`${file}: empty CSV file`);
  const needed = [columns.id, columns.title, columns.description, ...(hasGenre(role) ? [columns.genre] : [])];
  const missing = needed.filter((c) => !header.includes(c));
  if (missing.length) throw new UserError(`${file}: missing column(s) ${missing.join(', ')} (ingest.columns maps fields to column names; the header has ${header.join(', ')})`);
  for (const { record, info } of rows) {
    // info.lines is the line on which the record ends; multi-line quoted fields start earlier.
    const line = info.lines;
    if (record.length !== header.length) {
      rejects.push({ file, line, reason: `expected ${header.length} columns, found ${record.length}`, text: excerpt(record.join(',')) });
      continue;
    }
    const value = Object.fromEntries(header.map((h, i) => [h, record[i]]));
    const parsed = fromColumns(value, columns, role);
    if (typeof parsed === 'string') rejects.push({ file, line, reason: parsed, text: excerpt(record.join(',')) });
    else records.push({ file, line, ...parsed });
  }
  return { records, rejects };
}

function fromColumns(value: Record<string, unknown>, columns: IngestConfig['columns'], role: Role): Omit<SourceRecord, 'file' | 'line'> | string {
  const get = (column: string) => {
    const v = value[column];
    return v === undefined || v === null ? undefined : String(v).trim();
  };
  const id = get(columns.id);
  const description = get(columns.description);
  if (id === undefined) return `missing field "${columns.id}"`;
  if (description === undefined) return `missing field "${columns.description}"`;
  // A test file with a genre column (CSV, JSONL) keeps its genres: the test split is then scored.
  const genre = hasGenre(role) ? get(columns.genre) : get(columns.genre) || null;
  if (genre === undefined) return `missing field "${columns.genre}"`;
  return { id, title: get(columns.title) ?? '', genre, description, image: get(columns.image) || null };
}

export function excerpt(text: string, max = 200): string {
  return text.length > max ? `${text.slice(0, max)}...` : text;
}
