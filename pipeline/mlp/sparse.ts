import { Worker } from 'node:worker_threads';
import type { TrainConfig } from '../config/index.js';
import type { SparseRows } from './rows.js';

/**
 * The MLP's first dense layer on sparse rows, computing only their non-zeros: a row's output is
 * the bias plus the value-weighted sum of the kernel rows its columns name, and the kernel's
 * gradient touches only those rows.
 *
 * Why not TF.js: it has no sparse tensors; tf.gather's gradient needs UnsortedSegmentSum, which
 * its wasm backend lacks; and its wasm GatherV2 copies a batch's 2,700 kernel rows of 512 in about
 * 60 ms, longer than the dense matmul it would replace. Written against typed arrays, the gather
 * takes about 4 ms. The rest of the network stays in TF.js (train.ts joins the two).
 *
 * The optimizer is the one configured, with TF.js's own update rules and constants, applied to
 * every weight at every step as TF.js applies it to a dense layer (a weight whose gradient is 0
 * still moves by its momentum): training is the dense computation, within float rounding.
 */
export type OptimizerSettings = Pick<TrainConfig['optimizer'], 'name' | 'momentum'>;

/** TF.js's float32 epsilon (ENGINE.backend.epsilon()), the default of its Adam and RMSprop. */
const EPSILON = 1e-7;
const BETA1 = 0.9;
const BETA2 = 0.999;
const RMSPROP_DECAY = 0.9;

/** One step's update, as plain data (a worker thread takes it in a message). */
export interface UpdateRule {
  name: OptimizerSettings['name'];
  lr: number;
  momentum: number;
  /** The L2 factor whose gradient (2 * l2 * w) joins each weight's. */
  l2: number;
  /** Adam: lr / (1 - beta1^t), and 1 / sqrt(1 - beta2^t). */
  step: number;
  unbias: number;
}

/**
 * The update of TF.js's optimizer of the same name (tfjs-core's adam, momentum and rmsprop
 * optimizers) on weights `start` to `end`. Each gradient is set back to 0 once used, except by
 * Adam without L2, whose caller clears the rows it wrote.
 */
export function applyUpdate(rule: UpdateRule, w: Float32Array, g: Float32Array, s1: Float32Array, s2: Float32Array, start: number, end: number): void {
  const { lr, momentum, l2, step, unbias } = rule;
  if (rule.name === 'sgd') {
    for (let i = start; i < end; i++) {
      const a = momentum * s1[i]! + g[i]! + 2 * l2 * w[i]!;
      s1[i] = a;
      w[i] = w[i]! - lr * a;
      g[i] = 0;
    }
  } else if (rule.name === 'rmsprop') {
    for (let i = start; i < end; i++) {
      const gi = g[i]! + 2 * l2 * w[i]!;
      const ms = RMSPROP_DECAY * s1[i]! + (1 - RMSPROP_DECAY) * gi * gi;
      const mo = momentum * s2[i]! + (lr * gi) / Math.sqrt(ms + EPSILON);
      s1[i] = ms;
      s2[i] = mo;
      w[i] = w[i]! - mo;
      g[i] = 0;
    }
  } else if (l2) {
    for (let i = start; i < end; i++) {
      const wi = w[i]!;
      const gi = g[i]! + 2 * l2 * wi;
      const mi = BETA1 * s1[i]! + (1 - BETA1) * gi;
      const vi = BETA2 * s2[i]! + (1 - BETA2) * gi * gi;
      s1[i] = mi;
      s2[i] = vi;
      w[i] = wi - (step * mi) / (Math.sqrt(vi) * unbias + EPSILON);
      g[i] = 0;
    }
  } else {
    // The common case, kept lean (the loop is most of a sparse step): the gradient is cleared by
    // the caller where it was written.
    for (let i = start; i < end; i++) {
      const gi = g[i]!;
      const mi = BETA1 * s1[i]! + (1 - BETA1) * gi;
      const vi = BETA2 * s2[i]! + (1 - BETA2) * gi * gi;
      s1[i] = mi;
      s2[i] = vi;
      w[i] = w[i]! - (step * mi) / (Math.sqrt(vi) * unbias + EPSILON);
    }
  }
}

/** A typed array over shared memory, so worker threads update it in place. */
const shared = (n: number) => new Float32Array(new SharedArrayBuffer(n * 4));

/** A worker thread that updates a slice of the kernel (sparse-worker.ts). */
class UpdateWorker {
  private readonly worker: Worker;
  private pending: { resolve: () => void; reject: (e: Error) => void } | undefined;

  constructor(arrays: Float32Array[]) {
    this.worker = new Worker(new URL('./sparse-worker.js', import.meta.url), { workerData: { buffers: arrays.map((a) => a.buffer) }, execArgv: [] });
    this.worker.on('message', () => {
      this.worker.unref();
      this.pending?.resolve();
    });
    this.worker.on('error', (error) => this.pending?.reject(error));
    // An idle worker does not keep the process alive; one at work does (run refs it).
    this.worker.unref();
  }

  run(rule: UpdateRule, start: number, end: number): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.worker.ref();
      this.worker.postMessage({ rule, start, end });
    });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

export class SparseDenseLayer {
  /** [width, units], row-major, as TF.js's Dense kernel. */
  readonly kernel: Float32Array;
  readonly bias: Float32Array;
  private readonly kernelGrad: Float32Array;
  private readonly biasGrad: Float32Array;
  /** Per weight: Adam's first and second moments, SGD's accumulation, RMSprop's mean square and moment. */
  private readonly slot1: Float32Array;
  private readonly slot2: Float32Array;
  private readonly biasSlot1: Float32Array;
  private readonly biasSlot2: Float32Array;
  private accBeta1 = Math.fround(BETA1);
  private accBeta2 = Math.fround(BETA2);
  private pool: UpdateWorker[] | undefined;
  /** Kernel rows the batch wrote gradients to (cleared after the step). */
  private readonly touched: Uint8Array;
  private touchedRows: number[] = [];
  /** Kernels smaller than this are updated on this thread alone (a message costs more). */
  private readonly parallelFrom: number;

