import onnxProto from 'onnx-proto';
import { Rng } from '../random.js';

const { onnx } = onnxProto;
const { DataType } = onnx.TensorProto;

/** The shape of a BERT encoder, as in a Hugging Face `config.json`. */
export interface BertShape {
  layers: number;
  hidden: number;
  heads: number;
  intermediate: number;
  vocab: number;
  maxPositions: number;
  typeVocab: number;
}

/** The `config.json` of a generated model, as Hugging Face writes it for BERT (plus the random-weights flag). */
export function bertConfigJson(shape: BertShape, task: ExportShape['task'] = 'feature-extraction', extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    model_type: 'bert',
    architectures: [task === 'fill-mask' ? 'BertForMaskedLM' : 'BertModel'],
    hidden_size: shape.hidden,
    num_hidden_layers: shape.layers,
    num_attention_heads: shape.heads,
    intermediate_size: shape.intermediate,
    vocab_size: shape.vocab,
    max_position_embeddings: shape.maxPositions,
    type_vocab_size: shape.typeVocab,
    hidden_act: 'gelu',
    layer_norm_eps: 1e-12,
    ...extra,
  };
}

export const BERT_BASE: BertShape = { layers: 12, hidden: 768, heads: 12, intermediate: 3072, vocab: 30522, maxPositions: 512, typeVocab: 2 };

/**
 * The ways published exports differ, so that tests and benchmarks can build each one. The
 * defaults give the project's own model (the interface of a feature-extraction export).
 */
export interface ExportShape {
  /**
   * `feature-extraction`: outputs `last_hidden_state` (and `pooler_output`), as
   * `optimum-cli export onnx --task feature-extraction` writes. `fill-mask`: BertForMaskedLM, whose
   * only output is `logits` [batch, sequence, vocab] from the masked-LM head (dense, GELU, layer
   * norm, then a decoder tied to the word embeddings), as `Xenova/bert-base-uncased` publishes.
   */
  task?: 'feature-extraction' | 'fill-mask';
  /** DistilBERT-style exports have no `token_type_ids` input (and no token type embeddings). */
  tokenTypeIds?: boolean;
  /** `pooler_output` (feature extraction only). */
  pooler?: boolean;
  /** Element type of the integer inputs. */
  idType?: 'int64' | 'int32';
  /**
   * Name nodes and values the way `torch.onnx.export` does for a Hugging Face model
   * (`/bert/encoder/layer.3/output/LayerNorm/Add_1`), and spell layer norms out as ReduceMean,
   * Sub, Pow, Sqrt, Div, Mul and Add, as exports below opset 17 do.
   */
  torchNames?: boolean;
  /**
   * Constant-weight MatMuls as `onnxruntime.quantization.quantize_dynamic` rewrites them:
   * DynamicQuantizeLinear + MatMulInteger (int8 weights) + rescale, as in `model_quantized.onnx`.
   */
  quantized?: boolean;
}

/**
 * Builds a BERT encoder as an ONNX graph (opset 17) with seeded random weights, with the
 * interface of a Hugging Face bert-base-uncased export (see `ExportShape`). Weights are drawn as
 * BERT initializes them (normal, std 0.02; layer norms 1 and 0), so the model is RANDOM: its
 * vectors carry the tokens' identity but no learned meaning. The encoder's weights depend on the
 * seed and shape only, never on the export options: a fill-mask and a feature-extraction export
 * of one seed share their encoder, as two exports of one checkpoint do.
 */
