import { Worker } from 'node:worker_threads';
import type { SparseRows } from './rows.js';
import { applyUpdate, StepRules, type OptimizerSettings } from './optimizer.js';
import { instantiateLoops, runJob, SharedArena, sparseTimesKernel, type BatchArrays, type Job, type LayerArrays, type SimdLoops, type StepHistory } from './sparse-kernels.js';

/**
 * The MLP's first dense layer on sparse rows, computing only their non-zeros: a row's output is
 * the bias plus the value-weighted sum of the kernel rows its columns name, and the kernel's
 * gradient touches only those rows.
 *
 * Why not TF.js: it has no sparse tensors; tf.gather's gradient needs UnsortedSegmentSum, which
 * its wasm backend lacks; and its wasm GatherV2 copies a batch's 2,700 kernel rows of 512 in about
 * 60 ms, longer than the dense matmul it would replace. The loops are WebAssembly with SIMD
 * (assembly/sparse-kernels.ts, AssemblyScript) over one shared memory that holds the layer's
 * arrays. The rest of the network runs in ONNX Runtime or TF.js (train/trainers.ts).
 *
 * The optimizer is the one configured, with TF.js's own update rules and constants. A dense
 * layer's optimizer moves every weight at every step (a weight whose gradient is 0 still moves by
 * its momentum); that pass over all 8,192 x 512 weights is most of a step. Adam without L2 is
 * applied lazily instead: a row's gradient waits in place until the row is next read; then, in
 * one pass over the row, that step's update and the steps it sat out since (in one closed-form
 * catch-up, sparse-kernels.ts) bring it up to date; every row is brought up to date before the
 * weights are read (`flush`). The catch-up takes Adam's epsilon into account (a short series
 * around its mean over the steps caught up), so training equals the dense computation within
 * float rounding (a test holds a lazy and a dense run of 60 steps together, at every step).
 *
 * Each loop is split across the cores (this thread and workers sharing the layer's memory) by
 * ranges that no two threads write: kernel rows for the catch-up and the gradients, batch rows
 * for the outputs. Each value is computed as one thread would compute it, in the same order.
 */
/** A worker thread running the layer's loops on ranges it is given (sparse-worker.ts). */
class LayerWorker {
  private readonly worker: Worker;
  private pending: { resolve: () => void; reject: (e: Error) => void } | undefined;

  constructor(layer: LayerArrays) {
    this.worker = new Worker(new URL('./sparse-worker.js', import.meta.url), { workerData: layer, execArgv: [] });
    this.worker.on('message', () => {
      this.worker.unref();
      this.pending?.resolve();
    });
    this.worker.on('error', (error) => this.pending?.reject(error));
    // An idle worker does not keep the process alive; one at work does (run refs it).
    this.worker.unref();
  }

  /** New batch or history arrays (they grew); messages arrive in order, so before any job that reads them. */
  share(arrays: { batch: BatchArrays; history: StepHistory }): void {
    this.worker.postMessage({ arrays });
  }

  run(job: Job): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.worker.ref();
      this.worker.postMessage({ job });
    });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

export class SparseDenseLayer {
  private readonly arrays: LayerArrays;
  private readonly arena: SharedArena;
  private readonly loops: SimdLoops;
  private readonly scoring: SparseProduct;
  private readonly biasGrad: Float32Array;
  private readonly biasSlot1: Float32Array;
  private readonly biasSlot2: Float32Array;
  private readonly rules: StepRules;
  private pool: LayerWorker[] | undefined;
  /** Work smaller than this many weights is done on this thread alone (a message costs more). */
  private readonly parallelFrom: number;
  /** Lazy Adam (no L2): each row's gradient waits until the row is next read. */
  private readonly lazy: boolean;
  private history: StepHistory;
  private batch: BatchArrays;
  /** Per kernel row: 1 + its index in the batch's row list, 0 when the batch does not read it. */
  private readonly slotOf: Int32Array;
  private steps = 0;
  /** How many kernel rows the current batch reads. */
  private readCount = 0;

