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
  /** Kernel rows with a non-zero gradient in this step. */
  private readonly touched: Uint8Array;
  private touchedRows: number[] = [];
  private accBeta1 = Math.fround(BETA1);
  private accBeta2 = Math.fround(BETA2);

  constructor(
    kernel: Float32Array,
    bias: Float32Array,
    private readonly optimizer: OptimizerSettings,
    private readonly l2 = 0,
  ) {
    this.kernel = Float32Array.from(kernel);
    this.bias = Float32Array.from(bias);
    this.kernelGrad = new Float32Array(kernel.length);
    this.biasGrad = new Float32Array(bias.length);
    this.slot1 = new Float32Array(kernel.length);
    this.slot2 = new Float32Array(optimizer.name === 'sgd' ? 0 : kernel.length);
    this.biasSlot1 = new Float32Array(bias.length);
    this.biasSlot2 = new Float32Array(bias.length);
    this.touched = new Uint8Array(kernel.length / bias.length);
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
        const w = rows.indices[k]! * units;
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

  /** One optimizer step over every weight with this step's gradients, which are then cleared. */
  step(lr: number): void {
    if (this.l2) for (let i = 0; i < this.kernel.length; i++) this.kernelGrad[i]! += 2 * this.l2 * this.kernel[i]!;
    const update = this.rule(lr);
    update(this.kernel, this.kernelGrad, this.slot1, this.slot2);
    update(this.bias, this.biasGrad, this.biasSlot1, this.biasSlot2);
    if (this.optimizer.name === 'adam') {
      this.accBeta1 = Math.fround(this.accBeta1 * BETA1);
      this.accBeta2 = Math.fround(this.accBeta2 * BETA2);
    }
    // Clear only what this step wrote (all of it when L2 made every gradient non-zero).
    if (this.l2) this.kernelGrad.fill(0);
    else for (const row of this.touchedRows) this.kernelGrad.fill(0, row * this.units, (row + 1) * this.units);
    for (const row of this.touchedRows) this.touched[row] = 0;
    this.touchedRows = [];
    this.biasGrad.fill(0);
  }

  /** The update of TF.js's optimizer of the same name (tfjs-core's adam, momentum and rmsprop optimizers). */
  private rule(lr: number): (w: Float32Array, g: Float32Array, s1: Float32Array, s2: Float32Array) => void {
    const { name, momentum } = this.optimizer;
    if (name === 'sgd') {
      return (w, g, acc) => {
        for (let i = 0; i < w.length; i++) {
          const a = momentum * acc[i]! + g[i]!;
          acc[i] = a;
          w[i] = w[i]! - lr * a;
        }
      };
    }
    if (name === 'rmsprop') {
      return (w, g, meanSquare, moment) => {
        for (let i = 0; i < w.length; i++) {
          const ms = RMSPROP_DECAY * meanSquare[i]! + (1 - RMSPROP_DECAY) * g[i]! * g[i]!;
          const mo = momentum * moment[i]! + (lr * g[i]!) / Math.sqrt(ms + EPSILON);
          meanSquare[i] = ms;
          moment[i] = mo;
          w[i] = w[i]! - mo;
        }
      };
    }
    // w -= lr * (m / c1) / (sqrt(v / c2) + eps), with the divisions by c1 and c2 taken out of the loop.
    const step = lr / (1 - this.accBeta1);
    const unbias = 1 / Math.sqrt(1 - this.accBeta2);
    return (w, g, m, v) => {
      for (let i = 0; i < w.length; i++) {
        const gi = g[i]!;
        const mi = BETA1 * m[i]! + (1 - BETA1) * gi;
        const vi = BETA2 * v[i]! + (1 - BETA2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        w[i] = w[i]! - (step * mi) / (Math.sqrt(vi) * unbias + EPSILON);
      }
    };
  }
}
