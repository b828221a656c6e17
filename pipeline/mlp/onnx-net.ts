import { availableParallelism } from 'node:os';
import onnxProto from 'onnx-proto';
import * as ort from 'onnxruntime-node';
import type { TrainConfig } from '../config/index.js';

type LayerConfig = TrainConfig['layers'][number];

const { onnx } = onnxProto;
const FLOAT = onnx.TensorProto.DataType.FLOAT;

/**
 * The MLP's training step as one ONNX graph run by ONNX Runtime: the forward pass in training mode
 * (dropout masks come in as inputs), TF.js's categorical cross-entropy on the softmax outputs, and
 * the backward pass written out by hand, layer by layer, returning every weight's gradient. The
 * optimizer runs outside, on the same typed arrays (optimizer.ts, TF.js's update rules).
 *
 * Why: TF.js's wasm backend runs on one thread at 8 to 19 GFLOP/s, and its optimizers spend as long
 * again in one small kernel per operation; ONNX Runtime's CPU kernels run the same step's matmuls
 * at over 150 GFLOP/s on two cores. The model still is a TF.js layers model: its weights are
 * copied in at the end of each epoch, and it is what the train stage saves and evaluate reads.
 *
 * Each operation mirrors what TF.js computes, gradients included (clipping the probabilities to
 * [1e-7, 1] cuts the gradient where they fall outside, as tf.clipByValue's does); a test trains
 * the same seeded net for a few steps here and in TF.js and holds the weights together.
 */
export interface NetSpec {
  /** Columns of the graph's input: the feature width, or the first layer's units when it runs outside. */
  inputWidth: number;
  labels: number;
  /** The hidden layers, as configured (batch norm has no graph here: such nets train in TF.js). */
  layers: Pick<LayerConfig, 'units' | 'activation' | 'dropout' | 'l2'>[];
  /**
   * The first dense layer runs outside the graph (the sparse first layer, sparse.ts): the graph
   * reads that layer's outputs before its activation (`z0`) and returns their gradient.
   */
  firstOutside: boolean;
}

/** Whether ONNX Runtime can train this net (else TF.js does, and says why). */
export function unsupportedBy(layers: Pick<LayerConfig, 'batch_norm'>[]): string | undefined {
  if (layers.some((l) => l.batch_norm)) return 'batch_norm has no ONNX Runtime training graph here';
  return undefined;
}

/** The dense layers of the net: the hidden ones then the softmax output. */
function denseLayers(spec: NetSpec) {
  return [...spec.layers.map((l) => ({ ...l, output: false })), { units: spec.labels, activation: 'linear' as const, dropout: 0, l2: 0, output: true }];
}

/** The names of layer i's weights and their gradients, as graph inputs and outputs. */
export const weightName = (i: number, which: 'kernel' | 'bias') => `${which}_${i}`;
export const gradName = (i: number, which: 'kernel' | 'bias') => `grad_${which}_${i}`;
export const maskName = (i: number) => `dropout_mask_${i}`;

/** A small builder of ONNX graphs: each op returns its output's name. */
class Graph {
  readonly nodes: onnxProto.onnx.INodeProto[] = [];
  readonly inputs: onnxProto.onnx.IValueInfoProto[] = [];
  readonly outputs: onnxProto.onnx.IValueInfoProto[] = [];
  readonly initializers: onnxProto.onnx.ITensorProto[] = [];
  private count = 0;

  /** Integer-valued numbers become INT attributes (axis, keepdims, transA), others FLOAT. */
  op(type: string, inputs: string[], attributes: Record<string, number | number[]> = {}): string {
    const output = `${type.toLowerCase()}_${this.count++}`;
    const attribute = Object.entries(attributes).map(([name, v]) =>
      Array.isArray(v) ? { name, type: onnx.AttributeProto.AttributeType.INTS, ints: v } : Number.isInteger(v) ? { name, type: onnx.AttributeProto.AttributeType.INT, i: v } : { name, type: onnx.AttributeProto.AttributeType.FLOAT, f: v },
    );
    this.nodes.push({ opType: type, input: inputs, output: [output], attribute });
    return output;
  }

