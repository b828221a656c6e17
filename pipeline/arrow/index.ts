import { readFileSync, writeFileSync } from 'node:fs';
import type { SparseRows } from '../mlp/rows.js';
import { Bool, Field, FixedSizeList, Float32, Int32, List, Message, RecordBatchFileWriter, Schema, Table, makeData, makeVector, tableFromIPC, vectorFromArray, Utf8, type Data, type Vector } from 'apache-arrow';

/**
 * Arrow IPC (file format) for the tensors between stages: token ids per row, one
 * `FixedSizeList<Float32>[hidden]` vector per row, or sparse rows (two list columns). pyarrow
 * (`pa.ipc.open_file`), polars (`read_ipc`), DuckDB and flechette read them, and so do stream
 * readers that take the file's embedded stream (arrow-rs). Buffers are built directly, without
 * per-row objects.
 */

/**
 * apache-arrow's file writer (21.x) leaves the Schema message out of the file's embedded stream
 * (it is only in the footer), which the format requires at the stream's start: arrow-rs's stream
 * reader refuses such a file ("Expected a schema as the first message in the stream"). This
 * writer puts it back; the footer's block offsets follow from the writer's own position count.
 */
class SpecFileWriter extends RecordBatchFileWriter {
  protected override _writeSchema(schema: Schema): this {
    const writer = this as unknown as { _writeMagic(): typeof writer; _writePadding(n: number): typeof writer; _writeMessage(m: Message): typeof writer };
    writer._writeMagic()._writePadding(2)._writeMessage(Message.from(schema));
    return this;
  }
}

/** A table as the bytes of an Arrow IPC file. */
export function arrowFileBytes(table: Table): Uint8Array {
  return new SpecFileWriter().writeAll(table).toUint8Array(true);
}

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
  writeFileSync(path, arrowFileBytes(table));
}

/** A tokens file's table, with each row's movie id when the file has them. */
export function readTokens(path: string): TokenTable & { rowIds?: string[] } {
  const table = tableFromIPC(readFileSync(path));
  const rows = table.numRows;
  const { offsets, values: ids } = listColumn(table.getChild('input_ids')!, rows, (n) => new Int32Array(n));
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
  writeFileSync(path, arrowFileBytes(annotated(columns, annotations)));
}

/**
 * Sparse rows: `indices` (List<Int32>, columns ascending) and `values` (List<Float32>) per row,
 * the dense width in the schema metadata (`width`, and `layout: sparse`). In pyarrow:
 * `scipy.sparse.csr_matrix((values.flatten(), indices.flatten(), values.offsets), shape=(n, width))`.
 */
export function writeSparseEmbeddings(path: string, rows: SparseRows, annotations: Annotations = {}): void {
  const count = rows.indptr.length - 1;
  const indices = makeData({ type: new List(new Field('item', new Int32(), false)), length: count, nullCount: 0, valueOffsets: rows.indptr, child: makeData({ type: new Int32(), length: rows.indices.length, data: rows.indices }) });
  const values = makeData({ type: new List(new Field('item', new Float32(), false)), length: count, nullCount: 0, valueOffsets: rows.indptr, child: makeData({ type: new Float32(), length: rows.values.length, data: rows.values }) });
  const metadata = { ...annotations.metadata, layout: 'sparse', width: String(rows.width) };
  writeFileSync(path, arrowFileBytes(annotated({ indices: makeVector(indices), values: makeVector(values) }, { ...annotations, metadata })));
}

/** The values of a List column as one typed array, and each row's offsets into it. */
function listColumn<T extends Int32Array | Float32Array>(column: Vector, rows: number, make: (n: number) => T): { offsets: Int32Array; values: T } {
  const offsets = new Int32Array(rows + 1);
  const chunks: T[] = [];
  let row = 0;
  let total = 0;
  for (const data of column.data as Data<List>[]) {
    const base = data.valueOffsets[data.offset]!;
    for (let i = 0; i < data.length; i++) offsets[++row] = total + data.valueOffsets[data.offset + i + 1]! - base;
    const end = data.valueOffsets[data.offset + data.length]!;
    chunks.push((data.children[0]!.values as T).subarray(base, end) as T);
    total += end - base;
  }
  const values = make(total);
  let at = 0;
  for (const chunk of chunks) (values.set(chunk as never, at), (at += chunk.length));
  return { offsets, values };
}

/** An embeddings file's rows, dense or sparse, as it was written. */
export function readVectorFile(path: string): EmbeddingTable | SparseRows {
  const table = tableFromIPC(readFileSync(path));
  if (table.schema.metadata.get('layout') !== 'sparse') return denseOf(table, path);
  const indices = listColumn(table.getChild('indices')!, table.numRows, (n) => new Int32Array(n));
  const values = listColumn(table.getChild('values')!, table.numRows, (n) => new Float32Array(n));
  return { indptr: indices.offsets, indices: indices.values, values: values.values, width: Number(table.schema.metadata.get('width')) };
}

/** A dense embeddings file's vectors (a sparse file is an error: read it with readVectorFile). */
export function readEmbeddings(path: string): EmbeddingTable {
  const table = tableFromIPC(readFileSync(path));
  if (table.schema.metadata.get('layout') === 'sparse') throw new Error(`${path}: sparse rows (indices, values), not dense vectors`);
  return denseOf(table, path);
}

function denseOf(table: Table, path: string): EmbeddingTable {
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