  constructor(
    kernel: Float32Array,
    bias: Float32Array,
    optimizer: OptimizerSettings,
    private readonly l2 = 0,
    options: { threads?: number; parallelFrom?: number; /** Adam over every weight at every step, as TF.js does (the reference the lazy update is tested against). */ dense?: boolean } = {},
  ) {
    const units = bias.length;
    const width = kernel.length / units;
    const arena = (this.arena = new SharedArena(16 * kernel.length + 5 * width + (1 << 20)));
    this.arrays = {
      memory: arena.memory,
      units,
      kernel: arena.floats(kernel.length),
      bias: arena.floats(units),
      kernelGrad: arena.floats(kernel.length),
      slot1: arena.floats(kernel.length),
      slot2: arena.floats(kernel.length),
      rowStep: arena.ints(width),
      pending: arena.bytes(width),
    };
    this.loops = instantiateLoops(arena.memory);
    this.scoring = new SparseProduct(arena, this.loops, this.arrays);
    this.history = { stepAt: arena.doubles(1024), unbiasAt: arena.doubles(1024) };
    this.arrays.kernel.set(kernel);
    this.arrays.bias.set(bias);
    this.biasGrad = arena.floats(units);
    this.biasSlot1 = arena.floats(units);
    this.biasSlot2 = arena.floats(units);
    this.parallelFrom = options.parallelFrom ?? 1 << 16;
    this.rules = new StepRules(optimizer);
    this.lazy = optimizer.name === 'adam' && !l2 && !options.dense;
    this.slotOf = new Int32Array(width);
    const threads = Math.max(1, Math.floor(options.threads ?? 1));
    if (threads > 1) this.pool = Array.from({ length: threads - 1 }, () => new LayerWorker(this.arrays));
    this.batch = this.batchArrays(64, 64 * 128);
  }

  /** [width, units], row-major, as TF.js's Dense kernel (current after `flush`). */
  get kernel(): Float32Array {
    return this.arrays.kernel;
  }

  get bias(): Float32Array {
    return this.arrays.bias;
  }

  get units(): number {
    return this.arrays.units;
  }

  /** Row-major outputs ([picks, units], before the activation) of rows `picks`. */
  async forward(rows: SparseRows, picks: ArrayLike<number>): Promise<Float32Array> {
    this.setBatch(rows, picks);
    const { units } = this;
    // The rows read, brought up to date with the last step, as the dense layer would have moved them.
    if (this.lazy) await this.split('catch-up', this.readCount, (start, end) => ({ kind: 'catch-up', start, end, to: this.steps, all: false }), this.readCount * units);
    await this.split('gather', picks.length, (start, end) => ({ kind: 'gather', start, end }), this.batch.batchPtr[picks.length]! * units);
    return this.batch.out.slice(0, picks.length * units);
  }

  /** Adds the gradients of the outputs' gradient `dOut` ([picks, units], for the batch of the last `forward`) to this step's. */
  async backward(dOut: Float32Array): Promise<void> {
    const { units, biasGrad } = this;
    this.batch.dOut.set(dOut);
    for (let o = 0; o < dOut.length; o += units) for (let u = 0; u < units; u++) biasGrad[u]! += dOut[o + u]!;
    await this.split('accumulate', this.readCount, (start, end) => ({ kind: 'accumulate', start, end }), this.batch.rowPtr[this.readCount]! * units);
  }

  /** The L2 penalty of the kernel (part of the loss, as the dense layer's regularizer adds it). */
  penalty(): number {
    if (!this.l2) return 0;
    let sum = 0;
    for (const w of this.kernel) sum += w * w;
    return this.l2 * sum;
  }

  /**
   * One optimizer step with this step's gradients. Lazy Adam: the rows the batch read keep their
   * gradient until they are next read. Otherwise every weight moves, split across the threads.
   */
  async step(lr: number): Promise<void> {
    const rule = { ...this.rules.current(lr), l2: this.l2 };
    const { units, kernelGrad, pending } = this.arrays;
    const read = this.batch.rows.subarray(0, this.readCount);
    if (this.lazy) {
      this.steps++;
      this.record(rule.step, rule.unbias);
      for (const row of read) pending[row] = 1;
    } else {
      const n = this.kernel.length;
      await this.split('update', n / units, (start, end) => ({ kind: 'update', start: start * units, end: end * units, rule }), n);
      for (const row of read) kernelGrad.fill(0, row * units, (row + 1) * units);
    }
    applyUpdate(this.loops, { ...rule, l2: 0 }, this.bias, this.biasGrad, this.biasSlot1, this.biasSlot2, 0, units);
    this.biasGrad.fill(0);
    this.rules.advance();
  }

