/**
 * verify: checks every published artifact in the store against its manifest (each file's size
 * and sha256), and lists what changed after publishing. Exit 1 when anything did.
 *
 *   make verify
 */
import { join, resolve } from 'node:path';
import { runMain } from '../pipeline/errors.js';
import { parseArgs } from '../pipeline/cli.js';
import { formatBytes, info } from '../pipeline/log.js';
import { ArtifactStore, DamagedManifest } from '../pipeline/artifacts/store.js';
import { STAGES } from '../pipeline/dag.js';
import { verifyCacheFolder } from '../pipeline/embed/vector-cache.js';

runMain(async () => {
  const args = await parseArgs('verify', 'Check every published artifact against its manifest.');
  const store = new ArtifactStore(resolve(args.artifacts));
  let checked = 0;
  let bytes = 0;
  const problems: string[] = [];
  for (const stage of [...STAGES.map((s) => s.name), 'embed-slice']) {
    for (const key of store.listKeys(stage)) {
      checked++;
      try {
        const problem = await store.check(stage, key);
        bytes += Object.values(store.readManifest(stage, key)!.files).reduce((n, f) => n + f.bytes, 0);
        if (problem) problems.push(`${store.keyDir(stage, key)}: ${problem}`);
      } catch (error) {
        // A damaged manifest is listed like any other damage, and the check goes on.
        if (!(error instanceof DamagedManifest)) throw error;
        problems.push(`${store.keyDir(stage, key)}: its manifest is damaged (${error.problem}): rebuild it with \`make ${stage} FORCE=${stage}\` or remove the folder`);
      }
    }
  }
  // The vector cache's segments are named by their content: one that no longer matches is removed on its next use and its rows computed again.
  const cache = verifyCacheFolder(join(store.root, '.cache', 'vectors'));
  for (const problem of problems) info(`CHANGED  ${problem}`);
  for (const problem of cache.problems) info(`CHANGED  ${problem}`);
  info(`verify: ${checked} artifact(s), ${formatBytes(bytes)}: ${problems.length ? `${problems.length} changed after publishing; rebuild each with \`make <stage> FORCE=<stage>\` (same CONFIG and SET)` : 'all match their manifests'}`);
  info(`verify: vector cache, ${cache.segments} segment(s), ${formatBytes(cache.bytes)}: ${cache.problems.length ? `${cache.problems.length} damaged; the next embed that reads one removes it and computes its rows again (or \`make gc\`)` : 'all match their checksums'}`);
  if (problems.length || cache.problems.length) process.exitCode = 1;
});
