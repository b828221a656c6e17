/**
 * gc: removes the stage artifacts that no run points to and no running build uses, and debris of
 * interrupted builds (partial folders, locks and leases of processes that are gone). Sweeps,
 * benchmarks and embed slices waiting for a merge are left alone.
 */
import { resolve } from 'node:path';
import { runMain } from '../pipeline/errors.js';
import { parseArgs } from '../pipeline/cli.js';
import { formatBytes, info } from '../pipeline/log.js';
import { ArtifactStore } from '../pipeline/artifacts/store.js';
import { collectGarbage } from '../pipeline/artifacts/gc.js';
import { STAGES } from '../pipeline/dag.js';
import { cacheDebris } from '../pipeline/download/index.js';

runMain(async () => {
  const args = await parseArgs('gc', 'Remove artifacts that no run points to.', (y) =>
    y.option('dry-run', { type: 'boolean', default: false, describe: 'list what would be removed' }),
  );
  const removed = collectGarbage(new ArtifactStore(resolve(args.artifacts)), args['dry-run'], STAGES.map((s) => s.name));
  // And what killed downloads and extractions left in $PIPELINE_CACHE.
  removed.push(...cacheDebris(args['dry-run']));
  for (const r of removed) info(`${args['dry-run'] ? 'would remove' : 'removed'} ${r.path} (${formatBytes(r.bytes)})`);
  info(`gc: ${removed.length} ${args['dry-run'] ? 'to remove' : 'removed'}, ${formatBytes(removed.reduce((a, r) => a + r.bytes, 0))}`);
});
