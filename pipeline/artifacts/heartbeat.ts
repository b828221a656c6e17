import { Worker } from 'node:worker_threads';

/**
 * Files a process holds (its locks and leases) carry a heartbeat: their mtime is refreshed every
 * HEARTBEAT_MS while the process lives. A holder on another machine (a CI runner that restored
 * the store, a pod on a shared volume) cannot be asked whether its pid runs; a file it stopped
 * refreshing STALE_AFTER_MS ago is stale.
 *
 * The refresh runs on a worker thread: a stage's main thread can compute for minutes without
 * yielding (a training epoch), and a missed heartbeat must mean a dead process, not a busy one.
 */
// PIPELINE_HEARTBEAT_MS shortens both for a test (the stale delay is six heartbeats).
export const HEARTBEAT_MS = Number(process.env.PIPELINE_HEARTBEAT_MS) || 10_000;
export const STALE_AFTER_MS = 6 * HEARTBEAT_MS;

let worker: Worker | undefined;

/** Keeps `path`'s mtime fresh while this process lives; returns the stop. */
export function heartbeat(path: string): () => void {
  worker ??= new Worker(new URL('./heartbeat-worker.js', import.meta.url), { workerData: { ms: HEARTBEAT_MS }, execArgv: [] });
  // The heartbeat never keeps a finished process alive.
  worker.unref();
  worker.postMessage({ add: path });
  return () => worker?.postMessage({ remove: path });
}
