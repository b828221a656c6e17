import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { isAlive, readOwner } from './lock.js';
import { listRuns, runPointers } from './runs.js';
import type { ArtifactStore } from './store.js';

export interface Removed {
  path: string;
  bytes: number;
}

/**
 * Removes the keys no run points to, and partial folders and locks whose builder is gone.
 * A partial folder whose builder still runs (its lock is held) is left alone.
 */
export function collectGarbage(store: ArtifactStore, dryRun: boolean): Removed[] {
  const live = new Set<string>();
  for (const run of listRuns(store)) for (const [stage, key] of Object.entries(runPointers(store, run))) live.add(`${stage}/${key}`);
  const removed: Removed[] = [];
  if (!existsSync(store.root)) return removed;
  for (const stage of readdirSync(store.root)) {
    if (stage === 'runs' || stage.startsWith('.')) continue;
    const stageDir = join(store.root, stage);
    if (!statSync(stageDir).isDirectory()) continue;
    const heldKeys = new Set(
      readdirSync(stageDir)
        .filter((name) => name.endsWith('.lock'))
        .filter((name) => {
          const owner = readOwner(join(stageDir, name));
          return owner ? isAlive(owner) : true;
        })
        .map((name) => name.slice(0, -'.lock'.length)),
    );
    for (const name of readdirSync(stageDir)) {
      const path = join(stageDir, name);
      let doomed = false;
      if (name.endsWith('.lock')) doomed = !heldKeys.has(name.slice(0, -'.lock'.length));
      else if (name.startsWith('.partial-')) doomed = !heldKeys.has(name.slice('.partial-'.length));
      else if (!name.startsWith('.')) doomed = !live.has(`${stage}/${name}`) && !heldKeys.has(name);
      if (!doomed) continue;
      removed.push({ path, bytes: sizeOf(path) });
      if (!dryRun) rmSync(path, { recursive: true, force: true });
    }
  }
  return removed;
}

function sizeOf(path: string): number {
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.size;
  return readdirSync(path).reduce((sum, name) => sum + sizeOf(join(path, name)), 0);
}
