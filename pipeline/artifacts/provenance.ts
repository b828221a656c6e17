import { spawnSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Which code built an artifact, as git knows it: the commit of the checkout the program runs
 * from, and whether its tree had uncommitted changes. Outside a git checkout (an installed copy,
 * a container image without .git) it says so rather than guessing.
 */
export interface CodeProvenance {
  git_commit: string;
  git_dirty: string;
}

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
let cached: CodeProvenance | undefined;

export function codeProvenance(): CodeProvenance {
  if (cached) return cached;
  const git = (...args: string[]) => spawnSync('git', ['-C', REPO, ...args], { encoding: 'utf8', timeout: 5000 });
  const head = git('rev-parse', 'HEAD');
  if (head.status !== 0) {
    cached = { git_commit: 'not a git checkout', git_dirty: 'unknown' };
  } else {
    const status = git('status', '--porcelain', '--untracked-files=no');
    cached = { git_commit: head.stdout.trim(), git_dirty: status.status !== 0 ? 'unknown' : status.stdout.trim() ? 'yes (uncommitted changes)' : 'no' };
  }
  return cached;
}
