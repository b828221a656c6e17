import { parentPort, workerData } from 'node:worker_threads';
import { BertTokenizer } from './index.js';

// One tokenizer per thread; the main thread sends chunks of texts and gets typed arrays back.
const { tokenizer: tokenizerPath, config, maxLength } = workerData as { tokenizer: string; config: string; maxLength: number };
const tokenizer = BertTokenizer.load(tokenizerPath, config);

parentPort!.on('message', ({ index, texts }: { index: number; texts: string[] }) => {
  const table = tokenizer.encodeAll(texts, maxLength);
  parentPort!.postMessage({ index, table }, [table.ids.buffer as ArrayBuffer, table.offsets.buffer as ArrayBuffer, table.truncated.buffer as ArrayBuffer]);
});