  constructor(
    kernel: Float32Array,
    bias: Float32Array,
    private readonly optimizer: OptimizerSettings,
    private readonly l2 = 0,
    options: { threads?: number; parallelFrom?: number } = {},
  ) {
    this.kernel = shared(kernel.length);
    this.kernel.set(kernel);
    this.bias = Float32Array.from(bias);
    this.kernelGrad = shared(kernel.length);
    this.biasGrad = new Float32Array(bias.length);
    this.slot1 = shared(kernel.length);
    this.slot2 = shared(kernel.length);
    this.biasSlot1 = new Float32Array(bias.length);
    this.biasSlot2 = new Float32Array(bias.length);
    this.parallelFrom = options.parallelFrom ?? 1 << 18;
    this.touched = new Uint8Array(kernel.length / bias.length);
    const threads = Math.max(1, Math.floor(options.threads ?? 1));
    if (threads > 1) this.pool = Array.from({ length: threads - 1 }, () => new UpdateWorker([this.kernel, this.kernelGrad, this.slot1, this.slot2]));
  }

  get units(): number {
    return this.bias.length;
  }

  /** Row-major outputs ([picks, units], before the activation) of rows `picks`. */
  forward(rows: SparseRows, picks: ArrayLike<number>): Float32Array {
    const { units, kernel } = this;
    const out = new Float32Array(picks.length * units);
    for (let b = 0; b < picks.length; b++) {
      const o = b * units;
      out.set(this.bias, o);
      for (let k = rows.indptr[picks[b]!]!; k < rows.indptr[picks[b]! + 1]!; k++) {
        const value = rows.values[k]!;
        const row = rows.indices[k]!;
        if (!this.touched[row]) (this.touched[row] = 1), this.touchedRows.push(row);
        const w = row * units;
        for (let u = 0; u < units; u++) out[o + u]! += value * kernel[w + u]!;
      }
    }
    return out;
  }

  /** Adds the gradients of the outputs' gradient `dOut` ([picks, units]) to this step's. */
  backward(rows: SparseRows, picks: ArrayLike<number>, dOut: Float32Array): void {
    const { units, kernelGrad, biasGrad } = this;
    for (let b = 0; b < picks.length; b++) {
      const o = b * units;
      for (let u = 0; u < units; u++) biasGrad[u]! += dOut[o + u]!;
      for (let k = rows.indptr[picks[b]!]!; k < rows.indptr[picks[b]! + 1]!; k++) {
        const value = rows.values[k]!;
        const row = rows.indices[k]!;
        if (!this.touched[row]) (this.touched[row] = 1), this.touchedRows.push(row);
        const w = row * units;
        for (let u = 0; u < units; u++) kernelGrad[w + u]! += value * dOut[o + u]!;
      }
    }
  }

  /** The L2 penalty of the kernel (part of the loss, as the dense layer's regularizer adds it). */
  penalty(): number {
    if (!this.l2) return 0;
    let sum = 0;
    for (let i = 0; i < this.kernel.length; i++) sum += this.kernel[i]! * this.kernel[i]!;
    return this.l2 * sum;
  }

  /**
   * One optimizer step over every weight with this step's gradients, which are then cleared. The
   * kernel's update is split across `threads` (this thread and workers sharing its memory): each
   * weight's update depends on nothing but itself, so the result is the same bit for bit.
   */
  async step(lr: number): Promise<void> {
    const rule = this.ruleParams(lr);
    const n = this.kernel.length;
    const parts = this.pool && n >= this.parallelFrom ? this.pool.length + 1 : 1;
    const bounds = Array.from({ length: parts + 1 }, (_, i) => Math.round((i * n) / parts / this.units) * this.units);
    const others = this.pool && parts > 1 ? this.pool.map((worker, i) => worker.run(rule, bounds[i + 1]!, bounds[i + 2]!)) : [];
    applyUpdate(rule, this.kernel, this.kernelGrad, this.slot1, this.slot2, bounds[0]!, bounds[1]!);
    await Promise.all(others);
    applyUpdate({ ...rule, l2: 0 }, this.bias, this.biasGrad, this.biasSlot1, this.biasSlot2, 0, this.bias.length);
    this.biasGrad.fill(0);
    for (const row of this.touchedRows) {
      this.touched[row] = 0;
      this.kernelGrad.fill(0, row * this.units, (row + 1) * this.units);
    }
    this.touchedRows = [];
    if (this.optimizer.name === 'adam') {
      this.accBeta1 = Math.fround(this.accBeta1 * BETA1);
      this.accBeta2 = Math.fround(this.accBeta2 * BETA2);
    }
  }

  /** Stops the worker threads (training is over). */
  async close(): Promise<void> {
    await Promise.all((this.pool ?? []).map((w) => w.close()));
    this.pool = undefined;
  }

  /** The step's constants, as plain data a worker can take. */
  private ruleParams(lr: number): UpdateRule {
    const { name, momentum } = this.optimizer;
    // Adam: w -= lr * (m / c1) / (sqrt(v / c2) + eps), with the divisions by c1 and c2 taken out of the loop.
    return { name, lr, momentum, l2: this.l2, step: lr / (1 - this.accBeta1), unbias: 1 / Math.sqrt(1 - this.accBeta2) };
  }
}
