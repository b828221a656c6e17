import { readFileSync, writeFileSync } from 'node:fs';
import { Bool, Field, FixedSizeList, Float32, Int32, List, Schema, Table, makeData, makeVector, tableFromIPC, tableToIPC, vectorFromArray, Utf8, type Data, type Vector } from 'apache-arrow';

/**
 * Arrow IPC (file format) for the dense tensors between stages: token ids per row, and one
 * `FixedSizeList<Float32>[hidden]` vector per row. pyarrow (`pa.ipc.open_file`), polars
 * (`read_ipc`) and DuckDB read them. Buffers are built directly, without per-row objects.
 */

export interface TokenTable {
  /** All rows' ids, concatenated; row i is ids[offsets[i] .. offsets[i + 1]). */
  ids: Int32Array;
  offsets: Int32Array;
  /** Whether the row was cut at max_length. */
  truncated: Uint8Array;
}

export const rowCount = (tokens: TokenTable) => tokens.offsets.length - 1;
export const lengthOf = (tokens: TokenTable, row: number) => tokens.offsets[row + 1]! - tokens.offsets[row]!;

/** Every row's token count, in row order. */
export function rowLengths(tokens: TokenTable): Int32Array {
  const lengths = new Int32Array(rowCount(tokens));
  for (let i = 0; i < lengths.length; i++) lengths[i] = lengthOf(tokens, i);
  return lengths;
}

/**
 * What makes an Arrow artifact readable on its own: each row's movie `id` (the same as in the
 * Parquet file it aligns with, so pandas and polars can join instead of trusting positions) and
 * schema metadata saying what the columns came from (model, pooling, featurizer, ...).
 */
export interface Annotations {
  rowIds?: readonly string[];
  metadata?: Record<string, string>;
}

function annotated(columns: Record<string, Vector>, annotations: Annotations): Table {
  const withIds = annotations.rowIds ? { id: vectorFromArray(annotations.rowIds as string[], new Utf8()), ...columns } : columns;
  const table = new Table(withIds);
  if (!annotations.metadata) return table;
  return new Table(new Schema(table.schema.fields, new Map(Object.entries(annotations.metadata))), table.batches);
}

/** The `id` column of a tokens or embeddings file, when it has one. */
export function readRowIds(path: string): string[] | undefined {
  const column = tableFromIPC(readFileSync(path)).getChild('id');
  return column ? (column.toArray() as string[]) : undefined;
}

/** The schema metadata of an Arrow file. */
export function readArrowMetadata(path: string): Record<string, string> {
  return Object.fromEntries(tableFromIPC(readFileSync(path)).schema.metadata);
}

export function writeTokens(path: string, tokens: TokenTable, annotations: Annotations = {}): void {
  const rows = rowCount(tokens);
  const lengths = rowLengths(tokens);
  const idsData = makeData({ type: new List(new Field('item', new Int32(), false)), length: rows, nullCount: 0, valueOffsets: tokens.offsets, child: makeData({ type: new Int32(), length: tokens.ids.length, data: tokens.ids }) });
  const table = annotated(
    {
      input_ids: makeVector(idsData),
      length: makeVector(lengths),
      truncated: makeVector(makeData({ type: new Bool(), length: rows, nullCount: 0, data: packBits(tokens.truncated) })),
    },
    annotations,
  );
  writeFileSync(path, tableToIPC(table, 'file'));
}

/** A tokens file's table, with each row's movie id when the file has them. */
export function readTokens(path: string): TokenTable & { rowIds?: string[] } {
  const table = tableFromIPC(readFileSync(path));
  const column = table.getChild('input_ids')!;
  const rows = table.numRows;
  const offsets = new Int32Array(rows + 1);
  const parts: Int32Array[] = [];
  let row = 0;
  let total = 0;
  for (const data of column.data as Data<List<Int32>>[]) {
    const base = data.valueOffsets[data.offset]!;
    for (let i = 0; i < data.length; i++) offsets[++row] = total + data.valueOffsets[data.offset + i + 1]! - base;
    const values = data.children[0]!.values as Int32Array;
    const end = data.valueOffsets[data.offset + data.length]!;
    parts.push(values.subarray(base, end));
    total += end - base;
  }
  const ids = new Int32Array(total);
  let at = 0;
  for (const part of parts) {
    ids.set(part, at);
    at += part.length;
  }
  const truncatedColumn = table.getChild('truncated')!;
  const truncated = new Uint8Array(rows);
  for (let i = 0; i < rows; i++) truncated[i] = truncatedColumn.get(i) ? 1 : 0;
  const idColumn = table.getChild('id');
  return { ids, offsets, truncated, rowIds: idColumn ? (idColumn.toArray() as string[]) : undefined };
}

/** Row-major vectors, one per row; `rowIndex` (optional) says which row each one belongs to. */
export interface EmbeddingTable {
  vectors: Float32Array;
  hidden: number;
  rowIndex?: Int32Array;
}

export function embeddingVector(vectors: Float32Array, hidden: number): Vector<FixedSizeList<Float32>> {
  const rows = vectors.length / hidden;
  const child = makeData({ type: new Float32(), length: vectors.length, data: vectors });
  return makeVector(makeData({ type: new FixedSizeList(hidden, new Field('item', new Float32(), false)), length: rows, nullCount: 0, child }));
}

export function writeEmbeddings(path: string, table: EmbeddingTable, annotations: Annotations = {}): void {
  const columns: Record<string, Vector> = {};
  if (table.rowIndex) columns.row = makeVector(table.rowIndex);
  columns.embedding = embeddingVector(table.vectors, table.hidden);
  writeFileSync(path, tableToIPC(annotated(columns, annotations), 'file'));
}

export function readEmbeddings(path: string): EmbeddingTable {
  const table = tableFromIPC(readFileSync(path));
  const column = table.getChild('embedding');
  if (!column) throw new Error(`${path}: no embedding column`);
  const hidden = (column.type as FixedSizeList).listSize;
  const vectors = new Float32Array(table.numRows * hidden);
  let at = 0;
  for (const data of column.data) {
    const values = data.children[0]!.values as Float32Array;
    const start = data.offset * hidden;
    vectors.set(values.subarray(start, start + data.length * hidden), at);
    at += data.length * hidden;
  }
  const rowColumn = table.getChild('row');
  const rowIndex = rowColumn ? Int32Array.from(rowColumn.toArray() as Int32Array) : undefined;
  return { vectors, hidden, rowIndex };
}

function packBits(flags: Uint8Array): Uint8Array {
  const bits = new Uint8Array(Math.ceil(flags.length / 8));
  for (let i = 0; i < flags.length; i++) if (flags[i]) bits[i >> 3]! |= 1 << (i & 7);
  return bits;
}
