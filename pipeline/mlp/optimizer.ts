import type { TrainConfig } from '../config/index.js';
import { assemblyModule } from './wasm.js';

/**
 * The optimizers' update rules on plain typed arrays, as TF.js's optimizers of the same name
 * compute them (tfjs-core's adam, momentum and rmsprop optimizers, their constants included), for
 * the weights TF.js does not hold: the sparse first layer's (sparse.ts) and those of a net trained
 * through ONNX Runtime (onnx-net.ts). The loops are WebAssembly with SIMD (assembly/update-rules.ts);
 * this file has their constants and the arrays they run on.
 */
export type OptimizerSettings = Pick<TrainConfig['optimizer'], 'name' | 'momentum'>;

/** TF.js's float32 epsilon (ENGINE.backend.epsilon()), the default of its Adam and RMSprop. */
export const EPSILON = 1e-7;
export const BETA1 = 0.9;
export const BETA2 = 0.999;
// RMSprop's decay (0.9) is in assembly/update-rules.ts, the one place that uses it.
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

/** The update rules' loops (assembly/update-rules.ts), on an instance over the memory the arrays lie in. */
export interface UpdateLoops {
  update(rule: number, w: number, g: number, s1: number, s2: number, start: number, end: number, lr: number, momentum: number, l2: number, step: number, unbias: number): void;
}

/** assembly/update-rules.ts's numbers for the rules. */
const RULE_CODE = { adam: 0, adamL2: 1, sgd: 2, rmsprop: 3 } as const;

/**
 * The update of TF.js's optimizer of the same name (tfjs-core's adam, momentum and rmsprop
 * optimizers) on weights `start` to `end`, computed by `loops` (every array in its memory). Each
 * gradient is set back to 0 once used, except by Adam without L2, whose caller clears the rows it wrote.
 */
export function applyUpdate(loops: UpdateLoops, rule: UpdateRule, w: Float32Array, g: Float32Array, s1: Float32Array, s2: Float32Array, start: number, end: number): void {
  const code = rule.name === 'adam' ? (rule.l2 ? RULE_CODE.adamL2 : RULE_CODE.adam) : RULE_CODE[rule.name];
  loops.update(code, w.byteOffset, g.byteOffset, s1.byteOffset, s2.byteOffset, start, end, rule.lr, rule.momentum, rule.l2, rule.step, rule.unbias);
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

/** A weight array of the net and its L2 factor. */
export interface Parameter {
  weights: Float32Array;
  l2: number;
}

/**
 * The configured optimizer over plain arrays: each parameter's weights, its gradient and its two
 * slots in one WebAssembly memory that the update rules run on. The memory is not shared (ONNX
 * Runtime refuses tensors over a SharedArrayBuffer) and never grows (growing would detach the
 * arrays ONNX Runtime reads and writes): its size is known from the start.
 */
export class ArrayOptimizer {
  private readonly rules: StepRules;
  private readonly loops: UpdateLoops;
  /** Per parameter: its weights (the initial ones copied in) and the gradient a step writes for them, in the optimizer's memory. */
  readonly arrays: { weights: Float32Array; grads: Float32Array; slot1: Float32Array; slot2: Float32Array; l2: number }[];

  constructor(settings: OptimizerSettings, params: Parameter[]) {
    this.rules = new StepRules(settings);
    // Each array 16-byte aligned, so that the loops' groups of four line up.
    const sizes = params.map((p) => Math.ceil(p.weights.length / 4) * 16);
    const bytes = 4 * sizes.reduce((sum, n) => sum + n, 0);
    const memory = new WebAssembly.Memory({ initial: Math.ceil(bytes / 65536) + 1 });
    this.loops = new WebAssembly.Instance(assemblyModule('update-rules'), { env: { memory } }).exports as unknown as UpdateLoops;
    let at = 0;
    const take = (i: number) => {
      const array = new Float32Array(memory.buffer, at, params[i]!.weights.length);
      at += sizes[i]!;
      return array;
    };
    this.arrays = params.map((p, i) => {
      const weights = take(i);
      weights.set(p.weights);
      return { weights, grads: take(i), slot1: take(i), slot2: take(i), l2: p.l2 };
    });
  }

  step(lr: number): void {
    const rule = this.rules.current(lr);
    for (const a of this.arrays) applyUpdate(this.loops, { ...rule, l2: a.l2 }, a.weights, a.grads, a.slot1, a.slot2, 0, a.weights.length);
    this.rules.advance();
  }
}
