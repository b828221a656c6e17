// AssemblyScript (compiled by `make build`, see sparse-kernels.ts): the optimizers' update rules
// on weights in the module's memory, as TF.js's optimizers of the same name compute them, in
// float32 as TF.js does, four lanes at a time. optimizer.ts holds their constants and calls these
// (JavaScript's scalar float64 loop took 3.6 ns a weight for Adam; a net trained through ONNX
// Runtime spent as long in it as in the graph's whole step).

// Adam's constants, as TF.js has them (sparse-kernels.ts's catch-up uses them too).
export const BETA1: f32 = 0.9;
export const BETA2: f32 = 0.999;
export const EPSILON: f32 = 1e-7;
const RMSPROP_DECAY: f32 = 0.9;

/** Which rule `update` applies (optimizer.ts numbers them the same). */
const ADAM = 0;
const ADAM_L2 = 1;
const MOMENTUM = 2;
const RMSPROP = 3;

/**
 * One step of rule `rule` on weights `start` to `end` of `w` (gradients `g`, slots `s1`, `s2`:
 * byte offsets of float32 arrays). Each gradient is set back to 0 once used, except by Adam
 * without L2 (`ADAM`), whose caller clears what it wrote.
 */
export function update(rule: i32, w: usize, g: usize, s1: usize, s2: usize, start: i32, end: i32, lr: f32, momentum: f32, l2: f32, step: f32, unbias: f32): void {
  const from = <usize>start << 2;
  const to = <usize>end << 2;
  // Adam without L2 leaves the gradients to its caller: the sparse layer clears the rows it read, ONNX Runtime writes every one each step.
  if (rule == ADAM) adam(w, g, s1, s2, from, to, step, unbias, 0, false);
  else if (rule == ADAM_L2) adam(w, g, s1, s2, from, to, step, unbias, l2, true);
  else if (rule == MOMENTUM) momentumRule(w, g, s1, from, to, lr, momentum, l2);
  else if (rule == RMSPROP) rmsprop(w, g, s1, s2, from, to, lr, momentum, l2);
  else unreachable();
}

// Each loop: whole groups of four from `from` (a multiple of four weights is not required), then the rest one by one.

/** Adam, with L2's gradient (2 l2 w) added to each weight's; `clear` sets each used gradient back to 0. */
function adam(w: usize, g: usize, s1: usize, s2: usize, from: usize, to: usize, step: f32, unbias: f32, l2: f32, clear: bool): void {
  const b1 = f32x4.splat(BETA1);
  const c1 = f32x4.splat(1 - BETA1);
  const b2 = f32x4.splat(BETA2);
  const c2 = f32x4.splat(1 - BETA2);
  const eps = f32x4.splat(EPSILON);
  const stepLanes = f32x4.splat(step);
  const unbiasLanes = f32x4.splat(unbias);
  const twoL2 = f32x4.splat(2 * l2);
  const zero = f32x4.splat(0);
  let i = from;
  for (; i + 16 <= to; i += 16) {
    const wi = v128.load(w + i);
    const gi = f32x4.add(v128.load(g + i), f32x4.mul(twoL2, wi));
    const m = f32x4.add(f32x4.mul(b1, v128.load(s1 + i)), f32x4.mul(c1, gi));
    const v = f32x4.add(f32x4.mul(b2, v128.load(s2 + i)), f32x4.mul(c2, f32x4.mul(gi, gi)));
    v128.store(s1 + i, m);
    v128.store(s2 + i, v);
    v128.store(w + i, f32x4.sub(wi, f32x4.div(f32x4.mul(stepLanes, m), f32x4.add(f32x4.mul(f32x4.sqrt(v), unbiasLanes), eps))));
    if (clear) v128.store(g + i, zero);
  }
  for (; i < to; i += 4) {
    const wi = load<f32>(w + i);
    const gi = load<f32>(g + i) + 2 * l2 * wi;
    const m = BETA1 * load<f32>(s1 + i) + (1 - BETA1) * gi;
    const v = BETA2 * load<f32>(s2 + i) + (1 - BETA2) * (gi * gi);
    store<f32>(s1 + i, m);
    store<f32>(s2 + i, v);
    store<f32>(w + i, wi - (step * m) / (Mathf.sqrt(v) * unbias + EPSILON));
    if (clear) store<f32>(g + i, 0);
  }
}

/** TF.js's momentum optimizer (its `sgd` with momentum): a = momentum a + g; w -= lr a. */
function momentumRule(w: usize, g: usize, s1: usize, from: usize, to: usize, lr: f32, momentum: f32, l2: f32): void {
  const lrLanes = f32x4.splat(lr);
  const momentumLanes = f32x4.splat(momentum);
  const twoL2 = f32x4.splat(2 * l2);
  const zero = f32x4.splat(0);
  let i = from;
  for (; i + 16 <= to; i += 16) {
    const wi = v128.load(w + i);
    const a = f32x4.add(f32x4.add(f32x4.mul(momentumLanes, v128.load(s1 + i)), v128.load(g + i)), f32x4.mul(twoL2, wi));
    v128.store(s1 + i, a);
    v128.store(w + i, f32x4.sub(wi, f32x4.mul(lrLanes, a)));
    v128.store(g + i, zero);
  }
  for (; i < to; i += 4) {
    const wi = load<f32>(w + i);
    const a = momentum * load<f32>(s1 + i) + load<f32>(g + i) + 2 * l2 * wi;
    store<f32>(s1 + i, a);
    store<f32>(w + i, wi - lr * a);
    store<f32>(g + i, 0);
  }
}

/** TF.js's RMSprop (not centered): ms = decay ms + (1 - decay) g^2; mom = momentum mom + lr g / sqrt(ms + eps); w -= mom. */
function rmsprop(w: usize, g: usize, s1: usize, s2: usize, from: usize, to: usize, lr: f32, momentum: f32, l2: f32): void {
  const decay = f32x4.splat(RMSPROP_DECAY);
  const keep = f32x4.splat(1 - RMSPROP_DECAY);
  const eps = f32x4.splat(EPSILON);
  const lrLanes = f32x4.splat(lr);
  const momentumLanes = f32x4.splat(momentum);
  const twoL2 = f32x4.splat(2 * l2);
  const zero = f32x4.splat(0);
  let i = from;
  for (; i + 16 <= to; i += 16) {
    const wi = v128.load(w + i);
    const gi = f32x4.add(v128.load(g + i), f32x4.mul(twoL2, wi));
    const ms = f32x4.add(f32x4.mul(decay, v128.load(s1 + i)), f32x4.mul(keep, f32x4.mul(gi, gi)));
    const mo = f32x4.add(f32x4.mul(momentumLanes, v128.load(s2 + i)), f32x4.div(f32x4.mul(lrLanes, gi), f32x4.sqrt(f32x4.add(ms, eps))));
    v128.store(s1 + i, ms);
    v128.store(s2 + i, mo);
    v128.store(w + i, f32x4.sub(wi, mo));
    v128.store(g + i, zero);
  }
  for (; i < to; i += 4) {
    const wi = load<f32>(w + i);
    const gi = load<f32>(g + i) + 2 * l2 * wi;
    const ms = RMSPROP_DECAY * load<f32>(s1 + i) + (1 - RMSPROP_DECAY) * (gi * gi);
    const mo = momentum * load<f32>(s2 + i) + (lr * gi) / Mathf.sqrt(ms + EPSILON);
    store<f32>(s1 + i, ms);
    store<f32>(s2 + i, mo);
    store<f32>(w + i, wi - mo);
    store<f32>(g + i, 0);
  }
}
