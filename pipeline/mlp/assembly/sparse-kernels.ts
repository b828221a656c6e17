// AssemblyScript (compiled to WebAssembly with SIMD by `make build`, not by tsc): the sparse
// first layer's three loops, four float32 lanes at a time. JavaScript has no SIMD and no float32
// arithmetic, so the same loops written in TypeScript cost 4-8 times as much a weight (1.8 ns a
// multiply-add, 5.5-7.6 ns a weight caught up, measured); these are what a step of the sparse
// layer is made of (sparse.ts tells the story, sparse-kernels.ts calls these).
//
// Every argument that names an array is a byte offset into the memory the module imports: one
// shared WebAssembly.Memory that holds the layer's arrays, which the training thread and its
// workers all instantiate this module on. Each call works on a range no other thread writes.
// IEEE float32 addition, multiplication, division and square root round the same in a lane and
// in a scalar, so the scalar tails compute what a lane would.

// The eager optimizers' step over the layer's kernel (sparse.ts's `update` job) runs on this memory too.
export { update } from './update-rules';
import { BETA1, BETA2, EPSILON } from './update-rules';

/** Rows `start` to `end` of compressed rows times the kernel, plus the bias, into `out` (row r at `(r - outStart) * units`). */
export function sparseTimesKernel(units: i32, kernel: usize, bias: usize, indptr: usize, cols: usize, values: usize, start: i32, end: i32, out: usize, outStart: i32): void {
  const bytes = <usize>units << 2;
  for (let r = start; r < end; r++) {
    const o = out + <usize>(r - outStart) * bytes;
    memory.copy(o, bias, bytes);
    const last = load<i32>(indptr + (<usize>(r + 1) << 2));
    for (let k = load<i32>(indptr + (<usize>r << 2)); k < last; k++) {
      const value = load<f32>(values + (<usize>k << 2));
      const row = kernel + <usize>load<i32>(cols + (<usize>k << 2)) * bytes;
      addScaled(o, row, value, bytes);
    }
  }
}

/** Adds each read kernel row's gradient (value times its batch row's output gradient) for rows `rows[start]` to `rows[end - 1]`. */
export function accumulateGrads(units: i32, kernelGrad: usize, rows: usize, rowPtr: usize, entryBatch: usize, entryValues: usize, dOut: usize, start: i32, end: i32): void {
  const bytes = <usize>units << 2;
  for (let j = start; j < end; j++) {
    const grad = kernelGrad + <usize>load<i32>(rows + (<usize>j << 2)) * bytes;
    const last = load<i32>(rowPtr + (<usize>(j + 1) << 2));
    for (let e = load<i32>(rowPtr + (<usize>j << 2)); e < last; e++) {
      const value = load<f32>(entryValues + (<usize>e << 2));
      addScaled(grad, dOut + <usize>load<i32>(entryBatch + (<usize>e << 2)) * bytes, value, bytes);
    }
  }
}

/** to[i] += scale * from[i] for `bytes / 4` floats. */
// @ts-ignore: decorator
@inline
function addScaled(to: usize, from: usize, scale: f32, bytes: usize): void {
  const lanes = f32x4.splat(scale);
  const whole = bytes & ~15;
  let i: usize = 0;
  for (; i + 32 <= whole; i += 32) {
    v128.store(to + i, f32x4.add(v128.load(to + i), f32x4.mul(lanes, v128.load(from + i))));
    v128.store(to + i + 16, f32x4.add(v128.load(to + i + 16), f32x4.mul(lanes, v128.load(from + i + 16))));
  }
  for (; i < whole; i += 16) v128.store(to + i, f32x4.add(v128.load(to + i), f32x4.mul(lanes, v128.load(from + i))));
  for (; i < bytes; i += 4) store<f32>(to + i, load<f32>(to + i) + scale * load<f32>(from + i));
}

/**
 * Lazy Adam's catch-up of one kernel row (`units` weights from `first`, a weight index): the
 * step whose gradient waits in kernelGrad (when `pending`), then the steps the row sat out, in
 * the closed form that sparse-kernels.ts (TypeScript) derives and whose per-row scalars it passes:
 * `center`, `a` to `d`, `spread`, `terms`, and m's and v's decay over the gap. A lane whose series
 * would not be accurate (spread * t >= 0.1) takes the steps one by one, reading each step's
 * constants from `stepAt` and `unbiasAt` (float64 arrays, index = step) from step `from + 1`.
 */
