import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
const { DataType } = onnx.TensorProto;
type TensorProto = onnxProto.onnx.ITensorProto;

/** Bump when the quantizer changes what it writes: quantized models are cached by it. */
export const QUANTIZER_VERSION = 1;

/** A model the pipeline rewrote, and what its weights weighed before and after. */
export interface ConvertedModel {
  bytes: Uint8Array;
  weightBytes: { before: number; after: number };
}

export interface Quantized extends ConvertedModel {
  /** How many weight products were rewritten. */
  matmuls: number;
}

/**
 * Dynamic int8 quantization, as `onnxruntime.quantization.quantize_dynamic(per_channel=True,
 * weight_type=QInt8)` does it: every MatMul whose second input is a 2-D float initializer (the
 * dense layers of every encoder block) becomes ONNX Runtime's `DynamicQuantizeMatMul`: the weight
 * stored as int8 with one symmetric scale per output column, the activation quantized to uint8
 * per batch at run time, an integer product (VNNI on x86), and the result scaled back to float.
 * Attention's activation-by-activation products, layer norms, softmax and GELU stay in float.
 */
export function quantizeDynamic(source: Uint8Array): Quantized {
  const model = onnx.ModelProto.decode(source);
  const graph = model.graph!;
  const initializers = new Map((graph.initializer ?? []).map((t) => [t.name!, t]));
  const readers = new Map<string, number>();
  for (const node of graph.node ?? []) for (const input of node.input ?? []) readers.set(input, (readers.get(input) ?? 0) + 1);

  const replaced = new Set<string>();
  const added: TensorProto[] = [];
  let matmuls = 0;
  let before = 0;
  let after = 0;
  graph.node = (graph.node ?? []).map((node) => {
    const weight = node.opType === 'MatMul' ? initializers.get(node.input?.[1] ?? '') : undefined;
    if (!weight || weight.dataType !== DataType.FLOAT || weight.dims?.length !== 2) return node;
    const [rows, cols] = weight.dims.map(Number) as [number, number];
    const values = floatValues(weight);
    // Weights kept in an external file are left as they are.
    if (values.length !== rows * cols) return node;
    const { quantized, scales } = quantizePerColumn(values, rows, cols);
    const name = weight.name!;
    added.push(
      onnx.TensorProto.create({ name: `${name}_int8`, dims: [rows, cols], dataType: DataType.INT8, rawData: new Uint8Array(quantized.buffer) }),
      onnx.TensorProto.create({ name: `${name}_scale`, dims: [cols], dataType: DataType.FLOAT, rawData: new Uint8Array(scales.buffer) }),
      onnx.TensorProto.create({ name: `${name}_zero_point`, dims: [cols], dataType: DataType.INT8, rawData: new Uint8Array(cols) }),
    );
    // A weight read elsewhere too (a tied embedding) keeps its float copy for those readers.
    if (readers.get(name) === 1) replaced.add(name);
    matmuls++;
    before += values.byteLength;
    after += quantized.byteLength;
    return onnx.NodeProto.create({
      opType: 'DynamicQuantizeMatMul',
      domain: 'com.microsoft',
      name: `${node.name || name}_int8`,
      input: [node.input![0]!, `${name}_int8`, `${name}_scale`, `${name}_zero_point`],
      output: node.output,
    });
  });
  graph.initializer = [...(graph.initializer ?? []).filter((t) => !replaced.has(t.name!)), ...added];
  if (!(model.opsetImport ?? []).some((o) => o.domain === 'com.microsoft')) model.opsetImport = [...(model.opsetImport ?? []), { domain: 'com.microsoft', version: 1 }];
  model.metadataProps = [...(model.metadataProps ?? []), { key: 'genre_pipeline_quantization', value: `dynamic int8 v${QUANTIZER_VERSION}: ${matmuls} MatMuls, per-column symmetric int8 weights` }];
  return { bytes: onnx.ModelProto.encode(model).finish(), matmuls, weightBytes: { before, after } };
}

/** Symmetric int8 per output column: scale = max |w| / 127 over the column, zero point 0. */
export function quantizePerColumn(values: Float32Array, rows: number, cols: number): { quantized: Int8Array; scales: Float32Array } {
  const scales = new Float32Array(cols);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) scales[c] = Math.max(scales[c]!, Math.abs(values[r * cols + c]!));
  for (let c = 0; c < cols; c++) scales[c] = scales[c]! / 127 || 1;
  const quantized = new Int8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) quantized[r * cols + c] = Math.max(-127, Math.min(127, Math.round(values[r * cols + c]! / scales[c]!)));
  }
  return { quantized, scales };
}

export function floatValues(tensor: TensorProto): Float32Array {
  if (tensor.rawData && tensor.rawData.length) {
    const raw = tensor.rawData;
    // A copy: rawData may be an unaligned view into the decoded file.
    return new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  }
  return Float32Array.from(tensor.floatData ?? []);
}
