import onnxProto from 'onnx-proto';

const { onnx } = onnxProto;
type NodeProto = onnxProto.onnx.INodeProto;
type GraphProto = onnxProto.onnx.IGraphProto;

/** Bump when the derivation changes what it writes: derived models are cached by it. */
export const ENCODER_DERIVATION_VERSION = 1;

/** Ops that multiply by a weight matrix, in plain, fused and quantized exports. */
const MATMUL_OPS = new Set(['MatMul', 'Gemm', 'FusedMatMul', 'MatMulInteger', 'DynamicQuantizeMatMul', 'QLinearMatMul', 'MatMulNBits', 'MatMulIntegerToFloat']);
/** Ops that quantize an activation on its way into an integer product: the float value is their input. */
const QUANTIZE_OPS = new Set(['DynamicQuantizeLinear', 'QuantizeLinear']);

export interface DerivedEncoder {
  bytes: Uint8Array;
  /** The value inside the source graph that the masked-LM head reads. */
  hiddenValue: string;
  /** Nodes of the head that the derived model no longer computes. */
  removedNodes: number;
  hidden: number;
}

/** Why a graph could not be cut: the caller turns it into an error naming the model file. */
export class NotAMaskedLmHead extends Error {}

/**
 * Cuts a fill-mask export (BertForMaskedLM and its kin: only `logits` over the vocabulary) down
 * to its encoder, whose output is the last hidden state, the tensor the masked-LM head reads.
 *
 * Names are never assumed: from `logits` the walk goes up the graph along the data path (the one
 * input of each node that is not a constant) and counts weight products. Every masked-LM head of
 * the BERT family has two: the decoder (hidden -> vocabulary, often tied to the word embeddings)
 * and, before it, the transform's dense layer (hidden -> hidden). The value going into that dense
 * layer is the encoder's output. Both weights are checked for those shapes, so a graph of another
 * kind is refused rather than cut in the wrong place. Nodes that only the head needed are dropped,
 * so the derived model does not pay for the vocabulary projection.
 */
export function deriveEncoder(source: Uint8Array, logits: string, vocab: number): DerivedEncoder {
  const model = onnx.ModelProto.decode(source);
  const graph = model.graph;
  if (!graph) throw new NotAMaskedLmHead('the file has no graph');
  const producers = new Map<string, NodeProto>();
  for (const node of graph.node ?? []) for (const out of node.output ?? []) producers.set(out, node);
  const constants = constantValues(graph);
  const initializerDims = new Map((graph.initializer ?? []).map((t) => [t.name!, (t.dims ?? []).map(Number)]));

  const dataInput = (node: NodeProto) => (node.input ?? []).find((name) => name && !constants.has(name));
  const products: NodeProto[] = [];
  let node = producers.get(logits);
  while (node && products.length < 2) {
    if (MATMUL_OPS.has(node.opType!)) products.push(node);
    const next = dataInput(node);
    node = next === undefined ? undefined : producers.get(next);
  }
  if (products.length < 2) throw new NotAMaskedLmHead(`found ${products.length} weight product(s) between the inputs and ${logits}, not the head's two`);
  const [decoder, dense] = products as [NodeProto, NodeProto];
  const decoderDims = weightDims(decoder, constants, producers, initializerDims);
  const denseDims = weightDims(dense, constants, producers, initializerDims);
  if (!decoderDims?.includes(vocab)) throw new NotAMaskedLmHead(`the last weight product (${decoder.name || decoder.opType}) does not project onto the ${vocab}-word vocabulary`);
  if (!denseDims || denseDims.length !== 2 || denseDims[0] !== denseDims[1]) {
    throw new NotAMaskedLmHead(`the product before the decoder (${dense.name || dense.opType}) is not a square dense layer, so this is not a masked-LM head`);
  }

  // The float value that enters the dense layer (through an activation quantizer, in int8 exports).
  let hiddenValue = dataInput(dense)!;
  const quantizer = producers.get(hiddenValue);
  if (quantizer && QUANTIZE_OPS.has(quantizer.opType!)) hiddenValue = quantizer.input![0]!;

  const before = graph.node!.length;
  cutAt(graph, hiddenValue, denseDims[0]!);
  model.metadataProps = [
    ...(model.metadataProps ?? []),
    { key: 'genre_pipeline_derivation', value: `encoder-only v${ENCODER_DERIVATION_VERSION}: the masked-LM head above ${hiddenValue} removed` },
  ];
  return { bytes: onnx.ModelProto.encode(model).finish(), hiddenValue, removedNodes: before - graph.node!.length, hidden: denseDims[0]! };
}

