import { parentPort, workerData } from 'node:worker_threads';
import { applyUpdate, type UpdateRule } from './sparse.js';

// One of sparse.ts's update threads: the layer's kernel, gradient and optimizer slots, shared with
// the training thread; each message names a slice to update, the reply says it is done.
const [w, g, s1, s2] = (workerData as { buffers: SharedArrayBuffer[] }).buffers.map((b) => new Float32Array(b));
parentPort!.on('message', ({ rule, start, end }: { rule: UpdateRule; start: number; end: number }) => {
  applyUpdate(rule, w!, g!, s1!, s2!, start, end);
  parentPort!.postMessage('done');
});
