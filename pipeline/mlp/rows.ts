/**
 * Feature rows as the classifier reads them: dense (row-major floats, `dim` per row) or sparse
 * (compressed rows: row i's non-zeros are `indices`/`values` from `indptr[i]` to `indptr[i + 1]`,
 * columns ascending). TF-IDF rows are sparse (about 80 non-zeros of 8,192 on the IMDb sample), and
 * stay sparse from the embed artifact to the classifier; only a batch at a time is ever dense.
 */
export interface SparseRows {
  indptr: Int32Array;
  indices: Int32Array;
  values: Float32Array;
  /** Columns per row (the dense width). */
  width: number;
}

export type FeatureRows = Float32Array | SparseRows;

export const isSparse = (rows: FeatureRows): rows is SparseRows => !(rows instanceof Float32Array);

export const rowCount = (rows: FeatureRows, dim: number) => (isSparse(rows) ? rows.indptr.length - 1 : rows.length / dim);

/** Rows `start` to `end` as dense row-major floats (a view when they already are). */
export function denseSlice(rows: FeatureRows, dim: number, start: number, end: number): Float32Array {
  if (!isSparse(rows)) return rows.subarray(start * dim, end * dim);
  const out = new Float32Array((end - start) * dim);
  for (let r = start; r < end; r++) {
    for (let k = rows.indptr[r]!; k < rows.indptr[r + 1]!; k++) out[(r - start) * dim + rows.indices[k]!] = rows.values[k]!;
  }
  return out;
}

/** The rows at `picks`, in that order, in the same form. */
export function pickRows(rows: FeatureRows, dim: number, picks: ArrayLike<number>): FeatureRows {
  if (!isSparse(rows)) {
    const out = new Float32Array(picks.length * dim);
    for (let i = 0; i < picks.length; i++) out.set(rows.subarray(picks[i]! * dim, (picks[i]! + 1) * dim), i * dim);
    return out;
  }
  const indptr = new Int32Array(picks.length + 1);
  for (let i = 0; i < picks.length; i++) indptr[i + 1] = indptr[i]! + rows.indptr[picks[i]! + 1]! - rows.indptr[picks[i]!]!;
  const indices = new Int32Array(indptr[picks.length]!);
  const values = new Float32Array(indptr[picks.length]!);
  for (let i = 0; i < picks.length; i++) {
    const from = rows.indptr[picks[i]!]!;
    const to = rows.indptr[picks[i]! + 1]!;
    indices.set(rows.indices.subarray(from, to), indptr[i]!);
    values.set(rows.values.subarray(from, to), indptr[i]!);
  }
  return { indptr, indices, values, width: rows.width };
}

/** Dense rows as sparse ones (their non-zeros). */
export function sparseFromDense(dense: Float32Array, dim: number): SparseRows {
  const rows = dense.length / dim;
  const indptr = new Int32Array(rows + 1);
  let nnz = 0;
  for (let i = 0; i < dense.length; i++) if (dense[i] !== 0) nnz++;
  const indices = new Int32Array(nnz);
  const values = new Float32Array(nnz);
  let at = 0;
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < dim; c++) {
      const v = dense[r * dim + c]!;
      if (v !== 0) (indices[at] = c), (values[at++] = v);
    }
    indptr[r + 1] = at;
  }
  return { indptr, indices, values, width: dim };
}
