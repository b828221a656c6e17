import { existsSync, mkdirSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import YAML from 'yaml';
import type { ArtifactStore } from './store.js';

/**
 * `artifacts/runs/<run>/` is what a person opens: one link per stage to the artifact that the
 * run's config used last (`ingest -> ../../ingest/<key>`), and the resolved config.
 */
export function runDir(store: ArtifactStore, run: string): string {
  return join(store.root, 'runs', run);
}

export function recordRun(store: ArtifactStore, run: string, stage: string, key: string, resolvedConfig: unknown): void {
  const dir = runDir(store, run);
  mkdirSync(dir, { recursive: true });
  // Link and config are replaced by rename so that parallel stages (make -j2) never see half a file.
  const tmp = join(dir, `.${stage}.${process.pid}.tmp`);
  rmSync(tmp, { force: true });
  symlinkSync(join('..', '..', stage, key), tmp);
  renameSync(tmp, join(dir, stage));
  const configTmp = join(dir, `.config.${process.pid}.tmp`);
  writeFileSync(configTmp, YAML.stringify(resolvedConfig));
  renameSync(configTmp, join(dir, 'config.yaml'));
}

/** Stage -> key that the run points at. */
export function runPointers(store: ArtifactStore, run: string): Record<string, string> {
  const dir = runDir(store, run);
  const pointers: Record<string, string> = {};
  if (!existsSync(dir)) return pointers;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.isSymbolicLink()) pointers[entry.name] = basename(readlinkSync(join(dir, entry.name)));
  }
  return pointers;
}

export function listRuns(store: ArtifactStore): string[] {
  const dir = join(store.root, 'runs');
  return existsSync(dir) ? readdirSync(dir).filter((name) => !name.startsWith('.')) : [];
}