  input(name: string, dims: (number | string)[], elemType: number = FLOAT): string {
    this.inputs.push({ name, type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) } } } });
    return name;
  }

  output(name: string, value: string, elemType: number = FLOAT): void {
    this.nodes.push({ opType: 'Identity', input: [value], output: [name] });
    this.outputs.push({ name, type: { tensorType: { elemType } } });
  }

  scalar(value: number): string {
    const name = `const_${this.count++}`;
    this.initializers.push({ name, dataType: FLOAT, dims: [], floatData: [value] });
    return name;
  }

  axes(values: number[]): string {
    const name = `axes_${this.count++}`;
    this.initializers.push({ name, dataType: onnx.TensorProto.DataType.INT64, dims: [values.length], int64Data: values });
    return name;
  }

  encode(): Uint8Array {
    const graph = { name: 'mlp', node: this.nodes, input: this.inputs, output: this.outputs, initializer: this.initializers };
    return onnx.ModelProto.encode({ irVersion: 8, producerName: 'genre-pipeline', opsetImport: [{ domain: '', version: 17 }], graph }).finish();
  }
}

/** TF.js's SELU constants (tfjs-core selu_util). */
const SELU_SCALE = 1.0507009873554804934193349852946;
const SELU_SCALEALPHA = 1.7580993408473768599402175208123;

/** An activation applied to pre-activation `z`, as TF.js's layers compute it. */
function activate(g: Graph, kind: LayerConfig['activation'], z: string): string {
  switch (kind) {
    case 'relu':
      return g.op('Relu', [z]);
    case 'tanh':
      return g.op('Tanh', [z]);
    case 'sigmoid':
      return g.op('Sigmoid', [z]);
    case 'elu':
      return g.op('Elu', [z]); // alpha 1, ONNX's default and TF.js's only
    case 'selu': {
      const negative = g.op('Mul', [g.scalar(SELU_SCALEALPHA), g.op('Sub', [g.op('Exp', [z]), g.scalar(1)])]);
      return g.op('Where', [g.op('Greater', [z, g.scalar(0)]), g.op('Mul', [z, g.scalar(SELU_SCALE)]), negative]);
    }
    case 'gelu':
      // x * 0.5 * (1 + erf(x / sqrt(2))), tfjs-layers' Gelu.
      return g.op('Mul', [z, g.op('Mul', [g.scalar(0.5), g.op('Add', [g.scalar(1), g.op('Erf', [g.op('Div', [z, g.scalar(Math.SQRT2)])])])])]);
    case 'swish':
      return g.op('Mul', [g.op('Sigmoid', [z]), z]);
    case 'linear':
      return z;
  }
}

/** The gradient of the pre-activation given the activation's gradient `da` (`a` its output). */
function activationGrad(g: Graph, kind: LayerConfig['activation'], z: string, a: string, da: string): string {
  const positive = () => g.op('Greater', [z, g.scalar(0)]);
  switch (kind) {
    case 'relu':
      return g.op('Where', [positive(), da, g.scalar(0)]);
    case 'tanh':
      return g.op('Mul', [da, g.op('Sub', [g.scalar(1), g.op('Mul', [a, a])])]);
    case 'sigmoid':
      return g.op('Mul', [da, g.op('Mul', [a, g.op('Sub', [g.scalar(1), a])])]);
    case 'elu':
      return g.op('Where', [positive(), da, g.op('Mul', [da, g.op('Add', [a, g.scalar(1)])])]);
    case 'selu':
      return g.op('Where', [positive(), g.op('Mul', [da, g.scalar(SELU_SCALE)]), g.op('Mul', [da, g.op('Mul', [g.scalar(SELU_SCALEALPHA), g.op('Exp', [z])])])]);
    case 'gelu': {
      // d/dz z * Phi(z) = Phi(z) + z * phi(z), phi the standard normal density.
      const cdf = g.op('Mul', [g.scalar(0.5), g.op('Add', [g.scalar(1), g.op('Erf', [g.op('Div', [z, g.scalar(Math.SQRT2)])])])]);
      const pdf = g.op('Mul', [g.scalar(1 / Math.sqrt(2 * Math.PI)), g.op('Exp', [g.op('Mul', [g.scalar(-0.5), g.op('Mul', [z, z])])])]);
      return g.op('Mul', [da, g.op('Add', [cdf, g.op('Mul', [z, pdf])])]);
    }
    case 'swish': {
      const s = g.op('Sigmoid', [z]);
      return g.op('Mul', [da, g.op('Mul', [s, g.op('Add', [g.scalar(1), g.op('Mul', [z, g.op('Sub', [g.scalar(1), s])])])])]);
    }
    case 'linear':
      return da;
  }
}

/**
 * The forward pass. Training: dropout masks (0 or 1 / keep, drawn as tf.dropout draws them) are
 * inputs; otherwise none. Returns each layer's values the backward pass needs.
 */
