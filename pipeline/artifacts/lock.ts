import { existsSync, openSync, writeSync, closeSync, readFileSync, unlinkSync } from 'node:fs';
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
  /**
   * Which process that pid was: the boot and the process's start time (Linux), so that a pid
   * reused after a restart (a container's pid 1, say) is not mistaken for the owner.
   */
  process?: string;
}

/** This process as a lock or lease owner. */
export function currentOwner(pid = process.pid): LockOwner {
  return { pid, host: hostname(), since: new Date().toISOString(), process: processIdentity(pid) };
}

/** `<boot id>:<start time in clock ticks>` from /proc, or undefined where /proc has no such thing. */
export function processIdentity(pid: number): string | undefined {
  try {
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    // Field 22 of /proc/<pid>/stat, counted after the command name (which may hold spaces).
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    return start ? `${boot}:${start}` : undefined;
  } catch {
    return undefined;
  }
}

export interface Lock {
  release(): void;
}

export async function acquireLock(path: string, what: string): Promise<Lock> {
  let announced = false;
  for (;;) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, JSON.stringify(currentOwner()));
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

/**
 * Only a lock taken on this host can be judged dead; a lock from another host is respected. On
 * this host the owner is dead when its pid is gone, or when the pid now belongs to another
 * process (another boot, or another start time).
 */
export function isAlive(owner: LockOwner): boolean {
  if (owner.host !== hostname()) return true;
  try {
    process.kill(owner.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (owner.process && existsSync('/proc/sys/kernel/random/boot_id')) return processIdentity(owner.pid) === owner.process;
  return true;
}
