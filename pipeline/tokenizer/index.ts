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
    const pieces = this.tokenizer.encode(text, { add_special_tokens: false }).ids;
    const room = maxLength - 2;
    const truncated = pieces.length > room;
    return { ids: [this.cls, ...(truncated ? pieces.slice(0, room) : pieces), this.sep], truncated };
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

/** Texts per message to a worker: large enough that messaging costs little, small enough for steady progress. */
const CHUNK = 2000;

/**
 * Tokenizes with `workers` threads, each with its own tokenizer; the result is in input order.
 * Small inputs stay on the main thread, where starting workers would cost more than it saves.
 */
export async function tokenizeParallel(
  texts: readonly string[],
  files: { tokenizer: string; config: string },
  maxLength: number,
  workers: number,
  onProgress: (rows: number, tokens: number) => void,
): Promise<TokenTable> {
  if (workers <= 1 || texts.length < 4 * CHUNK) {
    const tokenizer = BertTokenizer.load(files.tokenizer, files.config);
    const parts: TokenTable[] = [];
    for (let start = 0; start < texts.length; start += CHUNK) {
      const part = tokenizer.encodeAll(texts.slice(start, start + CHUNK), maxLength);
      onProgress(part.offsets.length - 1, part.ids.length);
      parts.push(part);
    }
    return concatTokens(parts);
  }
  const results: TokenTable[] = [];
  let next = 0;
  const pool = Array.from({ length: workers }, () => new Worker(new URL('./worker.js', import.meta.url), { workerData: { ...files, maxLength } }));
  try {
    await Promise.all(
      pool.map(
        (worker) =>
          new Promise<void>((resolve, reject) => {
            const send = () => {
              if (next * CHUNK >= texts.length) return resolve();
              const index = next++;
              worker.postMessage({ index, texts: texts.slice(index * CHUNK, (index + 1) * CHUNK) });
            };
            worker.on('message', (message: { index: number; table: TokenTable }) => {
              results[message.index] = message.table;
              onProgress(message.table.offsets.length - 1, message.table.ids.length);
              send();
            });
            worker.on('error', reject);
            send();
          }),
      ),
    );
  } finally {
    await Promise.all(pool.map((w) => w.terminate()));
  }
  return concatTokens(results);
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
