import { existsSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { isHeld, pidRuns } from './lock.js';
import { sizeOf } from '../files.js';
import { listRuns, runPointers } from './runs.js';
import { readLeases } from './lease.js';
import { listRecords } from './records.js';
import type { ArtifactStore } from './store.js';

export interface Removed {
  path: string;
  bytes: number;
}

/**
 * Removes what it can prove unused, and only in the stage folders it owns (`stages`): keys that
 * no run record keeps (but those in `forget`, the records a KEEP= policy drops), no run folder
 * points to and no running build holds a lease on, and partial folders and locks whose
 * builder is gone (a pid that no longer runs, or that now belongs to another process). Sweeps,
 * benchmark output, slices waiting for a merge (`embed-slice`) and anything else in the store
 * are never touched.
 */
export function collectGarbage(store: ArtifactStore, dryRun: boolean, stages: readonly string[], forget: ReadonlySet<string> = new Set(), only?: ReadonlySet<string>): Removed[] {
  const live = new Set<string>();
  for (const run of listRuns(store)) for (const [stage, key] of Object.entries(runPointers(store, run))) live.add(`${stage}/${key}`);
  for (const record of listRecords(store)) if (!forget.has(record.id)) for (const [stage, key] of Object.entries(record.keys)) live.add(`${stage}/${key}`);
  // `only`: what the person was shown and agreed to; anything that turned into debris since waits for the next gc.
  const allowed = (path: string) => !only || only.has(path);
  const leases = readLeases(store);
  for (const key of leases.held) live.add(key);
  const removed: Removed[] = [];
  if (!existsSync(store.root)) return removed;
  for (const path of leases.dead) {
    if (!allowed(path)) continue;
    removed.push({ path, bytes: sizeOf(path) });
    if (!dryRun) rmSync(path, { force: true });
  }
  for (const stage of stages) {
    const stageDir = join(store.root, stage);
    if (!existsSync(stageDir) || !statSync(stageDir).isDirectory()) continue;
    const heldKeys = new Set(
      readdirSync(stageDir)
        .filter((name) => name.endsWith('.lock'))
        .filter((name) => isHeld(join(stageDir, name)))
        .map((name) => name.slice(0, -'.lock'.length)),
    );
    for (const name of readdirSync(stageDir)) {
      const path = join(stageDir, name);
      let doomed = false;
      if (name.endsWith('.lock')) doomed = !heldKeys.has(name.slice(0, -'.lock'.length));
      else if (name.startsWith('.partial-')) doomed = !heldKeys.has(name.slice('.partial-'.length));
      else if (name.startsWith('.replaced-')) doomed = true;
      else if (!name.startsWith('.')) doomed = !live.has(`${stage}/${name}`) && !heldKeys.has(name);
      if (!doomed || !allowed(path)) continue;
      removed.push({ path, bytes: sizeOf(path) });
      if (!dryRun) rmSync(path, { recursive: true, force: true });
    }
  }
  removed.push(...collectVectorCaches(store, dryRun, removed, allowed));
  return removed;
}

/**
 * The vector cache keeps the encoders that a kept embed artifact (or a slice waiting for its
 * merge) was made with, and drops the others whole; half-written segments of processes that are
 * gone go too.
 */
function collectVectorCaches(store: ArtifactStore, dryRun: boolean, removed: Removed[], allowed: (path: string) => boolean): Removed[] {
  const root = join(store.root, '.cache', 'vectors');
  if (!existsSync(root)) return [];
  const gone = new Set(removed.map((r) => r.path));
  const used = new Set<string>();
  for (const stage of ['embed', 'embed-slice']) {
    for (const key of store.listKeys(stage)) {
      if (gone.has(store.keyDir(stage, key))) continue;
      const identity = store.readManifest(stage, key)?.details.vector_cache;
      if (typeof identity === 'string') used.add(identity);
    }
  }
  const out: Removed[] = [];
  for (const encoder of readdirSync(root)) {
    const dir = join(root, encoder);
    if (!used.has(encoder)) {
      if (!allowed(dir)) continue;
      out.push({ path: dir, bytes: sizeOf(dir) });
      if (!dryRun) rmSync(dir, { recursive: true, force: true });
      continue;
    }
    for (const name of readdirSync(dir)) {
      const writer = /^\.(\d+)-[0-9a-f]+\.(keys|f32)$/.exec(name);
      if (!writer || pidRuns(Number(writer[1])) || !allowed(join(dir, name))) continue;
      out.push({ path: join(dir, name), bytes: sizeOf(join(dir, name)) });
      if (!dryRun) rmSync(join(dir, name), { force: true });
    }
  }
  return out;
}

