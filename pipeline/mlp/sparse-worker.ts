import { parentPort, workerData } from 'node:worker_threads';
import { instantiateLoops, runJob, type BatchArrays, type Job, type LayerArrays, type StepHistory } from './sparse-kernels.js';

// One of sparse.ts's worker threads: the layer's arrays are shared with the training thread (they
// come once, in workerData, with the WebAssembly memory they live in, on which this thread runs
// its own instance of the loops); the batch's and the step history's come again whenever they are
// reallocated; each job names a loop and a range, and the reply says it is done.
const layer = workerData as LayerArrays;
const loops = instantiateLoops(layer.memory);
let batch: BatchArrays | undefined;
let history: StepHistory | undefined;
parentPort!.on('message', (message: { arrays?: { batch: BatchArrays; history: StepHistory }; job?: Job }) => {
  if (message.arrays) ({ batch, history } = message.arrays);
  if (message.job) {
    runJob(loops, layer, batch!, history!, message.job);
    parentPort!.postMessage('done');
  }
});
