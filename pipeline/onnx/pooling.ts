export type Pooling = 'mean' | 'cls' | 'pooler';

/**
 * Reduces a batch's outputs to one vector per row, written to `out` at `row * hidden`.
 * `hidden` states are [batch, length, hidden]; `mean` averages over each row's real tokens only
 * ([CLS] and [SEP] included, padding excluded), as sentence-transformers does.
 */
export function poolBatch(
  kind: Pooling,
  output: Float32Array,
  batch: number,
  length: number,
  hidden: number,
  rowLengths: ArrayLike<number>,
  write: (b: number, vector: Float32Array) => void,
): void {
  const vector = new Float32Array(hidden);
  for (let b = 0; b < batch; b++) {
    if (kind === 'pooler') {
      vector.set(output.subarray(b * hidden, (b + 1) * hidden));
    } else if (kind === 'cls') {
      vector.set(output.subarray(b * length * hidden, b * length * hidden + hidden));
    } else {
      vector.fill(0);
      const n = rowLengths[b]!;
      for (let t = 0; t < n; t++) {
        const base = (b * length + t) * hidden;
        for (let h = 0; h < hidden; h++) vector[h]! += output[base + h]!;
      }
      for (let h = 0; h < hidden; h++) vector[h]! /= n;
    }
    write(b, vector);
  }
}

/** Floating-point operations of one BERT forward pass over a [batch, length] input. */
export function bertFlops(shape: { layers: number; hidden: number; intermediate: number }, batch: number, length: number): number {
  const tokens = batch * length;
  const { hidden: h, intermediate: i, layers } = shape;
  const perLayer = 2 * tokens * (4 * h * h + 2 * h * i) + 4 * batch * length * length * h;
  return layers * perLayer;
}

/** The cosine similarity of each row of `a` with the same row of `b` (row-major, `hidden` per row). */
export function rowCosines(a: Float32Array, b: Float32Array, hidden: number): Float64Array {
  const rows = a.length / hidden;
  const cosines = new Float64Array(rows);
  for (let row = 0; row < rows; row++) {
    let dot = 0;
    let na = 0;
    let nb = 0;
    for (let h = row * hidden; h < (row + 1) * hidden; h++) {
      dot += a[h]! * b[h]!;
      na += a[h]! * a[h]!;
      nb += b[h]! * b[h]!;
    }
    cosines[row] = dot / Math.sqrt(na * nb);
  }
  return cosines;
}