export function buildBertModel(shape: BertShape, seed: number, exportShape: ExportShape = {}): Uint8Array {
  const { task = 'feature-extraction', tokenTypeIds = true, pooler = true, idType = 'int64', torchNames = false, quantized = false } = exportShape;
  if (shape.hidden % shape.heads !== 0) throw new Error(`hidden size ${shape.hidden} is not a multiple of ${shape.heads} heads`);
  const g = new GraphBuilder(new Rng(seed, 'bert-weights'), torchNames, quantized);
  const names: Names = { root: task === 'fill-mask' ? '/bert' : '', param: (name) => (task === 'fill-mask' ? `bert.${name}` : name) };

  const { x: embedded, wordTable, typeTable } = embeddingsBlock(g, shape, names, tokenTypeIds);
  let x = embedded;
  const attention = attentionConstants(g, shape, names);
  for (let l = 0; l < shape.layers; l++) x = encoderLayer(g, shape, names, attention, x, l);
  const outputs = task === 'fill-mask' ? maskedLmHead(g, shape, x, wordTable, quantized) : featureOutputs(g, shape, x, pooler);

  const idInput = (name: string) => valueInfo(name, idType === 'int32' ? DataType.INT32 : DataType.INT64, ['batch_size', 'sequence_length']);
  const inputs = [idInput('input_ids'), idInput('attention_mask'), ...(tokenTypeIds ? [idInput('token_type_ids')] : [])];
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'genre-pipeline scripts/make-bert-model.ts (random weights)',
    opsetImport: [{ domain: '', version: 17 }],
    metadataProps: [{ key: 'random_weights', value: `true (seed ${seed})` }],
    // The token type table is drawn (to keep the weights after it) but not kept when unused.
    graph: { name: 'bert_random', node: g.nodes, initializer: g.initializers.filter((t) => tokenTypeIds || t.name !== typeTable), input: inputs, output: outputs },
  });
  return onnx.ModelProto.encode(model).finish();
}

/** Where a node or weight goes: torch's module path for the graph, Hugging Face's parameter name for the weight. */
interface Names {
  root: string;
  param: (name: string) => string;
}

/** Word + position (+ token type) embeddings, then layer norm. The type table is drawn even when unused, so the weights after it stay the same. */
function embeddingsBlock(g: GraphBuilder, shape: BertShape, { root, param }: Names, tokenTypeIds: boolean) {
  const H = shape.hidden;
  const embeddings = `${root}/embeddings`;
  const wordTable = g.normal(param('embeddings.word_embeddings.weight'), [shape.vocab, H]);
  const word = g.within(`${embeddings}/word_embeddings`, () => g.node('Gather', [wordTable, 'input_ids']));
  const positions = g.within(embeddings, () => {
    const seqLen = g.node('Gather', [g.node('Shape', ['input_ids']), g.int64Scalar('one', 1)], { axis: 0 });
    return g.node('Range', [g.int64Scalar('zero', 0), seqLen, 'one']);
  });
  const positionTable = g.normal(param('embeddings.position_embeddings.weight'), [shape.maxPositions, H]);
  const position = g.within(`${embeddings}/position_embeddings`, () => g.node('Gather', [positionTable, positions]));
  const typeTable = g.normal(param('embeddings.token_type_embeddings.weight'), [shape.typeVocab, H]);
  const type = tokenTypeIds ? g.within(`${embeddings}/token_type_embeddings`, () => g.node('Gather', [typeTable, 'token_type_ids'])) : undefined;
  let x = g.within(embeddings, () => g.node('Add', [word, position]));
  if (type) x = g.within(embeddings, () => g.node('Add', [x, type]));
  return { x: g.layerNorm(`${embeddings}/LayerNorm`, param('embeddings.LayerNorm'), x, H), wordTable, typeTable };
}

interface AttentionConstants {
  maskBias: string;
  splitHeads: string;
  mergeHeads: string;
  scale: string;
}

/** The additive attention mask (0 where attended, -10000 at padding, as [B, 1, 1, S]) and the head reshapes, shared by every layer. */
function attentionConstants(g: GraphBuilder, shape: BertShape, { root }: Names): AttentionConstants {
  const headSize = shape.hidden / shape.heads;
  const maskBias = g.within(root, () => {
    const mask = g.node('Unsqueeze', [g.node('Cast', ['attention_mask'], { to: DataType.FLOAT }), g.int64Vector('mask_axes', [1, 2])]);
    return g.node('Mul', [g.node('Sub', [g.floatScalar('one_f', 1), mask]), g.floatScalar('mask_value', -10000)]);
  });
  const splitHeads = g.int64Vector('split_heads', [0, 0, shape.heads, headSize]);
  const mergeHeads = g.int64Vector('merge_heads', [0, 0, shape.hidden]);
  return { maskBias, splitHeads, mergeHeads, scale: g.floatScalar('attention_scale', 1 / Math.sqrt(headSize)) };
}

