import type { TrainConfig } from '../config/index.js';

/**
 * The optimizers' update rules on plain typed arrays, as TF.js's optimizers of the same name
 * compute them (tfjs-core's adam, momentum and rmsprop optimizers, their constants included), for
 * the weights TF.js does not hold: the sparse first layer's (sparse.ts) and those of a net trained
 * through ONNX Runtime (onnx-net.ts).
 */
export type OptimizerSettings = Pick<TrainConfig['optimizer'], 'name' | 'momentum'>;

/** TF.js's float32 epsilon (ENGINE.backend.epsilon()), the default of its Adam and RMSprop. */
export const EPSILON = 1e-7;
export const BETA1 = 0.9;
export const BETA2 = 0.999;
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
  // One small function per rule: V8 compiles each hot loop on its own (in one function with all
  // four the lean Adam loop ran 1.7x slower).
  if (rule.name === 'sgd') momentumUpdate(w, g, s1, start, end, lr, momentum, l2);
  else if (rule.name === 'rmsprop') rmspropUpdate(w, g, s1, s2, start, end, lr, momentum, l2);
  else if (l2) adamL2Update(w, g, s1, s2, start, end, step, unbias, l2);
  else adamUpdate(w, g, s1, s2, start, end, step, unbias);
}

function momentumUpdate(w: Float32Array, g: Float32Array, s1: Float32Array, start: number, end: number, lr: number, momentum: number, l2: number): void {
  for (let i = start; i < end; i++) {
    const a = momentum * s1[i]! + g[i]! + 2 * l2 * w[i]!;
    s1[i] = a;
    w[i] = w[i]! - lr * a;
    g[i] = 0;
  }
}

function rmspropUpdate(w: Float32Array, g: Float32Array, s1: Float32Array, s2: Float32Array, start: number, end: number, lr: number, momentum: number, l2: number): void {
  const [decay, keep, eps] = [RMSPROP_DECAY, 1 - RMSPROP_DECAY, EPSILON];
  for (let i = start; i < end; i++) {
    const gi = g[i]! + 2 * l2 * w[i]!;
    const ms = decay * s1[i]! + keep * gi * gi;
    const mo = momentum * s2[i]! + (lr * gi) / Math.sqrt(ms + eps);
    s1[i] = ms;
    s2[i] = mo;
    w[i] = w[i]! - mo;
    g[i] = 0;
  }
}

function adamL2Update(w: Float32Array, g: Float32Array, s1: Float32Array, s2: Float32Array, start: number, end: number, step: number, unbias: number, l2: number): void {
  const [b1, c1, b2, c2, eps] = [BETA1, 1 - BETA1, BETA2, 1 - BETA2, EPSILON];
  for (let i = start; i < end; i++) {
    const wi = w[i]!;
    const gi = g[i]! + 2 * l2 * wi;
    const mi = b1 * s1[i]! + c1 * gi;
    const vi = b2 * s2[i]! + c2 * gi * gi;
    s1[i] = mi;
    s2[i] = vi;
    w[i] = wi - (step * mi) / (Math.sqrt(vi) * unbias + eps);
    g[i] = 0;
  }
}

/** The common case, kept lean (the loop is most of a sparse step): the gradient is cleared by the caller where it was written. */
function adamUpdate(w: Float32Array, g: Float32Array, s1: Float32Array, s2: Float32Array, start: number, end: number, step: number, unbias: number): void {
  // Constants as locals: module-level ones are loaded (and 1 - beta computed) at every iteration.
  const [b1, c1, b2, c2, eps] = [BETA1, 1 - BETA1, BETA2, 1 - BETA2, EPSILON];
  for (let i = start; i < end; i++) {
    const gi = g[i]!;
    const mi = b1 * s1[i]! + c1 * gi;
    const vi = b2 * s2[i]! + c2 * gi * gi;
    s1[i] = mi;
    s2[i] = vi;
    w[i] = w[i]! - (step * mi) / (Math.sqrt(vi) * unbias + eps);
  }
}

/**
 * An optimizer's per-step constants: Adam's bias corrections come from beta1^t and beta2^t, which
 * TF.js keeps as float32 tensors multiplied once a step (kept here the same way, rounding
 * included).
 */
export class StepRules {
  private accBeta1 = Math.fround(BETA1);
  private accBeta2 = Math.fround(BETA2);

  constructor(private readonly settings: OptimizerSettings) {}

  /** This step's rule at rate `lr`, for weights without L2 (a caller adds its own). */
  current(lr: number): UpdateRule {
    const { name, momentum } = this.settings;
    // Adam: w -= lr * (m / c1) / (sqrt(v / c2) + eps), with the divisions by c1 and c2 taken out of the loop.
    return { name, lr, momentum, l2: 0, step: lr / (1 - this.accBeta1), unbias: 1 / Math.sqrt(1 - this.accBeta2) };
  }

  /** On to the next step (after every weight took this one's update). */
  advance(): void {
    if (this.settings.name !== 'adam') return;
    this.accBeta1 = Math.fround(this.accBeta1 * BETA1);
    this.accBeta2 = Math.fround(this.accBeta2 * BETA2);
  }
}

/** Weights, the gradient written for them each step, and their L2 factor. */
export interface Parameter {
  weights: Float32Array;
  grads: Float32Array;
  l2: number;
}

/** The configured optimizer over plain arrays: each parameter with its own slots, one step for all. */
export class ArrayOptimizer {
  private readonly rules: StepRules;
  private readonly slots: [Float32Array, Float32Array][];

  constructor(
    settings: OptimizerSettings,
    private readonly params: Parameter[],
  ) {
    this.rules = new StepRules(settings);
    this.slots = params.map((p) => [new Float32Array(p.weights.length), new Float32Array(p.weights.length)]);
  }

  step(lr: number): void {
    const rule = this.rules.current(lr);
    this.params.forEach((p, i) => applyUpdate({ ...rule, l2: p.l2 }, p.weights, p.grads, this.slots[i]![0], this.slots[i]![1], 0, p.weights.length));
    this.rules.advance();
  }
}
