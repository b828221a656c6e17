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
 * The optimizer is the one configured, with TF.js's own update rules and constants. A dense
 * layer's optimizer moves every weight at every step (a weight whose gradient is 0 still moves by
 * its momentum); that pass over all 8,192 x 512 weights is most of a step. Adam without L2 is
 * applied lazily instead: only the kernel rows a batch reads are brought up to date (the steps
 * they sat out in one closed-form catch-up, then this step's update), and every row is brought up
 * to date before the weights are read (`flush`). The catch-up takes Adam's epsilon into account
 * (a short series around its mean over the steps caught up), so training
 * equals the dense computation within float rounding (a test holds a lazy and a dense run of 60
 * steps together, at every step).
 */
export type OptimizerSettings = Pick<TrainConfig['optimizer'], 'name' | 'momentum'>;

/** TF.js's float32 epsilon (ENGINE.backend.epsilon()), the default of its Adam and RMSprop. */
const EPSILON = 1e-7;
const BETA1 = 0.9;
const BETA2 = 0.999;
const RMSPROP_DECAY = 0.9;
/** Lazy Adam's catch-up reads at most this many sat-out steps: (beta1 / sqrt(beta2))^400 < 1e-18. */
const CATCH_UP_STEPS = 400;
const RATIO_POWERS = Float64Array.from({ length: CATCH_UP_STEPS + 1 }, (_, k) => (BETA1 / Math.sqrt(BETA2)) ** k);
const SQRT_BETA2_POWERS = Float64Array.from({ length: CATCH_UP_STEPS + 1 }, (_, k) => BETA2 ** (k / 2));

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
  /** Lazy Adam (no L2): the step each kernel row is up to date with, and each step's step/unbias. */
  private readonly lazy: boolean;
  private readonly rowStep: Int32Array;
  private readonly stepScale: number[] = [0];
  private readonly unbiasAt: number[] = [0];
  private steps = 0;

  constructor(
    kernel: Float32Array,
    bias: Float32Array,
    private readonly optimizer: OptimizerSettings,
    private readonly l2 = 0,
    options: { threads?: number; parallelFrom?: number; /** Adam over every weight at every step, as TF.js does (the reference the lazy update is tested against). */ dense?: boolean } = {},
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
    this.lazy = optimizer.name === 'adam' && !l2 && !options.dense;
    this.rowStep = new Int32Array(kernel.length / bias.length);
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
        if (!this.touched[row]) {
          this.touched[row] = 1;
          this.touchedRows.push(row);
          // Read after the steps it sat out, as the dense layer would have moved it.
          if (this.lazy) this.catchUp(row, this.steps);
        }
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
    if (this.lazy) return this.lazyStep(rule);
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

  /**
   * Lazy Adam's step: the rows this batch read (already caught up to the previous step by
   * forward) get this step's update; the others wait. Rows backward touched without forward are
   * caught up here first.
   */
  private lazyStep(rule: UpdateRule): void {
    const { units } = this;
    this.steps++;
    this.stepScale.push(rule.step / rule.unbias);
    this.unbiasAt.push(rule.unbias);
    for (const row of this.touchedRows) {
      this.catchUp(row, this.steps - 1);
      applyUpdate(rule, this.kernel, this.kernelGrad, this.slot1, this.slot2, row * units, (row + 1) * units);
      this.kernelGrad.fill(0, row * units, (row + 1) * units);
      this.rowStep[row] = this.steps;
      this.touched[row] = 0;
    }
    this.touchedRows = [];
    applyUpdate({ ...rule, l2: 0 }, this.bias, this.biasGrad, this.biasSlot1, this.biasSlot2, 0, this.bias.length);
    this.biasGrad.fill(0);
    this.accBeta1 = Math.fround(this.accBeta1 * BETA1);
    this.accBeta2 = Math.fround(this.accBeta2 * BETA2);
  }

  /**
   * Brings kernel row `row` from the step it is up to date with to step `to`, through the steps
   * with no gradient for it. There m and v only decay (by beta1 and beta2 a step), so at the k-th
   * such step a weight moves by w_k m / (s + e_k), with s = sqrt(v), w_k = (step/unbias)
   * (beta1/sqrt(beta2))^k of that step and e_k = epsilon / (beta2^(k/2) unbias): Adam's epsilon
   * seen from s, the same for every weight of the row. Around the w-weighted mean e of e_k,
   * 1 / (s + e_k) = t - d_k t^2 + d_k^2 t^3 - d_k^3 t^4 with t = 1 / (s + e) and d_k = e_k - e,
   * and d_k is small beside s + e (e_k drifts only as unbias and beta2^(k/2) do), so the sum over
   * the steps is m (A t + C t^3 - D t^4) with per-row scalars A, C, D (the d_k t^2 terms sum to
   * 0): a few operations a weight whatever the gap, epsilon included.
   */
  private catchUp(row: number, to: number): void {
    const from = this.rowStep[row]!;
    if (from >= to) return;
    const gap = to - from;
    // Terms beyond a few hundred steps are below float32's resolution of the weight.
    const terms = Math.min(gap, CATCH_UP_STEPS);
    // Raw moments of e_k under the weights w_k, in one pass; the central ones follow (float64
    // keeps them: the spread is far above its rounding).
    let [a, s1, s2, s3, s4] = [0, 0, 0, 0, 0];
    for (let k = 1; k <= terms; k++) {
      const w = this.stepScale[from + k]! * RATIO_POWERS[k]!;
      const e = EPSILON / (SQRT_BETA2_POWERS[k]! * this.unbiasAt[from + k]!);
      const we = w * e;
      a += w;
      s1 += we;
      s2 += we * e;
      s3 += we * e * e;
      s4 += we * e * e * e;
    }
    const mean = s1 / a;
    const [m2, m3, m4] = [s2 / a, s3 / a, s4 / a];
    const c = a * Math.max(0, m2 - mean * mean);
    const d = a * (m3 - 3 * mean * m2 + 2 * mean ** 3);
    const fourth = a * Math.max(0, m4 - 4 * mean * m3 + 6 * mean * mean * m2 - 3 * mean ** 4);
    // The first term left out is at most (spread / mean)^4 of the move: where unbias still changes
    // fast (the first hundred steps), the steps are taken one by one instead.
    const exact = (fourth / a) ** 0.25 > 0.1 * mean;
    const decay1 = BETA1 ** gap;
    const decay2 = BETA2 ** gap;
    const { kernel, slot1, slot2, units } = this;
    for (let i = row * units; i < (row + 1) * units; i++) {
      const m = slot1[i]!;
      const v = slot2[i]!;
      if (m !== 0 && !exact) {
        const t = 1 / (Math.sqrt(v) + mean);
        const t3 = t * t * t;
        kernel[i] = kernel[i]! - m * (a * t + c * t3 - d * t3 * t);
      } else if (m !== 0) {
        let [mk, vk, move] = [m, v, 0];
        for (let k = 1; k <= terms; k++) {
          mk *= BETA1;
          vk *= BETA2;
          const unbias = this.unbiasAt[from + k]!;
          move += (this.stepScale[from + k]! * unbias * mk) / (Math.sqrt(vk) * unbias + EPSILON);
        }
        kernel[i] = kernel[i]! - move;
      }
      slot1[i] = m * decay1;
      slot2[i] = v * decay2;
    }
    this.rowStep[row] = to;
  }

  /** Every kernel row up to date with the last step (before the weights are read: a validation pass, saving). */
  flush(): void {
    if (!this.lazy) return;
    for (let row = 0; row < this.rowStep.length; row++) this.catchUp(row, this.steps);
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