/** One encoder block: self-attention, add and norm, feed-forward with GELU, add and norm. */
function encoderLayer(g: GraphBuilder, shape: BertShape, { root, param }: Names, c: AttentionConstants, x: string, l: number): string {
  const { hidden: H, intermediate: I } = shape;
  const p = param(`encoder.layer.${l}`);
  const s = `${root}/encoder/layer.${l}`;
  const dense = (module: string, input: string, from: number, to: number) => g.dense(`${s}/${module.replace(/\./g, '/')}`, `${p}.${module}`, input, from, to);
  const heads4 = (module: string, perm: number[]) =>
    g.within(`${s}/attention/self`, () => g.node('Transpose', [g.node('Reshape', [dense(`attention.self.${module}`, x, H, H), c.splitHeads])], { perm }));
  const q = heads4('query', [0, 2, 1, 3]);
  const k = heads4('key', [0, 2, 3, 1]);
  const v = heads4('value', [0, 2, 1, 3]);
  const merged = g.within(`${s}/attention/self`, () => {
    const scores = g.node('Add', [g.node('Mul', [g.node('MatMul', [q, k]), c.scale]), c.maskBias]);
    const context = g.node('MatMul', [g.node('Softmax', [scores], { axis: -1 }), v]);
    return g.node('Reshape', [g.node('Transpose', [context], { perm: [0, 2, 1, 3] }), c.mergeHeads]);
  });
  const attentionOut = dense('attention.output.dense', merged, H, H);
  const attention = g.layerNorm(`${s}/attention/output/LayerNorm`, `${p}.attention.output.LayerNorm`, g.within(`${s}/attention/output`, () => g.node('Add', [attentionOut, x])), H);
  const up = dense('intermediate.dense', attention, H, I);
  const gelu = g.within(`${s}/intermediate/intermediate_act_fn`, () => g.gelu(up));
  const down = dense('output.dense', gelu, I, H);
  return g.layerNorm(`${s}/output/LayerNorm`, `${p}.output.LayerNorm`, g.within(`${s}/output`, () => g.node('Add', [down, attention])), H);
}

/**
 * BertForMaskedLM's head: transform (dense, GELU, layer norm), then the decoder, whose weight is
 * the word embedding table (tied), plus a bias over the vocabulary. Its only output is `logits`.
 */
function maskedLmHead(g: GraphBuilder, shape: BertShape, x: string, wordTable: string, quantized: boolean) {
  const H = shape.hidden;
  const head = '/cls/predictions';
  const transformed = g.dense(`${head}/transform/dense`, 'cls.predictions.transform.dense', x, H, H);
  const act = g.within(`${head}/transform/transform_act_fn`, () => g.gelu(transformed));
  const normed = g.layerNorm(`${head}/transform/LayerNorm`, 'cls.predictions.transform.LayerNorm', act, H);
  const logits = g.within(`${head}/decoder`, () => {
    if (quantized) return g.quantizedMatMul(normed, 'cls.predictions.decoder.weight', transposed(g.values(wordTable), shape.vocab, H), H, shape.vocab);
    return g.node('MatMul', [normed, g.node('Transpose', [wordTable], { perm: [1, 0] })]);
  });
  g.within(head, () => g.node('Add', [logits, g.zeros('cls.predictions.bias', [shape.vocab])], {}, 'logits'));
  return [valueInfo('logits', DataType.FLOAT, ['batch_size', 'sequence_length', shape.vocab])];
}

/** A feature-extraction export's outputs: `last_hidden_state`, and `pooler_output` (tanh of a dense layer on [CLS]). */
function featureOutputs(g: GraphBuilder, shape: BertShape, x: string, pooler: boolean) {
  const H = shape.hidden;
  g.node('Identity', [x], {}, 'last_hidden_state');
  const outputs = [valueInfo('last_hidden_state', DataType.FLOAT, ['batch_size', 'sequence_length', H])];
  if (pooler) {
    const first = g.within('/pooler', () => g.node('Gather', [x, 'zero'], { axis: 1 }));
    const pooled = g.dense('/pooler/dense', 'pooler.dense', first, H, H);
    g.within('/pooler/activation', () => g.node('Tanh', [pooled], {}, 'pooler_output'));
    outputs.push(valueInfo('pooler_output', DataType.FLOAT, ['batch_size', H]));
  }
  return outputs;
}

