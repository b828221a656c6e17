/**
 * verify: checks every published artifact in the store against its manifest (each file's size
 * and sha256), and lists what changed after publishing. Exit 1 when anything did.
 *
 *   make verify
 */
import { resolve } from 'node:path';
import { runMain } from '../pipeline/errors.js';
import { parseArgs } from '../pipeline/cli.js';
import { formatBytes, info } from '../pipeline/log.js';
import { ArtifactStore } from '../pipeline/artifacts/store.js';
import { STAGES } from '../pipeline/dag.js';

runMain(async () => {
  const args = await parseArgs('verify', 'Check every published artifact against its manifest.');
  const store = new ArtifactStore(resolve(args.artifacts));
  let checked = 0;
  let bytes = 0;
  const problems: string[] = [];
  for (const stage of [...STAGES.map((s) => s.name), 'embed-slice']) {
    for (const key of store.listKeys(stage)) {
      const problem = await store.check(stage, key);
      checked++;
      bytes += Object.values(store.readManifest(stage, key)!.files).reduce((n, f) => n + f.bytes, 0);
      if (problem) problems.push(`${store.keyDir(stage, key)}: ${problem}`);
    }
  }
  for (const problem of problems) info(`CHANGED  ${problem}`);
  info(`verify: ${checked} artifact(s), ${formatBytes(bytes)}: ${problems.length ? `${problems.length} changed after publishing; rebuild each with \`make <stage> FORCE=<stage>\` (same CONFIG and SET)` : 'all match their manifests'}`);
  if (problems.length) process.exitCode = 1;
});