  /** Outputs of rows `start` to `end` for scoring (no step under way: after `flush`). */
  outputs(rows: SparseRows, start: number, end: number): Float32Array {
    return this.scoring.outputs(rows, start, end);
  }

  /** Every kernel row up to date with the last step (before the weights are read: a validation pass, saving). */
  async flush(): Promise<void> {
    if (!this.lazy) return;
    const width = this.arrays.rowStep.length;
    await this.split('catch-up', width, (start, end) => ({ kind: 'catch-up', start, end, to: this.steps, all: true }), width * this.units);
  }

  /** Stops the worker threads (training is over). */
  async close(): Promise<void> {
    await Promise.all((this.pool ?? []).map((w) => w.close()));
    this.pool = undefined;
  }

  /** The batch of rows `picks`: its non-zeros in batch order, and grouped by kernel row. */
  private setBatch(rows: SparseRows, picks: ArrayLike<number>): void {
    let entries = 0;
    for (let b = 0; b < picks.length; b++) entries += rows.indptr[picks[b]! + 1]! - rows.indptr[picks[b]!]!;
    if (picks.length > this.batch.batchPtr.length - 1 || entries > this.batch.batchCols.length) this.batch = this.batchArrays(Math.max(picks.length, this.batch.batchPtr.length - 1), Math.max(entries, this.batch.batchCols.length * 2));
    const { batchPtr, batchCols, batchValues, rows: read, rowPtr, entryBatch, entryValues } = this.batch;
    const { slotOf } = this;
    // Batch order, counting each kernel row's entries.
    let count = 0;
    let at = 0;
    rowPtr.fill(0, 0, Math.min(rowPtr.length, entries + 1));
    for (let b = 0; b < picks.length; b++) {
      batchPtr[b] = at;
      for (let k = rows.indptr[picks[b]!]!; k < rows.indptr[picks[b]! + 1]!; k++) {
        const col = rows.indices[k]!;
        batchCols[at] = col;
        batchValues[at++] = rows.values[k]!;
        if (!slotOf[col]) (read[count] = col), (slotOf[col] = ++count);
        rowPtr[slotOf[col]]!++;
      }
    }
    batchPtr[picks.length] = at;
    // Entries grouped by kernel row, each group in batch order.
    for (let j = 0; j < count; j++) rowPtr[j + 1]! += rowPtr[j]!;
    const fill = rowPtr.slice(0, count);
    for (let b = 0; b < picks.length; b++) {
      for (let k = batchPtr[b]!; k < batchPtr[b + 1]!; k++) {
        const e = fill[slotOf[batchCols[k]!]! - 1]!++;
        entryBatch[e] = b;
        entryValues[e] = batchValues[k]!;
      }
    }
    for (let j = 0; j < count; j++) slotOf[read[j]!] = 0;
    this.readCount = count;
  }

  private batchArrays(rows: number, entries: number): BatchArrays {
    const { units } = this.arrays;
    const arena = this.arena;
    const batch = {
      batchPtr: arena.ints(rows + 1),
      batchCols: arena.ints(entries),
      batchValues: arena.floats(entries),
      rows: arena.ints(entries),
      rowPtr: arena.ints(entries + 1),
      entryBatch: arena.ints(entries),
      entryValues: arena.floats(entries),
      out: arena.floats(rows * units),
      dOut: arena.floats(rows * units),
    };
    for (const worker of this.pool ?? []) worker.share({ batch, history: this.history });
    return batch;
  }

  /** Adam's constants of step `steps`, the history growing by doubling (and shared again when it does). */
  private record(step: number, unbias: number): void {
    if (this.steps >= this.history.stepAt.length) {
      const grow = (old: Float64Array) => {
        const next = this.arena.doubles(old.length * 2);
        next.set(old);
        return next;
      };
      this.history = { stepAt: grow(this.history.stepAt), unbiasAt: grow(this.history.unbiasAt) };
      for (const worker of this.pool ?? []) worker.share({ batch: this.batch, history: this.history });
    }
    this.history.stepAt[this.steps] = step;
    this.history.unbiasAt[this.steps] = unbias;
  }