function transposed(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = values[r * cols + c]!;
  return out;
}

function valueInfo(name: string, elemType: number, dims: (string | number)[]) {
  return {
    name,
    type: { tensorType: { elemType, shape: { dim: dims.map((d) => (typeof d === 'string' ? { dimParam: d } : { dimValue: d })) } } },
  };
}

type Attribute = number | number[];

/** Collects nodes and initializers, naming intermediate values for readability in Netron. */
class GraphBuilder {
  nodes: InstanceType<typeof onnx.NodeProto>[] = [];
  initializers: InstanceType<typeof onnx.TensorProto>[] = [];
  private counter = 0;
  private constants = new Set<string>();
  private scope = '';
  /** Per scope and op, how many nodes were named so far (torch names repeats Add, Add_1, ...). */
  private scopeCounts = new Map<string, number>();
  private floatValues = new Map<string, Float32Array>();

  constructor(
    private rng: Rng,
    private torchNames: boolean,
    private quantized: boolean,
  ) {}

  /** Names the nodes that `build` adds after a module path, as torch.onnx.export does (with torchNames). */
  within<T>(scope: string, build: () => T): T {
    const outer = this.scope;
    this.scope = scope;
    try {
      return build();
    } finally {
      this.scope = outer;
    }
  }

  node(op: string, inputs: string[], attributes: Record<string, Attribute> = {}, output?: string): string {
    const { nodeName, valueName } = output && !(this.torchNames && this.scope) ? { nodeName: undefined, valueName: output } : this.names(op);
    const name = output ?? valueName;
    const attribute = Object.entries(attributes).map(([key, value]) =>
      Array.isArray(value)
        ? { name: key, type: onnx.AttributeProto.AttributeType.INTS, ints: value }
        : Number.isInteger(value) && key !== 'epsilon'
          ? { name: key, type: onnx.AttributeProto.AttributeType.INT, i: value }
          : { name: key, type: onnx.AttributeProto.AttributeType.FLOAT, f: value },
    );
    this.nodes.push(onnx.NodeProto.create({ opType: op, name: nodeName ?? `${name}_node`, input: inputs, output: [name], attribute }));
    return name;
  }

  private names(op: string): { nodeName?: string; valueName: string } {
    if (!this.torchNames || !this.scope) return { valueName: `${op.toLowerCase()}_${this.counter++}` };
    const key = `${this.scope}/${op}`;
    const n = this.scopeCounts.get(key) ?? 0;
    this.scopeCounts.set(key, n + 1);
    const nodeName = `${key}${n ? `_${n}` : ''}`;
    return { nodeName, valueName: `${nodeName}_output_0` };
  }

  /** A linear layer `x W + b` (a quantized one when the export is quantized). */
  dense(scope: string, param: string, input: string, from: number, to: number): string {
    return this.within(scope, () => {
      const weight = this.normal(`${param}.weight`, [from, to]);
      const product = this.quantized ? this.quantizedMatMul(input, `${param}.weight`, this.values(weight), from, to) : this.node('MatMul', [input, weight]);
      return this.node('Add', [product, this.zeros(`${param}.bias`, [to])]);
    });
  }

  /**
   * `x W` as quantize_dynamic writes it: the weight as int8 with one symmetric scale, the
   * activation quantized at run time (DynamicQuantizeLinear), an integer product, then rescaled.
   */
  quantizedMatMul(input: string, param: string, weight: Float32Array, from: number, to: number): string {
    let max = 0;
    for (const w of weight) max = Math.max(max, Math.abs(w));
    const scale = max / 127 || 1;
    const quantizedWeight = Int8Array.from(weight, (w) => Math.max(-127, Math.min(127, Math.round(w / scale))));
    const q = `${param}_quantized`;
    this.initializers.push(onnx.TensorProto.create({ name: q, dims: [from, to], dataType: DataType.INT8, rawData: new Uint8Array(quantizedWeight.buffer) }));
    this.initializers.push(onnx.TensorProto.create({ name: `${q}_zero_point`, dims: [], dataType: DataType.INT8, rawData: new Uint8Array(1) }));
    const weightScale = this.tensor(`${q}_scale`, [], new Float32Array([scale]));
    const { nodeName, valueName } = this.names('DynamicQuantizeLinear');
    const base = nodeName ?? valueName;
    const [xq, xScale, xZero] = [0, 1, 2].map((i) => `${base}_output_${i}`) as [string, string, string];
    this.nodes.push(onnx.NodeProto.create({ opType: 'DynamicQuantizeLinear', name: base, input: [input], output: [xq, xScale, xZero] }));
    const integer = this.node('MatMulInteger', [xq, q, xZero, `${q}_zero_point`]);
    const asFloat = this.node('Cast', [integer], { to: DataType.FLOAT });
    return this.node('Mul', [asFloat, this.node('Mul', [xScale, weightScale])]);
  }

