import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { sha256File } from '../hash.js';
import { writeFileAtomically, type ArtifactStore } from './store.js';

interface Entry {
  size: number;
  mtimeMs: number;
  /** The inode's change time: `touch -d` can restore an mtime after an edit, not this. */
  ctimeMs?: number;
  ino?: number;
  sha256: string;
}

/**
 * The content hash of a source file, remembered by (path, size, mtime, ctime, inode) so that a
 * no-op `make all` does not re-read a large data set to find out that nothing changed.
 */
export async function fingerprintFile(store: ArtifactStore, path: string): Promise<string> {
  const absolute = resolve(path);
  const stat = statSync(absolute);
  const cachePath = join(store.cacheDir('fingerprints'), 'files.json');
  const cache: Record<string, Entry> = existsSync(cachePath) ? safeParse(readFileSync(cachePath, 'utf8')) : {};
  const hit = cache[absolute];
  if (hit && hit.size === stat.size && hit.mtimeMs === stat.mtimeMs && hit.ctimeMs === stat.ctimeMs && hit.ino === stat.ino) return hit.sha256;
  const sha256 = await sha256File(absolute);
  // Re-read before writing: a parallel stage may have added its own entries meanwhile.
  const latest: Record<string, Entry> = existsSync(cachePath) ? safeParse(readFileSync(cachePath, 'utf8')) : {};
  latest[absolute] = { size: stat.size, mtimeMs: stat.mtimeMs, ctimeMs: stat.ctimeMs, ino: stat.ino, sha256 };
  writeFileAtomically(cachePath, JSON.stringify(latest));
  return sha256;
}

function safeParse(text: string): Record<string, Entry> {
  try {
    return JSON.parse(text) as Record<string, Entry>;
  } catch {
    return {};
  }
}