  /**
   * Runs a loop over `count` items in ranges, one a thread (this one last, so the workers start
   * first); alone when the work (`weights` touched) is too small to be worth a message.
   */
  private async split(kind: Job['kind'], count: number, job: (start: number, end: number) => Job, weights: number): Promise<void> {
    const threads = this.pool && weights >= this.parallelFrom ? this.pool.length + 1 : 1;
    const bounds = this.bounds(kind, count, threads);
    const others = this.pool && threads > 1 ? this.pool.map((worker, i) => worker.run(job(bounds[i + 1]!, bounds[i + 2]!))) : [];
    runJob(this.loops, this.arrays, this.batch, this.history, job(bounds[0]!, bounds[1]!));
    await Promise.all(others);
  }

  /** Range ends splitting `count` items into `parts` of about equal work. */
  private bounds(kind: Job['kind'], count: number, parts: number): number[] {
    const even = Array.from({ length: parts + 1 }, (_, i) => Math.round((i * count) / parts));
    // Gradients cost by entry, not by row: split the grouped entries evenly.
    const ptr = kind === 'accumulate' ? this.batch.rowPtr : kind === 'gather' ? this.batch.batchPtr : undefined;
    if (!ptr || parts === 1) return even;
    const total = ptr[count]!;
    const bounds = [0];
    let j = 0;
    for (let p = 1; p < parts; p++) {
      while (j < count && ptr[j]! < (p * total) / parts) j++;
      bounds.push(j);
    }
    bounds.push(count);
    return bounds;
  }
}

/**
 * A first dense layer's outputs (before its activation) on sparse rows, for scoring: the bias plus
 * each non-zero's value times its kernel row, by the loop the layer trains with. An 8,192-wide
 * TF-IDF row costs its 84 non-zeros, not 8,192 columns (mlp/model.ts scores sparse rows this way).
 */
export class SparseProduct {
  private scratch: { indptr: Int32Array; cols: Int32Array; values: Float32Array; out: Float32Array } | undefined;

  constructor(
    private readonly arena: SharedArena,
    private readonly loops: SimdLoops,
    private readonly layer: Pick<LayerArrays, 'units' | 'kernel' | 'bias'>,
  ) {}

  /** A product of its own over a copy of `kernel` ([width, units], row-major) and `bias`. */
  static of(kernel: Float32Array, bias: Float32Array): SparseProduct {
    const arena = new SharedArena(4 * (kernel.length + bias.length) + (1 << 20));
    const layer = { units: bias.length, kernel: arena.floats(kernel.length), bias: arena.floats(bias.length) };
    layer.kernel.set(kernel);
    layer.bias.set(bias);
    return new SparseProduct(arena, instantiateLoops(arena.memory), layer);
  }

  get units(): number {
    return this.layer.units;
  }

  /** Row-major outputs ([end - start, units]) of rows `start` to `end`. */
  outputs(rows: SparseRows, start: number, end: number): Float32Array {
    // The rows go into the layer's memory first (the loop reads nothing else).
    const [first, last] = [rows.indptr[start]!, rows.indptr[end]!];
    const scratch = this.scratchFor(end - start, last - first);
    for (let r = start; r <= end; r++) scratch.indptr[r - start] = rows.indptr[r]! - first;
    scratch.cols.set(rows.indices.subarray(first, last));
    scratch.values.set(rows.values.subarray(first, last));
    sparseTimesKernel(this.loops, this.layer, scratch.indptr, scratch.cols, scratch.values, 0, end - start, scratch.out);
    return scratch.out.slice(0, (end - start) * this.units);
  }

  /** Room in the memory for `rows` rows with `entries` non-zeros (kept for the next call). */
  private scratchFor(rows: number, entries: number) {
    const have = this.scratch;
    if (have && have.indptr.length > rows && have.cols.length >= entries) return have;
    const arena = this.arena;
    const [r, e] = [Math.max(rows + 1, have?.indptr.length ?? 0), Math.max(entries, 2 * (have?.cols.length ?? 0))];
    return (this.scratch = { indptr: arena.ints(r), cols: arena.ints(e), values: arena.floats(e), out: arena.floats(r * this.units) });
  }
}
