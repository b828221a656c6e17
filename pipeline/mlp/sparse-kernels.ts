import { assemblyModule } from './wasm.js';
import { applyUpdate, BETA1, BETA2, EPSILON, type UpdateLoops, type UpdateRule } from './optimizer.js';

/**
 * The loops of the sparse first layer (sparse.ts), over memory the training thread shares with
 * its worker threads (sparse-worker.ts): each call works on a range (of kernel rows, or of the
 * batch's rows) that no other thread writes, so splitting a step across threads changes no bit
 * of its result.
 */

/** The layer's weights and optimizer state (row-major [width, units]). */
export interface LayerArrays {
  /** Holds every array of the layer and of its batches (the WebAssembly loops read only it). */
  memory: WebAssembly.Memory;
  units: number;
  kernel: Float32Array;
  bias: Float32Array;
  /** The gradient of each kernel row the batch read (lazy Adam: kept until the row is next read). */
  kernelGrad: Float32Array;
  slot1: Float32Array;
  slot2: Float32Array;
  /** Lazy Adam: the step each kernel row is up to date with, and whether the next step's gradient waits in kernelGrad. */
  rowStep: Int32Array;
  pending: Uint8Array;
}

/**
 * One batch, twice: its rows' non-zeros in batch order (for the outputs), and grouped by the
 * kernel row they read (for gradients and catch-up): `rows[j]` is read by entries `rowPtr[j]` to
 * `rowPtr[j + 1]`, each a batch row and a value, in batch order.
 */
export interface BatchArrays {
  batchPtr: Int32Array;
  batchCols: Int32Array;
  batchValues: Float32Array;
  rows: Int32Array;
  rowPtr: Int32Array;
  entryBatch: Int32Array;
  entryValues: Float32Array;
  /** [batch, units]: the layer's outputs, then the gradient they get back. */
  out: Float32Array;
  dOut: Float32Array;
}

/** Adam's constants of each step so far (index = step, from 1): lr / (1 - beta1^t) and 1 / sqrt(1 - beta2^t). */
export interface StepHistory {
  stepAt: Float64Array;
  unbiasAt: Float64Array;
}

/** Lazy Adam's catch-up reads at most this many sat-out steps: (beta1 / sqrt(beta2))^400 < 1e-18. */
const CATCH_UP_STEPS = 400;
const RATIO_POWERS = Float64Array.from({ length: CATCH_UP_STEPS + 1 }, (_, k) => (BETA1 / Math.sqrt(BETA2)) ** k);
const SQRT_BETA2_POWERS = Float64Array.from({ length: CATCH_UP_STEPS + 1 }, (_, k) => BETA2 ** (k / 2));

/** The WebAssembly loops (assembly/sparse-kernels.ts, with the update rules), instantiated on a thread over the layer's memory. */
export interface SimdLoops extends UpdateLoops {
  sparseTimesKernel(units: number, kernel: number, bias: number, indptr: number, cols: number, values: number, start: number, end: number, out: number, outStart: number): void;
  accumulateGrads(units: number, kernelGrad: number, rows: number, rowPtr: number, entryBatch: number, entryValues: number, dOut: number, start: number, end: number): void;
  catchUpRow(
    units: number, kernel: number, kernelGrad: number, slot1: number, slot2: number, first: number,
    pending: number, step: number, unbias: number,
    center: number, a: number, b: number, c: number, d: number, spread: number, terms: number, decay1: number, decay2: number,
    stepAt: number, unbiasAt: number, from: number,
  ): void;
}

/** The loops on this thread, over `memory` (every array they are given must lie in it). */
export function instantiateLoops(memory: WebAssembly.Memory): SimdLoops {
  return new WebAssembly.Instance(assemblyModule('sparse-kernels'), { env: { memory } }).exports as unknown as SimdLoops;
}

/**
 * Typed arrays carved out of one shared WebAssembly memory, which grows as they are asked for
 * (growing keeps every array already given out where it is). Nothing is freed: the layer's
 * arrays live as long as it does, and the batch's are reallocated only when a batch outgrows them.
 */
export class SharedArena {
  readonly memory: WebAssembly.Memory;
  /** The first page is left to the module (it has no data now, but a static segment would go there). */
  private next = PAGE;

  constructor(bytes: number) {
    const initial = Math.ceil((PAGE + bytes) / PAGE) + 1;
    if (initial > MAX_PAGES) throw new Error(`sparse layer: its weights and optimizer state need ${(bytes / 2 ** 30).toFixed(1)} GiB, more than WebAssembly's 4 GiB; lower embed.max_features or the first layer's units`);
    this.memory = new WebAssembly.Memory({ initial, maximum: MAX_PAGES, shared: true });
  }