function forward(g: Graph, spec: NetSpec, training: boolean) {
  const layers = denseLayers(spec);
  const first = spec.firstOutside ? 1 : 0;
  const inputs: string[] = [];
  const pre: string[] = [];
  const act: string[] = [];
  let h = g.input(spec.firstOutside ? 'z0' : 'x', ['batch', spec.inputWidth]);
  layers.forEach((layer, i) => {
    let z: string;
    if (i < first) z = h;
    else {
      inputs[i] = h;
      z = g.op('Gemm', [h, g.input(weightName(i, 'kernel'), [i === 0 ? spec.inputWidth : layers[i - 1]!.units, layer.units]), g.input(weightName(i, 'bias'), [layer.units])]);
    }
    pre[i] = z;
    if (layer.output) return;
    act[i] = activate(g, layer.activation, z);
    h = training && layer.dropout > 0 ? g.op('Mul', [act[i]!, g.input(maskName(i), ['batch', layer.units])]) : act[i]!;
  });
  const probabilities = g.op('Softmax', [pre.at(-1)!], { axis: -1 });
  return { layers, first, inputs, pre, act, probabilities };
}

/** The training step's graph: inputs x (or z0), target, masks, weights; outputs loss, predicted, penalty, gradients. */
export function trainingGraph(spec: NetSpec): Uint8Array {
  const g = new Graph();
  const { layers, first, inputs, pre, act, probabilities } = forward(g, spec, true);
  // The target carries each row's smoothed one-hot times its class weight / batch size, so that
  // the sum below is the batch's mean weighted loss, as the TF.js trainer computes it.
  const target = g.input('target', ['batch', spec.labels]);
  const epsilon = g.scalar(1e-7);
  const clipped = g.op('Clip', [probabilities, epsilon, g.scalar(1)]);
  g.output('loss', g.op('Neg', [g.op('ReduceSum', [g.op('Mul', [target, g.op('Log', [clipped])]), g.axes([0, 1])], { keepdims: 0 })]));
  g.output('predicted', g.op('ArgMax', [probabilities], { axis: 1, keepdims: 0 }), onnx.TensorProto.DataType.INT64);
  const penalties = layers.flatMap((layer, i) => (i >= first && layer.l2 > 0 ? [g.op('Mul', [g.scalar(layer.l2), g.op('ReduceSumSquare', [weightName(i, 'kernel')], { keepdims: 0 })])] : []));
  g.output('penalty', penalties.length ? penalties.reduce((a, b) => g.op('Add', [a, b])) : g.scalar(0));
  // d loss / d p = -target / p where the clip let p through, 0 elsewhere; then softmax's gradient.
  const passed = g.op('GreaterOrEqual', [probabilities, epsilon]);
  const dp = g.op('Where', [passed, g.op('Neg', [g.op('Div', [target, clipped])]), g.scalar(0)]);
  let dz = g.op('Mul', [probabilities, g.op('Sub', [dp, g.op('ReduceSum', [g.op('Mul', [probabilities, dp]), g.axes([1])], { keepdims: 1 })])]);
  for (let i = layers.length - 1; i >= 0; i--) {
    if (i < first) {
      g.output('grad_z0', dz);
      break;
    }
    g.output(gradName(i, 'kernel'), g.op('Gemm', [inputs[i]!, dz], { transA: 1 }));
    g.output(gradName(i, 'bias'), g.op('ReduceSum', [dz, g.axes([0])], { keepdims: 0 }));
    if (i === 0) break;
    let dh = g.op('Gemm', [dz, weightName(i, 'kernel')], { transB: 1 });
    const below = layers[i - 1]!;
    if (below.dropout > 0) dh = g.op('Mul', [dh, maskName(i - 1)]);
    dz = activationGrad(g, below.activation, pre[i - 1]!, act[i - 1]!, dh);
  }
  return g.encode();
}

/** The forward pass alone, for scoring: x (or z0) and weights in, probabilities out. */
export function scoringGraph(spec: NetSpec): Uint8Array {
  const g = new Graph();
  g.output('probabilities', forward(g, spec, false).probabilities);
  return g.encode();
}

/**
 * ONNX Runtime on the CPU with one thread per core. Its threads do not spin waiting for the next
 * run: between runs the cores belong to the optimizer and the sparse layer's threads (spinning,
 * ONNX Runtime's default, made a sparse step 2.5x slower).
 */
export async function openNetSession(model: Uint8Array): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(model, {
    executionProviders: ['cpu'],
    intraOpNumThreads: availableParallelism(),
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
}

export { ort };
