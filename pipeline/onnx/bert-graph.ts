import onnxProto from 'onnx-proto';
import { Rng } from '../random.js';

const { onnx } = onnxProto;

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

export const BERT_BASE: BertShape = { layers: 12, hidden: 768, heads: 12, intermediate: 3072, vocab: 30522, maxPositions: 512, typeVocab: 2 };

/**
 * Builds a BERT encoder as an ONNX graph (opset 17) with seeded random weights and the
 * interface of Hugging Face's bert-base-uncased exports: int64 `input_ids`, `attention_mask`
 * and `token_type_ids` of shape [batch, sequence]; float `last_hidden_state`
 * [batch, sequence, hidden] and `pooler_output` [batch, hidden]. Weights are drawn as BERT
 * initializes them (normal, std 0.02; layer norms 1 and 0), so the model is RANDOM: its vectors
 * carry the tokens' identity but no learned meaning.
 */
export function buildBertModel(shape: BertShape, seed: number): Uint8Array {
  const g = new GraphBuilder(new Rng(seed, 'bert-weights'));
  const { hidden: H, heads, intermediate: I } = shape;
  if (H % heads !== 0) throw new Error(`hidden size ${H} is not a multiple of ${heads} heads`);
  const headSize = H / heads;

  // Embeddings: word + position + token type, then layer norm.
  const word = g.node('Gather', [g.normal('embeddings.word_embeddings.weight', [shape.vocab, H]), 'input_ids']);
  const seqLen = g.node('Gather', [g.node('Shape', ['input_ids']), g.int64Scalar('one', 1)], { axis: 0 });
  const positions = g.node('Range', [g.int64Scalar('zero', 0), seqLen, 'one']);
  const position = g.node('Gather', [g.normal('embeddings.position_embeddings.weight', [shape.maxPositions, H]), positions]);
  const type = g.node('Gather', [g.normal('embeddings.token_type_embeddings.weight', [shape.typeVocab, H]), 'token_type_ids']);
  let x = g.layerNorm('embeddings.LayerNorm', g.node('Add', [g.node('Add', [word, position]), type]), H);

  // Additive attention mask: 0 where attended, -10000 at padding, broadcast to [B, 1, 1, S].
  const mask = g.node('Unsqueeze', [g.node('Cast', ['attention_mask'], { to: onnx.TensorProto.DataType.FLOAT }), g.int64Vector('mask_axes', [1, 2])]);
  const maskBias = g.node('Mul', [g.node('Sub', [g.floatScalar('one_f', 1), mask]), g.floatScalar('mask_value', -10000)]);
  const splitHeads = g.int64Vector('split_heads', [0, 0, heads, headSize]);
  const mergeHeads = g.int64Vector('merge_heads', [0, 0, H]);
  const scale = g.floatScalar('attention_scale', 1 / Math.sqrt(headSize));

  for (let l = 0; l < shape.layers; l++) {
    const p = `encoder.layer.${l}`;
    const project = (name: string, input: string, from: number, to: number) =>
      g.node('Add', [g.node('MatMul', [input, g.normal(`${p}.${name}.weight`, [from, to])]), g.zeros(`${p}.${name}.bias`, [to])]);
    const q = g.node('Transpose', [g.node('Reshape', [project('attention.self.query', x, H, H), splitHeads])], { perm: [0, 2, 1, 3] });
    const k = g.node('Transpose', [g.node('Reshape', [project('attention.self.key', x, H, H), splitHeads])], { perm: [0, 2, 3, 1] });
    const v = g.node('Transpose', [g.node('Reshape', [project('attention.self.value', x, H, H), splitHeads])], { perm: [0, 2, 1, 3] });
    const scores = g.node('Add', [g.node('Mul', [g.node('MatMul', [q, k]), scale]), maskBias]);
    const context = g.node('MatMul', [g.node('Softmax', [scores], { axis: -1 }), v]);
    const merged = g.node('Reshape', [g.node('Transpose', [context], { perm: [0, 2, 1, 3] }), mergeHeads]);
    const attention = g.layerNorm(`${p}.attention.output.LayerNorm`, g.node('Add', [project('attention.output.dense', merged, H, H), x]), H);
    const up = project('intermediate.dense', attention, H, I);
    // GELU as BERT computes it: 0.5 * x * (1 + erf(x / sqrt(2))).
    const gelu = g.node('Mul', [g.node('Mul', [up, g.floatScalar('half', 0.5)]), g.node('Add', [g.node('Erf', [g.node('Div', [up, g.floatScalar('sqrt2', Math.SQRT2)])]), 'one_f'])]);
    x = g.layerNorm(`${p}.output.LayerNorm`, g.node('Add', [project('output.dense', gelu, I, H), attention]), H);
  }

  g.node('Identity', [x], {}, 'last_hidden_state');
  const first = g.node('Gather', [x, 'zero'], { axis: 1 });
  const pooled = g.node('Add', [g.node('MatMul', [first, g.normal('pooler.dense.weight', [H, H])]), g.zeros('pooler.dense.bias', [H])]);
  g.node('Tanh', [pooled], {}, 'pooler_output');

  const int64Input = (name: string) => valueInfo(name, onnx.TensorProto.DataType.INT64, ['batch_size', 'sequence_length']);
  const model = onnx.ModelProto.create({
    irVersion: 8,
    producerName: 'genre-pipeline scripts/make-bert-model.ts (random weights)',
    opsetImport: [{ domain: '', version: 17 }],
    metadataProps: [{ key: 'random_weights', value: `true (seed ${seed})` }],
    graph: {
      name: 'bert_random',
      node: g.nodes,
      initializer: g.initializers,
      input: [int64Input('input_ids'), int64Input('attention_mask'), int64Input('token_type_ids')],
      output: [
        valueInfo('last_hidden_state', onnx.TensorProto.DataType.FLOAT, ['batch_size', 'sequence_length', H]),
        valueInfo('pooler_output', onnx.TensorProto.DataType.FLOAT, ['batch_size', H]),
      ],
    },
  });
  return onnx.ModelProto.encode(model).finish();
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

  constructor(private rng: Rng) {}

  node(op: string, inputs: string[], attributes: Record<string, Attribute> = {}, output?: string): string {
    const name = output ?? `${op.toLowerCase()}_${this.counter++}`;
    const attribute = Object.entries(attributes).map(([key, value]) =>
      Array.isArray(value)
        ? { name: key, type: onnx.AttributeProto.AttributeType.INTS, ints: value }
        : Number.isInteger(value) && key !== 'epsilon'
          ? { name: key, type: onnx.AttributeProto.AttributeType.INT, i: value }
          : { name: key, type: onnx.AttributeProto.AttributeType.FLOAT, f: value },
    );
    this.nodes.push(onnx.NodeProto.create({ opType: op, name: `${name}_node`, input: inputs, output: [name], attribute }));
    return name;
  }

  layerNorm(prefix: string, input: string, size: number): string {
    const weight = this.tensor(`${prefix}.weight`, [size], new Float32Array(size).fill(1));
    return this.node('LayerNormalization', [input, weight, this.zeros(`${prefix}.bias`, [size])], { axis: -1, epsilon: 1e-12 });
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
    return this.tensor(name, dims, values);
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
    const dataType = values instanceof Float32Array ? onnx.TensorProto.DataType.FLOAT : onnx.TensorProto.DataType.INT64;
    this.initializers.push(onnx.TensorProto.create({ name, dims, dataType, rawData: new Uint8Array(values.buffer, values.byteOffset, values.byteLength) }));
    return name;
  }
}