export function catchUpRow(
  units: i32, kernel: usize, kernelGrad: usize, slot1: usize, slot2: usize, first: i32,
  pending: bool, step: f32, unbias: f32,
  center: f32, a: f32, b: f32, c: f32, d: f32, spread: f32, terms: i32, decay1: f32, decay2: f32,
  stepAt: usize, unbiasAt: usize, from: i32,
): void {
  const begin = <usize>first << 2;
  const bytes = <usize>units << 2;
  const whole = begin + (bytes & ~15);
  const zero = f32x4.splat(0);
  const b1 = f32x4.splat(BETA1);
  const c1 = f32x4.splat(1 - BETA1);
  const b2 = f32x4.splat(BETA2);
  const c2 = f32x4.splat(1 - BETA2);
  const stepLanes = f32x4.splat(step);
  const unbiasLanes = f32x4.splat(unbias);
  const eps = f32x4.splat(EPSILON);
  const centerLanes = f32x4.splat(center);
  const one = f32x4.splat(1);
  const aLanes = f32x4.splat(a);
  const bLanes = f32x4.splat(b);
  const cLanes = f32x4.splat(c);
  const dLanes = f32x4.splat(d);
  const spreadLanes = f32x4.splat(spread);
  const limit = f32x4.splat(0.1);
  const decay1Lanes = f32x4.splat(decay1);
  const decay2Lanes = f32x4.splat(decay2);
  let i = begin;
  for (; i < whole; i += 16) {
    let m = v128.load(slot1 + i);
    let v = v128.load(slot2 + i);
    let w = v128.load(kernel + i);
    let t: v128;
    if (pending) {
      const g = v128.load(kernelGrad + i);
      m = f32x4.add(f32x4.mul(b1, m), f32x4.mul(c1, g));
      v = f32x4.add(f32x4.mul(b2, v), f32x4.mul(c2, f32x4.mul(g, g)));
      const inverse = f32x4.div(one, f32x4.add(f32x4.mul(f32x4.sqrt(v), unbiasLanes), eps));
      w = f32x4.sub(w, f32x4.mul(f32x4.mul(stepLanes, m), inverse));
      t = f32x4.mul(unbiasLanes, inverse);
    } else t = f32x4.div(one, f32x4.add(f32x4.sqrt(v), centerLanes));
    if (terms) {
      const moving = f32x4.ne(m, zero);
      // A lane the series cannot take: the whole group of four goes the scalar way, from its stored values.
      if (v128.any_true(v128.andnot(moving, f32x4.lt(f32x4.mul(spreadLanes, t), limit)))) {
        for (let lane: usize = 0; lane < 16; lane += 4) catchUpWeight(kernel, kernelGrad, slot1, slot2, i + lane, pending, step, unbias, center, a, b, c, d, spread, terms, decay1, decay2, stepAt, unbiasAt, from);
        continue;
      }
      const t2 = f32x4.mul(t, t);
      const series = f32x4.sub(f32x4.add(f32x4.sub(aLanes, f32x4.mul(bLanes, t)), f32x4.mul(cLanes, t2)), f32x4.mul(f32x4.mul(dLanes, t2), t));
      w = f32x4.sub(w, v128.and(f32x4.mul(f32x4.mul(m, t), series), moving));
    }
    if (pending) v128.store(kernelGrad + i, zero);
    v128.store(kernel + i, w);
    v128.store(slot1 + i, f32x4.mul(m, decay1Lanes));
    v128.store(slot2 + i, f32x4.mul(v, decay2Lanes));
  }
  for (; i < begin + bytes; i += 4) catchUpWeight(kernel, kernelGrad, slot1, slot2, i, pending, step, unbias, center, a, b, c, d, spread, terms, decay1, decay2, stepAt, unbiasAt, from);
}

/** One weight (at byte offset `i` of each array) of catchUpRow, in scalars: the same arithmetic as a lane, plus the step-by-step way. */
function catchUpWeight(
  kernel: usize, kernelGrad: usize, slot1: usize, slot2: usize, i: usize,
  pending: bool, step: f32, unbias: f32,
  center: f32, a: f32, b: f32, c: f32, d: f32, spread: f32, terms: i32, decay1: f32, decay2: f32,
  stepAt: usize, unbiasAt: usize, from: i32,
): void {
  let m = load<f32>(slot1 + i);
  let v = load<f32>(slot2 + i);
  let w = load<f32>(kernel + i);
  let t: f32;
  if (pending) {
    const g = load<f32>(kernelGrad + i);
    store<f32>(kernelGrad + i, 0);
    m = BETA1 * m + (1 - BETA1) * g;
    v = BETA2 * v + (1 - BETA2) * (g * g);
    const inverse: f32 = 1 / (Mathf.sqrt(v) * unbias + EPSILON);
    w = w - step * m * inverse;
    t = unbias * inverse;
  } else t = 1 / (Mathf.sqrt(v) + center);
  if (m != 0 && terms && spread * t < 0.1) {
    const t2 = t * t;
    w = w - m * t * (a - b * t + c * t2 - d * t2 * t);
  } else if (m != 0 && terms) {
    // Near s = 0 early in training: each sat-out step as Adam takes it (m and v only decay).
    let mk: f64 = <f64>m;
    let vk: f64 = <f64>v;
    let move: f64 = 0;
    for (let k = 1; k <= terms; k++) {
      mk *= <f64>BETA1;
      vk *= <f64>BETA2;
      const at = <usize>(from + k) << 3;
      move += (load<f64>(stepAt + at) * mk) / (Math.sqrt(vk) * load<f64>(unbiasAt + at) + <f64>EPSILON);
    }
    w = <f32>(<f64>w - move);
  }
  store<f32>(kernel + i, w);
  store<f32>(slot1 + i, m * decay1);
  store<f32>(slot2 + i, v * decay2);
}
