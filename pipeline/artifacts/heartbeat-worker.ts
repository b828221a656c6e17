import { utimesSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';

// The heartbeat thread (heartbeat.ts): refreshes the mtime of every file the process holds.
const paths = new Set<string>();
parentPort!.on('message', ({ add, remove }: { add?: string; remove?: string }) => {
  if (add) paths.add(add);
  if (remove) paths.delete(remove);
});
setInterval(() => {
  const now = new Date();
  for (const path of paths) {
    try {
      utimesSync(path, now, now);
    } catch {
      // Released or removed meanwhile.
    }
  }
}, (workerData as { ms: number }).ms);
