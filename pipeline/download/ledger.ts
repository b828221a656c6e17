import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { sha256, sha256File } from '../hash.js';
import { writeFileAtomically } from '../files.js';
import { cacheRoot } from './index.js';

/**
 * What the pipeline derives into the cache (an encoder cut from a fill-mask export, its int8 and
 * float16 conversions, an extracted archive) is recorded in a ledger outside the folder it made:
 * each file's size and sha256, under `$PIPELINE_CACHE/ledger/`, keyed by the folder (itself named
 * by the source's sha256 and the deriver's version). A file swapped, truncated or added in the
 * folder, even with a listing rewritten beside it, no longer matches, and the folder is made again.
 */
type Listing = Record<string, { bytes: number; sha256: string }>;

const ledgerPath = (dir: string) => join(cacheRoot(), 'ledger', `${sha256(relative(cacheRoot(), dir)).slice(0, 32)}.json`);

async function listFiles(root: string, dir = root, out: Listing = {}): Promise<Listing> {
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await listFiles(root, path, out);
    else out[relative(root, path)] = { bytes: statSync(path).size, sha256: await sha256File(path) };
  }
  return out;
}

/** Records a folder the pipeline has just made, whole. */
export async function recordFolder(dir: string): Promise<void> {
  mkdirSync(join(cacheRoot(), 'ledger'), { recursive: true });
  writeFileAtomically(ledgerPath(dir), JSON.stringify({ folder: relative(cacheRoot(), dir), files: await listFiles(dir) }));
}

/** What is wrong with a recorded folder (missing from the ledger, a file changed, missing or added), or nothing. */
export async function checkFolder(dir: string): Promise<string | undefined> {
  const path = ledgerPath(dir);
  if (!existsSync(path)) return 'it is not in the ledger of what the pipeline made';
  let expected: Listing;
  try {
    expected = (JSON.parse(readFileSync(path, 'utf8')) as { files: Listing }).files;
  } catch {
    return 'its ledger entry is damaged';
  }
  const actual = await listFiles(dir);
  for (const [file, entry] of Object.entries(expected)) {
    if (!actual[file]) return `${file} is missing`;
    if (actual[file].bytes !== entry.bytes) return `${file} has ${actual[file].bytes} bytes, ${entry.bytes} when it was made`;
    if (actual[file].sha256 !== entry.sha256) return `${file} does not match its sha256 from when it was made`;
  }
  const extra = Object.keys(actual).find((file) => !expected[file]);
  return extra ? `${extra} was added` : undefined;
}

/** The sha256 the ledger holds for one file of a recorded folder. */
export function recordedSha256(dir: string, file: string): string | undefined {
  try {
    return (JSON.parse(readFileSync(ledgerPath(dir), 'utf8')) as { files: Listing }).files[file]?.sha256;
  } catch {
    return undefined;
  }
}

/** Removes a folder that failed its check, and its ledger entry, so that it is made again. */
export function forgetFolder(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  rmSync(ledgerPath(dir), { force: true });
}