  floats(n: number): Float32Array {
    const at = this.take(n * 4);
    return new Float32Array(this.memory.buffer, at, n);
  }

  ints(n: number): Int32Array {
    const at = this.take(n * 4);
    return new Int32Array(this.memory.buffer, at, n);
  }

  doubles(n: number): Float64Array {
    const at = this.take(n * 8);
    return new Float64Array(this.memory.buffer, at, n);
  }

  bytes(n: number): Uint8Array {
    const at = this.take(n);
    return new Uint8Array(this.memory.buffer, at, n);
  }

  /** Where the next `bytes` go, the memory grown first if they do not fit (read `memory.buffer` after: growing replaces it). */
  private take(bytes: number): number {
    const at = this.next;
    this.next = at + Math.ceil(bytes / 16) * 16;
    const have = this.memory.buffer.byteLength;
    if (this.next > have) {
      const pages = Math.max(Math.ceil((this.next - have) / PAGE), Math.ceil(have / PAGE / 4));
      if (have / PAGE + pages > MAX_PAGES) throw new Error(`sparse layer: the batch needs more than WebAssembly's 4 GiB of memory; lower train.batch_size`);
      this.memory.grow(pages);
    }
    return at;
  }
}
const PAGE = 65536;
const MAX_PAGES = 65536;

/** Outputs of batch rows `start` to `end`: the bias plus each non-zero's value times its kernel row. */
export function gatherOutputs(loops: SimdLoops, layer: LayerArrays, batch: BatchArrays, start: number, end: number): void {
  sparseTimesKernel(loops, layer, batch.batchPtr, batch.batchCols, batch.batchValues, start, end, batch.out);
}

/** Rows `start` to `end` of compressed rows times the kernel, plus the bias, into `out` from its row `start - outStart` (every array in the layer's memory). */
export function sparseTimesKernel(loops: SimdLoops, layer: Pick<LayerArrays, 'units' | 'kernel' | 'bias'>, indptr: Int32Array, cols: Int32Array, values: Float32Array, start: number, end: number, out: Float32Array, outStart = 0): void {
  loops.sparseTimesKernel(layer.units, layer.kernel.byteOffset, layer.bias.byteOffset, indptr.byteOffset, cols.byteOffset, values.byteOffset, start, end, out.byteOffset, outStart);
}

/** Adds each read kernel row's gradient (value times its batch row's output gradient) for rows `rows[start]` to `rows[end - 1]`. */
export function accumulateGrads(loops: SimdLoops, layer: LayerArrays, batch: BatchArrays, start: number, end: number): void {
  const { rows, rowPtr, entryBatch, entryValues, dOut } = batch;
  loops.accumulateGrads(layer.units, layer.kernelGrad.byteOffset, rows.byteOffset, rowPtr.byteOffset, entryBatch.byteOffset, entryValues.byteOffset, dOut.byteOffset, start, end);
}

/** An eager optimizer's step over kernel weights `start` to `end` (every weight moves, sparse.ts). */
export function updateRange(loops: SimdLoops, layer: LayerArrays, rule: UpdateRule, start: number, end: number): void {
  applyUpdate(loops, rule, layer.kernel, layer.kernelGrad, layer.slot1, layer.slot2, start, end);
}

/**
 * What the steps `from + 1` to `to` (no gradient) do to a row: the series' per-row scalars,
 * cached (rows last read at the same step share them).
 */
interface SatOut {
  terms: number;
  /** e_k's center: epsilon / unbias of step `from` (so that 1 / (s + center) is what that step's update divides by). */
  center: number;
  /** Sums over the steps of w_k (d_k)^n, d_k = e_k - center, for n = 0 to 3. */
  a: number;
  b: number;
  c: number;
  d: number;
  /** (sum of w_k d_k^4 / a)^(1/4): the series' error is at most (spread t)^4 of the move. */
  spread: number;
}
const satOutCache = { history: undefined as StepHistory | undefined, to: -1, byFrom: new Map<number, SatOut>() };

