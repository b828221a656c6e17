import { closeSync, existsSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { info } from '../log.js';
import { heartbeat, STALE_AFTER_MS } from './heartbeat.js';
import { pidRuns } from '../processes.js';

/**
 * An exclusive lock on one artifact key: a file created with O_EXCL that records its owner.
 * Written here rather than taken from a library because the owner check matters: a process
 * killed with SIGKILL leaves its lock behind, and the next run must take it over at once when
 * it can know the owner is gone (same machine: the pid no longer runs that process), and after
 * STALE_AFTER_MS without a heartbeat when it cannot (another machine, a lock it cannot read).
 */
export interface LockOwner {
  pid: number;
  host: string;
  since: string;
  /** The machine's boot (Linux `boot_id`): the same boot is the same machine, whatever the host name. */
  boot?: string;
  /**
   * Which process that pid was: the boot and the process's start time (Linux), so that a pid
   * reused after a restart (a container's pid 1, say) is not mistaken for the owner.
   */
  process?: string;
}

function bootId(): string | undefined {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** This process as a lock or lease owner. */
export function currentOwner(pid = process.pid): LockOwner {
  return { pid, host: hostname(), since: new Date().toISOString(), boot: bootId(), process: processIdentity(pid) };
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

/** What can be known of a lock or lease file's holder. */
export interface HolderState {
  alive: boolean;
  owner?: LockOwner;
  /** Milliseconds since the holder last refreshed the file. */
  sinceHeartbeat: number;
  /** How the verdict was reached, for messages. */
  why: string;
}

/**
 * Whether the holder of a lock (or lease) file still runs. On the same machine (the same boot)
 * the process itself says so: its pid runs and is the process that took the file. Elsewhere,
 * or for a file that cannot be read (empty after a full disk, half written), the heartbeat does.
 */
export function holderState(path: string, owner: LockOwner | undefined = readOwner(path)): HolderState {
  let sinceHeartbeat: number;
  try {
    sinceHeartbeat = Date.now() - statSync(path).mtimeMs;
  } catch {
    return { alive: false, owner, sinceHeartbeat: Infinity, why: 'gone' };
  }
  const fresh = sinceHeartbeat < STALE_AFTER_MS;
  const byHeartbeat = (what: string) => ({ alive: fresh, owner, sinceHeartbeat, why: `${what}: ${fresh ? 'its heartbeat is recent' : `no heartbeat for ${Math.round(sinceHeartbeat / 1000)}s`}` });
  if (!owner) return byHeartbeat('the lock file cannot be read');
  const boot = bootId();
  const sameMachine = boot !== undefined && (owner.boot ?? owner.process?.split(':')[0]) === boot;
  if (sameMachine) {
    if (!pidRuns(owner.pid)) return { alive: false, owner, sinceHeartbeat, why: `pid ${owner.pid} no longer runs` };
    if (owner.process) {
      const same = processIdentity(owner.pid) === owner.process;
      return { alive: same, owner, sinceHeartbeat, why: same ? `pid ${owner.pid} runs` : `pid ${owner.pid} is now another process` };
    }
    return byHeartbeat(`pid ${owner.pid} runs, but the lock does not say which process it was`);
  }
  if (owner.host === hostname() && boot === undefined && !pidRuns(owner.pid)) return { alive: false, owner, sinceHeartbeat, why: `pid ${owner.pid} no longer runs` };
  return byHeartbeat(`held from ${owner.host}${owner.boot && boot && owner.boot !== boot && owner.host === hostname() ? ' before a restart' : ''}`);
}

export { pidRuns } from '../processes.js';

/** Locks this process holds, removed if it exits without releasing them (Ctrl-C, SIGTERM, process.exit). */
const held = new Set<string>();
process.on('exit', () => {
  for (const path of held) if (ownedByMe(path)) unlinkSafe(path);
});

const ownedByMe = (path: string) => readOwner(path)?.pid === process.pid && readOwner(path)?.process === processIdentity(process.pid);

function unlinkSafe(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone (e.g. removed by `make gc` as stale): nothing to release.
  }
}

/** Creates the lock file, or returns false when it exists; a write that fails (a full disk) leaves no empty lock behind. */
function tryCreate(path: string): boolean {
  let fd: number;
  try {
    fd = openSync(path, 'wx');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    writeSync(fd, JSON.stringify(currentOwner()));
  } catch (error) {
    closeSync(fd);
    unlinkSafe(path);
    throw error;
  }
  closeSync(fd);
  return true;
}

export async function acquireLock(path: string, what: string): Promise<Lock> {
  let announced = '';
  for (;;) {
    if (tryCreate(path)) {
      held.add(path);
      const stopBeat = heartbeat(path);
      return {
        release() {
          stopBeat();
          held.delete(path);
          unlinkSafe(path);
        },
      };
    }
    const state = holderState(path);
    if (!state.alive && existsSync(path)) {
      info(`${what}: taking over the lock of ${describeOwner(state.owner)} (${state.why})`);
      unlinkSafe(path);
      // Another waiter may take it over first; loop and compete again.
      continue;
    }
    const message = `${what}: waiting for ${describeOwner(state.owner)}, which is building the same artifact (${state.why}); if no such build runs, the lock ${path} is taken over after ${STALE_AFTER_MS / 1000}s without a heartbeat, or remove it (\`make gc\` lists stale locks)`;
    if (message.replace(/\d+s/g, '') !== announced.replace(/\d+s/g, '')) {
      info(message);
      announced = message;
    }
    await sleep(200);
  }
}

export function describeOwner(owner: LockOwner | undefined): string {
  return owner ? `pid ${owner.pid} on ${owner.host} (since ${owner.since})` : 'an unknown holder (the lock file cannot be read)';
}

export function readOwner(path: string): LockOwner | undefined {
  try {
    const owner = JSON.parse(readFileSync(path, 'utf8')) as LockOwner;
    return typeof owner?.pid === 'number' && typeof owner.host === 'string' ? owner : undefined;
  } catch {
    // Being written right now, damaged, or just removed.
    return undefined;
  }
}

/** Whether a lock or lease file's holder still runs (see holderState). */
export const isHeld = (path: string) => holderState(path).alive;