  /** GELU as BERT computes it: 0.5 * x * (1 + erf(x / sqrt(2))). */
  gelu(x: string): string {
    return this.node('Mul', [this.node('Mul', [x, this.floatScalar('half', 0.5)]), this.node('Add', [this.node('Erf', [this.node('Div', [x, this.floatScalar('sqrt2', Math.SQRT2)])]), this.floatScalar('one_f', 1)])]);
  }

  layerNorm(scope: string, param: string, input: string, size: number): string {
    const weight = this.tensor(`${param}.weight`, [size], new Float32Array(size).fill(1));
    const bias = this.zeros(`${param}.bias`, [size]);
    return this.within(scope, () => {
      if (!this.torchNames) return this.node('LayerNormalization', [input, weight, bias], { axis: -1, epsilon: 1e-12 });
      // Spelled out, as torch.onnx.export writes LayerNorm below opset 17.
      const centred = this.node('Sub', [input, this.node('ReduceMean', [input], { axes: [-1] })]);
      const variance = this.node('ReduceMean', [this.node('Pow', [centred, this.floatScalar('two_f', 2)])], { axes: [-1] });
      const normalized = this.node('Div', [centred, this.node('Sqrt', [this.node('Add', [variance, this.floatScalar('layer_norm_eps', 1e-12)])])]);
      return this.node('Add', [this.node('Mul', [normalized, weight]), bias]);
    });
  }

  normal(name: string, dims: number[]): string {
    const values = new Float32Array(dims.reduce((a, b) => a * b, 1));
    for (let i = 0; i < values.length; i += 2) {
      // Box-Muller: two normals from two uniforms.
      const r = Math.sqrt(-2 * Math.log(1 - this.rng.next()));
      const t = 2 * Math.PI * this.rng.next();
      values[i] = 0.02 * r * Math.cos(t);
      if (i + 1 < values.length) values[i + 1] = 0.02 * r * Math.sin(t);
    }
    this.floatValues.set(name, values);
    // A quantized export keeps the int8 copy only (the product reads it); gathers keep the floats.
    return this.quantized && dims.length === 2 && !name.includes('embeddings') ? name : this.tensor(name, dims, values);
  }

  /** The float values of an initializer this builder drew. */
  values(name: string): Float32Array {
    return this.floatValues.get(name)!;
  }

  zeros(name: string, dims: number[]): string {
    return this.tensor(name, dims, new Float32Array(dims.reduce((a, b) => a * b, 1)));
  }

  floatScalar(name: string, value: number): string {
    return this.constant(name, () => this.tensor(name, [], new Float32Array([value])));
  }

  int64Scalar(name: string, value: number): string {
    return this.constant(name, () => this.tensor(name, [], new BigInt64Array([BigInt(value)])));
  }

  int64Vector(name: string, values: number[]): string {
    return this.constant(name, () => this.tensor(name, [values.length], new BigInt64Array(values.map(BigInt))));
  }

  private constant(name: string, make: () => string): string {
    if (!this.constants.has(name)) {
      this.constants.add(name);
      make();
    }
    return name;
  }

  private tensor(name: string, dims: number[], values: Float32Array | BigInt64Array): string {
    const dataType = values instanceof Float32Array ? DataType.FLOAT : DataType.INT64;
    this.initializers.push(onnx.TensorProto.create({ name, dims, dataType, rawData: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) }));
    return name;
  }
}
