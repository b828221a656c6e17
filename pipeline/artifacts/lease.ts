import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { currentOwner, holderState, type LockOwner } from './lock.js';
import { heartbeat } from './heartbeat.js';
import { writeFileAtomically, type ArtifactStore } from './store.js';
import type { Plan } from './plan.js';

/**
 * A lease says "a build is using these artifacts": each stage process takes one on every key
 * its config plans (its inputs, its own, and what comes after), and `make all` takes one for
 * its whole run, so that `make gc` never removes what a running build is about to read, even
 * when another build has re-pointed the run folder meanwhile. A lease ends with its owner;
 * one left by a killed process, or by a machine that no longer refreshes it, is recognised as
 * dead (as a lock is) and removed by gc.
 */
interface LeaseFile {
  owner: LockOwner;
  /** `stage/key` */
  keys: string[];
}

let counter = 0;
const leasesDir = (store: ArtifactStore) => join(store.root, '.leases');

/** The `stage/key` entries of a plan: what a build of it reads and writes. */
export const leaseKeys = (plan: Plan) => [...plan.stages.values()].map((p) => `${p.spec.name}/${p.key}`);

/** Takes a lease on `keys` (`stage/key`) for `ownerPid` (this process by default); returns its release. */
export function takeLease(store: ArtifactStore, keys: string[], ownerPid = process.pid): () => void {
  mkdirSync(leasesDir(store), { recursive: true });
  const owner = currentOwner(ownerPid);
  const path = join(leasesDir(store), `${owner.host}-${ownerPid}-${process.pid}-${counter++}.json`);
  writeFileAtomically(path, JSON.stringify({ owner, keys } satisfies LeaseFile));
  const stopBeat = ownerPid === process.pid ? heartbeat(path) : () => {};
  const release = () => {
    stopBeat();
    rmSync(path, { force: true });
  };
  if (ownerPid === process.pid) process.once('exit', release);
  return release;
}

/** The keys that live leases hold, and the lease files whose owner is gone. */
export function readLeases(store: ArtifactStore): { held: Set<string>; dead: string[] } {
  const held = new Set<string>();
  const dead: string[] = [];
  if (!existsSync(leasesDir(store))) return { held, dead };
  for (const name of readdirSync(leasesDir(store)).filter((n) => n.endsWith('.json'))) {
    const path = join(leasesDir(store), name);
    let lease: LeaseFile | undefined;
    try {
      lease = JSON.parse(readFileSync(path, 'utf8')) as LeaseFile;
    } catch {
      // Leases are written whole (renamed into place): one that cannot be read is damaged, and judged by its age alone.
    }
    const state = holderState(path, lease?.owner);
    if (state.alive) for (const key of lease?.keys ?? []) held.add(key);
    else dead.push(path);
  }
  return { held, dead };
}
