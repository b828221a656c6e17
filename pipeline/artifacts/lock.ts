import { openSync, writeSync, closeSync, readFileSync, unlinkSync } from 'node:fs';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { info } from '../log.js';

/**
 * An exclusive lock on one artifact key: a file created with O_EXCL that records its owner.
 * Written here rather than taken from a library because the owner check matters: a process
 * killed with SIGKILL leaves its lock behind, and the next run must take it over at once
 * (its pid is gone) instead of waiting for a staleness timeout.
 */
export interface LockOwner {
  pid: number;
  host: string;
  since: string;
}

export interface Lock {
  release(): void;
}

export async function acquireLock(path: string, what: string): Promise<Lock> {
  let announced = false;
  for (;;) {
    try {
      const fd = openSync(path, 'wx');
      const owner: LockOwner = { pid: process.pid, host: hostname(), since: new Date().toISOString() };
      writeSync(fd, JSON.stringify(owner));
      closeSync(fd);
      return {
        release() {
          try {
            unlinkSync(path);
          } catch {
            // Already gone (e.g. removed by `make gc` as stale): nothing to release.
          }
        },
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const owner = readOwner(path);
    if (owner && !isAlive(owner)) {
      info(`${what}: taking over the lock of pid ${owner.pid}, which no longer runs`);
      try {
        unlinkSync(path);
      } catch {
        // Another waiter took it over first; loop and compete again.
      }
      continue;
    }
    if (!announced) {
      info(`${what}: waiting for pid ${owner?.pid ?? '?'}, which is building the same artifact`);
      announced = true;
    }
    await sleep(200);
  }
}

export function readOwner(path: string): LockOwner | undefined {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as LockOwner;
  } catch {
    // Being written right now, or just removed.
    return undefined;
  }
}

/** Only a lock taken on this host can be judged dead; a lock from another host is respected. */
export function isAlive(owner: LockOwner): boolean {
  if (owner.host !== hostname()) return true;
  try {
    process.kill(owner.pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
