import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { Tokenizer } from '@huggingface/tokenizers';
import { UserError } from '../errors.js';
import type { TokenTable } from '../arrow/index.js';

/**
 * bert-base-uncased WordPiece through Hugging Face's own JavaScript port, on a model folder's
 * `tokenizer.json`. Truncation is done here, as BertTokenizerFast does it for one sequence with
 * `truncation=True, max_length=N`: [CLS], the first N-2 pieces, [SEP].
 */
export class BertTokenizer {
  private constructor(
    private readonly tokenizer: Tokenizer,
    readonly cls: number,
    readonly sep: number,
  ) {}

  static load(tokenizerPath: string, configPath: string): BertTokenizer {
    let tokenizer: Tokenizer;
    try {
      tokenizer = new Tokenizer(JSON.parse(readFileSync(tokenizerPath, 'utf8')), JSON.parse(readFileSync(configPath, 'utf8')));
    } catch (error) {
      throw new UserError(`${tokenizerPath}: cannot load the tokenizer (${(error as Error).message})`);
    }
    const cls = tokenizer.token_to_id('[CLS]');
    const sep = tokenizer.token_to_id('[SEP]');
    if (cls === undefined || sep === undefined) throw new UserError(`${tokenizerPath}: no [CLS] or [SEP] token: not a BERT WordPiece tokenizer`);
    return new BertTokenizer(tokenizer, cls, sep);
  }

  /** Ids of one text, [CLS] and [SEP] included, at most `maxLength` of them. */
  encode(text: string, maxLength: number): { ids: number[]; truncated: boolean } {
    const room = maxLength - 2;
    // Only the first `room` pieces reach the model, so a long text is first encoded up to a space
    // well past that point. No word spans a space, so the prefix's pieces are exactly the full
    // text's first pieces; if the prefix has too few, the full text is encoded after all.
    const cut = text.length > room * PREFIX_CHARS_PER_PIECE ? text.lastIndexOf(' ', room * PREFIX_CHARS_PER_PIECE) : -1;
    if (cut > 0) {
      const head = this.pieces(text.slice(0, cut));
      if (head.length > room) return { ids: this.wrap(head, room), truncated: true };
    }
    const pieces = this.pieces(text);
    return { ids: this.wrap(pieces, room), truncated: pieces.length > room };
  }

  private pieces(text: string): number[] {
    return this.tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  private wrap(pieces: number[], room: number): number[] {
    const n = Math.min(pieces.length, room);
    const ids = new Array<number>(n + 2);
    ids[0] = this.cls;
    for (let i = 0; i < n; i++) ids[i + 1] = pieces[i]!;
    ids[n + 1] = this.sep;
    return ids;
  }

  encodeAll(texts: readonly string[], maxLength: number): TokenTable {
    const offsets = new Int32Array(texts.length + 1);
    const truncated = new Uint8Array(texts.length);
    const chunks: number[][] = [];
    let total = 0;
    texts.forEach((text, i) => {
      const encoded = this.encode(text, maxLength);
      chunks.push(encoded.ids);
      truncated[i] = encoded.truncated ? 1 : 0;
      total += encoded.ids.length;
      offsets[i + 1] = total;
    });
    const ids = new Int32Array(total);
    let at = 0;
    for (const chunk of chunks) {
      ids.set(chunk, at);
      at += chunk.length;
    }
    return { ids, offsets, truncated };
  }
}

export function resolveWorkers(setting: 'auto' | number): number {
  return setting === 'auto' ? Math.max(1, availableParallelism()) : setting;
}

/** Texts per message to a worker: large enough that messaging costs little, small enough that no worker idles long at the end. */
const CHUNK = 500;

/** Plot text runs about 4.3 characters per piece (real IMDb sample); 6 leaves room for long words. */
const PREFIX_CHARS_PER_PIECE = 6;

/**
 * Worker threads, each with its own tokenizer. Starting the pool before reading the input lets
 * the workers load their tokenizer while the main thread reads Parquet. Results come back in
 * input order. Small inputs stay on the main thread, where workers would cost more than they save.
 */
export class TokenizerPool {
  private readonly workers: Worker[];

  private constructor(
    private readonly files: { tokenizer: string; config: string },
    private readonly maxLength: number,
    size: number,
  ) {
    this.workers = size > 1 ? Array.from({ length: size }, () => new Worker(new URL('./worker.js', import.meta.url), { workerData: { ...files, maxLength } })) : [];
  }

  static start(files: { tokenizer: string; config: string }, maxLength: number, workers: number): TokenizerPool {
    return new TokenizerPool(files, maxLength, workers);
  }

  async tokenize(texts: readonly string[], onProgress: (rows: number, tokens: number) => void): Promise<TokenTable> {
    if (!this.workers.length || texts.length < 8 * CHUNK) {
      const tokenizer = BertTokenizer.load(this.files.tokenizer, this.files.config);
      const parts: TokenTable[] = [];
      for (let start = 0; start < texts.length; start += CHUNK) {
        const part = tokenizer.encodeAll(texts.slice(start, start + CHUNK), this.maxLength);
        onProgress(part.offsets.length - 1, part.ids.length);
        parts.push(part);
      }
      return concatTokens(parts);
    }
    const results: TokenTable[] = [];
    let next = 0;
    await Promise.all(
      this.workers.map(
        (worker) =>
          new Promise<void>((resolve, reject) => {
            const send = () => {
              if (next * CHUNK >= texts.length) return resolve();
              const index = next++;
              worker.postMessage({ index, texts: texts.slice(index * CHUNK, (index + 1) * CHUNK) });
            };
            const onMessage = (message: { index: number; table: TokenTable }) => {
              results[message.index] = message.table;
              onProgress(message.table.offsets.length - 1, message.table.ids.length);
              send();
            };
            worker.on('message', onMessage);
            worker.once('error', reject);
            send();
          }),
      ),
    );
    for (const worker of this.workers) worker.removeAllListeners('message');
    return concatTokens(results);
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

export function concatTokens(parts: TokenTable[]): TokenTable {
  const rows = parts.reduce((n, p) => n + p.offsets.length - 1, 0);
  const total = parts.reduce((n, p) => n + p.ids.length, 0);
  const ids = new Int32Array(total);
  const offsets = new Int32Array(rows + 1);
  const truncated = new Uint8Array(rows);
  let row = 0;
  let at = 0;
  for (const part of parts) {
    ids.set(part.ids, at);
    truncated.set(part.truncated, row);
    for (let i = 1; i < part.offsets.length; i++) offsets[row + i] = at + part.offsets[i]!;
    row += part.offsets.length - 1;
    at += part.ids.length;
  }
  return { ids, offsets, truncated };
}
