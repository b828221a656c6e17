import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import { resolveConfigPath, type IngestConfig, type LoadedConfig } from '../config/index.js';
import { DEFAULT_FILES, isRemoteSource } from '../config/schema.js';
import { isKaggleSource, KAGGLE_AUTH_HINT, kaggleDownloadUrl, kaggleHeaders } from './kaggle.js';
import { UserError } from '../errors.js';
import { info } from '../log.js';
import { download, cacheRoot } from '../download/index.js';
import { sha256File } from '../hash.js';
import { fingerprintFile } from '../artifacts/fingerprint.js';
import type { ArtifactStore } from '../artifacts/store.js';

export type Role = 'train' | 'test' | 'test_solution';

/** The data files of one source, found on disk (after download and extraction where needed). */
export interface ResolvedSource {
  files: Partial<Record<Role, string>>;
  /** The folder the files were found in: reject lines name files relative to it. */
  root: string;
  /** Where the files came from, for the manifest and messages. */
  origin: string;
}

/** Where a remote source is downloaded from, with the credentials it needs. */
export function remoteSource(ingest: IngestConfig): { url: string; headers?: () => Record<string, string>; authHint?: string } {
  if (isKaggleSource(ingest.source)) return { url: kaggleDownloadUrl(ingest.source, ingest.download.kaggle_api), headers: kaggleHeaders, authHint: KAGGLE_AUTH_HINT };
  return { url: ingest.source };
}

/**
 * What identifies the source's content, for the ingest key: the pinned checksum of a URL, the
 * hash of a local archive, or the hash of each data file in a folder. Nothing is downloaded.
 */
export async function ingestSources(loaded: LoadedConfig, store: ArtifactStore): Promise<Record<string, string>> {
  const { source, sha256 } = loaded.config.ingest;
  if (isRemoteSource(source)) return { download: sha256! };
  const path = localPath(loaded);
  if (statSync(path).isFile()) {
    const { archiveKind } = await import('./archive.js');
    const hash = await fingerprintFile(store, path);
    return { [archiveKind(path) ? 'archive' : 'train']: hash };
  }
  const files = locateFiles(loaded, path);
  const sources: Record<string, string> = {};
  for (const [role, file] of Object.entries(files)) sources[role] = await fingerprintFile(store, file);
  return sources;
}

/** Downloads and extracts as needed, and returns the data files to read. */
export async function resolveSource(loaded: LoadedConfig): Promise<ResolvedSource> {
  const source = await findSource(loaded);
  const { files, root } = source;
  // Whether the test rows have genres is known once they are read (a CSV test file may carry them): ingest says so then.
  if (!files.test && !files.test_solution) info(`ingest: no test file found under ${root}: the artifact has no test split`);
  return source;
}

async function findSource(loaded: LoadedConfig): Promise<ResolvedSource> {
  const ingest = loaded.config.ingest;
  let path: string;
  if (isRemoteSource(ingest.source)) {
    const { url, headers, authHint } = remoteSource(ingest);
    path = await download(url, {
      sha256: ingest.sha256!,
      headers,
      authHint,
      maxBytes: ingest.download.max_bytes,
      retries: ingest.download.retries,
      timeoutS: ingest.download.timeout_s,
      field: 'ingest.source',
      offlineHint: 'download the file elsewhere and point ingest.source at the local copy',
    });
  } else {
    path = localPath(loaded);
  }
  if (statSync(path).isFile()) {
    // Loaded only here: tar and zip support cost start-up time that a no-op run should not pay.
    const { archiveKind, extractArchive } = await import('./archive.js');
    const kind = archiveKind(path);
    if (!kind) return { files: { train: path }, root: dirname(path), origin: ingest.source };
    const hash = ingest.sha256 ?? (await sha256File(path));
    const folder = await extractArchive(path, kind, join(cacheRoot(), 'extracted', hash), ingest.max_unpacked_bytes);
    return { files: locateFiles(loaded, folder), root: folder, origin: ingest.source };
  }
  return { files: locateFiles(loaded, path), root: path, origin: ingest.source };
}

function localPath(loaded: LoadedConfig): string {
  const path = resolveConfigPath(loaded, loaded.config.ingest.source);
  if (!existsSync(path)) {
    throw new UserError(`ingest.source: no such file or folder: ${path} (relative paths start at the config file's folder, ${loaded.baseDir})`);
  }
  return path;
}

/**
 * Finds each named file in the folder or, as in the Kaggle archive
 * (`Genre Classification Dataset/train_data.txt`), in one of its sub-folders. The train file
 * must exist; test files are optional, and their absence is said.
 */
function locateFiles(loaded: LoadedConfig, root: string): Partial<Record<Role, string>> {
  const names = loaded.config.ingest.files;
  const files: Partial<Record<Role, string>> = {};
  for (const role of ['train', 'test', 'test_solution'] as const) {
    const name = names[role];
    if (!name) continue;
    const found = findFile(root, name);
    if (found.length > 1) {
      throw new UserError(`ingest.files.${role}: "${name}" matches several files under ${root}: ${found.map((f) => relative(root, f)).join(', ')}; name one by its relative path`);
    }
    if (found.length === 1) files[role] = found[0];
    else if (role === 'train') throw new UserError(`ingest.files.train: "${name}" not found under ${root}`);
    // The Kaggle names may be absent (a data set without test genres); a name the user wrote may not.
    else if (name !== DEFAULT_FILES[role]) throw new UserError(`ingest.files.${role}: "${name}" not found under ${root} (set it to null if the data has no such file)`);
  }
  return files;
}

function findFile(root: string, name: string): string[] {
  const direct = join(root, name);
  if (existsSync(direct) && statSync(direct).isFile()) return [direct];
  const matches: string[] = [];
  const walk = (dir: string, depth: number) => {
    if (depth > 4) return;
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name.startsWith('.') || entry.name === '__MACOSX') continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path, depth + 1);
      else if (entry.isFile() && (entry.name === basename(name) && path.endsWith(name))) matches.push(path);
    }
  };
  walk(root, 0);
  return matches;
}
