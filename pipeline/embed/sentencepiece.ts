/**
 * The SentencePiece (unigram) tokenizer of Universal Sentence Encoder lite, written against its
 * vocabulary file (`vocab.json`: [piece, score] pairs; the first 6 are reserved). It segments
 * exactly as the tokenizer the model is published with (`@energetic-ai/embeddings`, after
 * TensorFlow.js's universal-sentence-encoder), quirks included, so that the vectors are the
 * model's: NFKC, spaces as U+2581 with one in front, the highest-scoring segmentation by
 * dynamic programming where a later candidate wins a tie, an unknown character as id 0, and runs
 * of unknowns merged into one. A test checks the pieces against the package's on the real sample.
 *
 * Written here rather than called from the package: that one only comes with the package's own
 * TensorFlow.js 4.5, and the pipeline runs the model on its own (featurizer `use-lite`).
 */
const SEPARATOR = '\u2581';
const RESERVED = 6;

interface Node {
  children: Map<string, Node>;
  /** [piece length in symbols, score, id] of the piece ending here, if one does. */
  piece?: [number, number, number];
}

export class SentencePieceTokenizer {
  private readonly root: Node = { children: new Map() };
  private readonly lengths: Int32Array;

  constructor(vocabulary: readonly [string, number][]) {
    // The walk back steps by each piece's length in UTF-16 units, as the published tokenizer does
    // (the walk forward counts code points): the same ids for astral characters too.
    this.lengths = new Int32Array(vocabulary.length);
    vocabulary.forEach(([piece], id) => (this.lengths[id] = piece.length));
    for (let id = RESERVED; id < vocabulary.length; id++) {
      const [piece, score] = vocabulary[id]!;
      let node = this.root;
      const symbols = [...piece];
      for (const symbol of symbols) {
        let child = node.children.get(symbol);
        if (!child) node.children.set(symbol, (child = { children: new Map() }));
        node = child;
      }
      node.piece = [symbols.length, score, id];
    }
  }

  encode(text: string): number[] {
    const normalized = text.normalize('NFKC');
    const symbols = normalized.length ? [...(SEPARATOR + normalized.replace(/ /g, SEPARATOR))] : [];
    const n = symbols.length;
    // Candidates ending at each position, by start position, in the order the published tokenizer visits them.
    const ending: Map<number, [number, number, number][]>[] = Array.from({ length: n + 1 }, () => new Map());
    for (let start = 0; start < n; start++) {
      const matches: [number, number, number][] = [];
      let node = this.root.children.get(symbols[start]!);
      for (let i = start; i < n && node; i++) {
        if (node.piece) matches.push(node.piece);
        node = node.children.get(symbols[i + 1]!);
      }
      // An unknown character: one symbol, score 0, id 0.
      if (!matches.length) matches.push([1, 0, 0]);
      for (const match of matches) {
        const end = start + match[0];
        const list = ending[end]!.get(start);
        if (list) list.push(match);
        else ending[end]!.set(start, [match]);
      }
    }
    const best = new Float64Array(n + 1);
    const words = new Int32Array(n + 1);
    for (let end = 0; end <= n; end++) {
      // Object keys of the published tokenizer iterate in ascending numeric order.
      for (const start of [...ending[end]!.keys()].sort((a, b) => a - b)) {
        for (const [length, score, id] of ending[end]!.get(start)!) {
          const total = score + best[end - length]!;
          if (best[end] === 0 || total >= best[end]!) {
            best[end] = total;
            words[end] = id;
          }
        }
      }
    }
    const ids: number[] = [];
    for (let at = n; at > 0; at -= this.lengths[words[at]!]!) ids.push(words[at]!);
    const merged: number[] = [];
    let previousUnknown = false;
    for (const id of ids) {
      if (!(previousUnknown && id === 0)) merged.push(id);
      previousUnknown = id === 0;
    }
    return merged.reverse();
  }
}