/** Makes `value` the graph's only output, `last_hidden_state`, and drops what it does not need. */
function cutAt(graph: GraphProto, value: string, hidden: number): void {
  graph.node!.push(onnx.NodeProto.create({ opType: 'Identity', name: 'genre_pipeline/last_hidden_state', input: [value], output: ['last_hidden_state'] }));
  const needed = new Set<string>(['last_hidden_state']);
  const kept: NodeProto[] = [];
  // Nodes are stored in topological order, so one backward pass finds everything upstream.
  for (let i = graph.node!.length - 1; i >= 0; i--) {
    const node = graph.node![i]!;
    if (!(node.output ?? []).some((out) => needed.has(out))) continue;
    kept.push(node);
    for (const input of node.input ?? []) if (input) needed.add(input);
    for (const name of subgraphInputs(node)) needed.add(name);
  }
  graph.node = kept.reverse();
  graph.initializer = (graph.initializer ?? []).filter((t) => needed.has(t.name!));
  graph.input = (graph.input ?? []).filter((v) => needed.has(v.name!));
  graph.valueInfo = (graph.valueInfo ?? []).filter((v) => needed.has(v.name!));
  const elemType = onnx.TensorProto.DataType.FLOAT;
  graph.output = [
    {
      name: 'last_hidden_state',
      type: { tensorType: { elemType, shape: { dim: [{ dimParam: 'batch_size' }, { dimParam: 'sequence_length' }, { dimValue: hidden }] } } },
    },
  ];
}

/** Outer values that the subgraphs of an If or Loop node read. */
function subgraphInputs(node: NodeProto): string[] {
  const names: string[] = [];
  for (const attribute of node.attribute ?? []) {
    for (const sub of [attribute.g, ...(attribute.graphs ?? [])]) {
      if (!sub) continue;
      for (const inner of sub.node ?? []) names.push(...(inner.input ?? []).filter(Boolean));
    }
  }
  return names;
}

/** Values known without running the graph: initializers, Constant nodes, and nodes fed only by those. */
function constantValues(graph: GraphProto): Set<string> {
  const constants = new Set((graph.initializer ?? []).map((t) => t.name!));
  for (const node of graph.node ?? []) {
    const inputs = (node.input ?? []).filter(Boolean);
    if (node.opType === 'Constant' || (inputs.length > 0 && inputs.every((name) => constants.has(name)))) {
      for (const out of node.output ?? []) constants.add(out);
    }
  }
  return constants;
}

/** The dimensions of a product's weight: an initializer, possibly behind a Transpose, Cast or DequantizeLinear. */
function weightDims(node: NodeProto, constants: Set<string>, producers: Map<string, NodeProto>, initializers: Map<string, number[]>): number[] | undefined {
  const weight = (node.input ?? []).find((name) => name && constants.has(name) && !isScalar(name, initializers));
  let name = weight;
  for (let hops = 0; name !== undefined && hops < 4; hops++) {
    const dims = initializers.get(name);
    if (dims) return dims;
    name = producers.get(name)?.input?.[0];
  }
  return undefined;
}

function isScalar(name: string, initializers: Map<string, number[]>): boolean {
  const dims = initializers.get(name);
  return dims !== undefined && dims.reduce((a, b) => a * b, 1) <= 1;
}
