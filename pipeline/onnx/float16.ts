import onnxProto from 'onnx-proto';
import { floatValues, type ConvertedModel } from './quantize.js';

const { onnx } = onnxProto;
const { DataType } = onnx.TensorProto;
type TensorProto = onnxProto.onnx.ITensorProto;
type ValueInfoProto = onnxProto.onnx.IValueInfoProto;

/** Bump when the conversion changes what it writes: fp16 models are cached by it. */
export const FLOAT16_VERSION = 1;

export interface Float16Model extends ConvertedModel {
  /** Float tensors (initializers and constants) stored as float16. */
  tensors: number;
}

/** The largest finite float16: larger magnitudes (a mask's -3.4e38) are clamped to it, not turned into infinities. */
const FLOAT16_MAX = 65504;

/**
 * float32 -> float16 as onnxconverter-common's `convert_float_to_float16(model, keep_io_types=True)`
 * does it: every float initializer and constant becomes float16, every float value inside the
 * graph is typed float16, a Cast to float16 becomes one to float16, and each float output of the
 * graph gets a Cast back to float32, so callers read the same names and types as before. Integer
 * inputs (ids, masks) are untouched. Halves the weights and, on GPUs with fast half-precision
 * units (WebGPU's shader-f16, CUDA), the time; ONNX Runtime's CPU provider casts back to float32
 * where it has no float16 kernel, so on a CPU it is slower, not faster.
 */
export function convertToFloat16(source: Uint8Array): Float16Model {
  const model = onnx.ModelProto.decode(source);
  const graph = model.graph!;
  const counts = { tensors: 0, before: 0, after: 0 };
  const toHalf = (tensor: TensorProto): TensorProto => {
    if (tensor.dataType !== DataType.FLOAT) return tensor;
    const values = floatValues(tensor);
    counts.tensors++;
    counts.before += values.byteLength;
    counts.after += values.length * 2;
    return onnx.TensorProto.create({ name: tensor.name, dims: tensor.dims, dataType: DataType.FLOAT16, rawData: new Uint8Array(halfBits(values).buffer) });
  };
  graph.initializer = (graph.initializer ?? []).map(toHalf);
  for (const node of graph.node ?? []) {
    for (const attribute of node.attribute ?? []) {
      if (attribute.t) attribute.t = toHalf(attribute.t);
      if (node.opType === 'Cast' && attribute.name === 'to' && Number(attribute.i) === DataType.FLOAT) attribute.i = DataType.FLOAT16;
    }
  }
  for (const value of graph.valueInfo ?? []) retype(value);
  // The graph's float outputs: produced as float16 under a new name, cast back to float32 under their own.
  for (const output of graph.output ?? []) {
    if (output.type?.tensorType?.elemType !== DataType.FLOAT) continue;
    const half = `${output.name}_float16`;
    for (const node of graph.node ?? []) node.output = (node.output ?? []).map((name) => (name === output.name ? half : name));
    for (const node of graph.node ?? []) node.input = (node.input ?? []).map((name) => (name === output.name ? half : name));
    graph.node!.push(onnx.NodeProto.create({ opType: 'Cast', name: `${output.name}_to_float32`, input: [half], output: [output.name!], attribute: [{ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: DataType.FLOAT }] }));
  }
  model.metadataProps = [...(model.metadataProps ?? []), { key: 'genre_pipeline_float16', value: `float16 v${FLOAT16_VERSION}: ${counts.tensors} tensors, float32 inputs and outputs` }];
  return { bytes: onnx.ModelProto.encode(model).finish(), tensors: counts.tensors, weightBytes: { before: counts.before, after: counts.after } };
}

function retype(value: ValueInfoProto): void {
  const tensor = value.type?.tensorType;
  if (tensor?.elemType === DataType.FLOAT) tensor.elemType = DataType.FLOAT16;
}

/** IEEE 754 half-precision bits of each value, rounded to nearest even, clamped to the finite range. */
export function halfBits(values: Float32Array): Uint16Array {
  const out = new Uint16Array(values.length);
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    f32[0] = Number.isNaN(v) ? v : Math.max(-FLOAT16_MAX, Math.min(FLOAT16_MAX, v));
    const x = u32[0]!;
    const sign = (x >>> 16) & 0x8000;
    const exponent = (x >>> 23) & 0xff;
    const mantissa = x & 0x7fffff;
    if (exponent === 0xff) {
      out[i] = sign | 0x7c00 | (mantissa ? 0x200 : 0);
      continue;
    }
    const e = exponent - 127 + 15;
    if (e >= 0x1f) {
      out[i] = sign | 0x7bff;
    } else if (e <= 0) {
      // Subnormal (or zero) in float16: shift the implicit 1 in, round to nearest even.
      if (e < -10) {
        out[i] = sign;
        continue;
      }
      const m = mantissa | 0x800000;
      const shift = 14 - e;
      const half = m >>> shift;
      const rest = m & ((1 << shift) - 1);
      const halfway = 1 << (shift - 1);
      out[i] = sign | (half + (rest > halfway || (rest === halfway && half & 1) ? 1 : 0));
    } else {
      const half = (e << 10) | (mantissa >>> 13);
      const rest = mantissa & 0x1fff;
      // A carry out of the mantissa correctly bumps the exponent; clamped values never reach infinity.
      out[i] = sign | (half + (rest > 0x1000 || (rest === 0x1000 && half & 1) ? 1 : 0));
    }
  }
  return out;
}