function satOut(history: StepHistory, from: number, to: number): SatOut {
  if (satOutCache.history !== history || satOutCache.to !== to) Object.assign(satOutCache, { history, to, byFrom: new Map() });
  const cached = satOutCache.byFrom.get(from);
  if (cached) return cached;
  const { stepAt, unbiasAt } = history;
  const center = from > 0 ? EPSILON / unbiasAt[from]! : 0;
  // Terms beyond a few hundred steps are below float32's resolution of the weight.
  const terms = Math.min(Math.max(0, to - from), CATCH_UP_STEPS);
  let [a, b, c, d, fourth] = [0, 0, 0, 0, 0];
  for (let k = 1; k <= terms; k++) {
    const w = (stepAt[from + k]! / unbiasAt[from + k]!) * RATIO_POWERS[k]!;
    const dk = EPSILON / (SQRT_BETA2_POWERS[k]! * unbiasAt[from + k]!) - center;
    const wd = w * dk;
    a += w;
    b += wd;
    c += wd * dk;
    d += wd * dk * dk;
    fourth += wd * dk * dk * dk;
  }
  const result = { terms, center, a, b, c, d, spread: terms ? (fourth / a) ** 0.25 : 0 };
  satOutCache.byFrom.set(from, result);
  return result;
}

/**
 * Brings kernel row `row` up to date with step `to` (lazy Adam). First the step whose gradient
 * waits for it, if one does (Adam's update, as TF.js computes it); then the steps it sat out,
 * with no gradient. There m and v only decay (by beta1 and beta2 a step), so at the k-th such step
 * a weight moves by w_k m / (s + e_k), with s = sqrt(v), w_k = (step/unbias) (beta1/sqrt(beta2))^k
 * of that step and e_k = epsilon / (beta2^(k/2) unbias): Adam's epsilon seen from s, the same for
 * every weight of the row. Around c = epsilon / unbias of the step before them, 1 / (s + e_k) =
 * t - d_k t^2 + d_k^2 t^3 - d_k^3 t^4 with t = 1 / (s + c) and d_k = e_k - c, small beside s + c
 * (e_k drifts only as unbias and beta2^(k/2) do), so the sum over the steps is m (A t - B t^2 +
 * C t^3 - D t^4) with per-row scalars A to D: a few multiplications a weight whatever the gap,
 * epsilon included. And t is what the waiting update divides by anyway (1 / (s + epsilon /
 * unbias) = unbias / (s unbias + epsilon)): one square root and one division a weight in all.
 * The divider is what a weight costs (four lanes at a time in the WebAssembly loop), so that counts.
 * This function finds the row's scalars; assembly/sparse-kernels.ts's catchUpRow moves its weights.
 */
export function catchUpRow(loops: SimdLoops, layer: LayerArrays, history: StepHistory, row: number, to: number): void {
  const pending = layer.pending[row] === 1;
  // The step the row's weights will be at once the waiting gradient is applied.
  const from = layer.rowStep[row]! + (pending ? 1 : 0);
  if (!pending && from >= to) return;
  // A row never read has no moments, nothing to catch up.
  if (!pending && from === 0) return void (layer.rowStep[row] = to);
  const { stepAt, unbiasAt } = history;
  const gap = Math.max(0, to - from);
  const { terms, center, a, b, c, d, spread } = satOut(history, from, to);
  const unbias = unbiasAt[from]!;
  const step = pending ? stepAt[from]! : 0;
  const { kernel, kernelGrad, slot1, slot2, units } = layer;
  loops.catchUpRow(units, kernel.byteOffset, kernelGrad.byteOffset, slot1.byteOffset, slot2.byteOffset, row * units, pending ? 1 : 0, step, unbias, center, a, b, c, d, spread, terms, BETA1 ** gap, BETA2 ** gap, stepAt.byteOffset, unbiasAt.byteOffset, from);
  layer.rowStep[row] = to;
  layer.pending[row] = 0;
}

/** Catches up kernel rows `list[start]` to `list[end - 1]` (or, without a list, rows `start` to `end`). */
export function catchUpRows(loops: SimdLoops, layer: LayerArrays, history: StepHistory, list: Int32Array | undefined, start: number, end: number, to: number): void {
  for (let j = start; j < end; j++) catchUpRow(loops, layer, history, list ? list[j]! : j, to);
}

/** The work a worker thread is given: one of the loops above on a range. */
export type Job =
  | { kind: 'catch-up'; start: number; end: number; to: number; all: boolean }
  | { kind: 'gather'; start: number; end: number }
  | { kind: 'accumulate'; start: number; end: number }
  | { kind: 'update'; start: number; end: number; rule: UpdateRule };

export function runJob(loops: SimdLoops, layer: LayerArrays, batch: BatchArrays, history: StepHistory, job: Job): void {
  if (job.kind === 'catch-up') catchUpRows(loops, layer, history, job.all ? undefined : batch.rows, job.start, job.end, job.to);
  else if (job.kind === 'gather') gatherOutputs(loops, layer, batch, job.start, job.end);
  else if (job.kind === 'accumulate') accumulateGrads(loops, layer, batch, job.start, job.end);
  else updateRange(loops, layer, job.rule, job.start, job.end);
}
