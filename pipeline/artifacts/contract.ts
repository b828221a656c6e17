import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hashValue } from '../hash.js';
import type { FileEntry, Manifest } from './store.js';

/**
 * What a stage reads from an upstream artifact is a port: a named, typed view ("texts", "token
 * ids", "vectors", "a classifier") that the artifact's contract (`pipeline/<stage>/artifact.ts`)
 * opens into the value the reading stage uses. A stage never sees file names.
 *
 * Each view has a digest of exactly what it opens, recorded in the manifest when the artifact is
 * published. A reading stage's key hashes those digests, not the upstream key: a new validation
 * split changes ingest's `splits` and not its `texts`, so tokenize and embed stay up to date
 * (early cutoff, as build systems call it).
 */
export interface Port<T> {
  readonly name: string;
  /** Phantom: the type `open` yields. */
  readonly __type?: () => T;
}

export const port = <T>(name: string): Port<T> => ({ name });

/** What a manifest holds when its views are digested: the files and the stage's details. */
export type ManifestDraft = Pick<Manifest, 'files' | 'details'>;

export interface View<T> {
  port: Port<T>;
  /** The artifact's files `open` reads (a name ending in `/` means every file under it): checked against the manifest before opening. */
  files: readonly string[];
  /** The digest of what `open` yields. Default: the sha256 of `files`, as the manifest records them. */
  digest?(dir: string, draft: ManifestDraft): Promise<string> | string;
  open(dir: string, manifest: Manifest): Promise<T> | T;
}

/** A view as a contract holds it: with where its code is, for the key of a stage that reads it. */
export interface BoundView<T> extends View<T> {
  /** `module.js#export` of the view's declaration, relative to dist/. */
  code: string;
}

export interface Contract {
  stage: string;
  views: BoundView<unknown>[];
}

/**
 * The contract of a stage's artifact: its views, each declared as an export of `moduleUrl` (pass
 * `import.meta.url`) and named here as that export, so a reading stage's key covers the code of
 * the views it opens and no other.
 */
export function contract(stage: string, moduleUrl: string, views: Record<string, View<any>>): Contract {
  const dist = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const module = relative(dist, fileURLToPath(moduleUrl));
  return { stage, views: Object.entries(views).map(([name, view]) => ({ ...view, code: `${module}#${name}` })) };
}

/** The files of `names` as the manifest lists them (`model/` is every file under model/). */
export function filesOf(files: Record<string, FileEntry>, names: readonly string[]): Record<string, FileEntry> {
  return Object.fromEntries(Object.entries(files).filter(([file]) => names.some((name) => (name.endsWith('/') ? file.startsWith(name) : file === name))));
}

/** The digest of every view of a contract, for the manifest (`ports`). */
export async function digestViews(contract: Contract, dir: string, draft: ManifestDraft): Promise<Record<string, string>> {
  const digests: Record<string, string> = {};
  for (const view of contract.views) {
    digests[view.port.name] = view.digest ? await view.digest(dir, draft) : hashValue(Object.entries(filesOf(draft.files, view.files)).map(([file, entry]) => [file, entry.sha256])).slice(0, 32);
  }
  return digests;
}

export const viewOf = <T>(contract: Contract, port: Port<T>): BoundView<T> | undefined => contract.views.find((v) => v.port.name === port.name) as BoundView<T> | undefined;
