import { parentPort, workerData } from 'node:worker_threads';
import { embedPieces, loadUseModel } from './use-lite.js';

// One of use-lite.ts's threads: its own TensorFlow.js (the wasm backend is single-threaded in
// Node, so each core gets a model of its own) and the batches the main thread sends it.
const use = await loadUseModel((workerData as { modelDir: string }).modelDir);
parentPort!.on('message', async ({ id, rows }: { id: number; rows: number[][] }) => {
  const t0 = performance.now();
  const vectors = await embedPieces(use, rows);
  parentPort!.postMessage({ id, vectors, seconds: (performance.now() - t0) / 1000 }, [vectors.buffer as ArrayBuffer]);
});
parentPort!.postMessage({ ready: true, macsPerToken: use.macsPerToken });
