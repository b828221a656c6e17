/**
 * gc: removes the stage artifacts that no run record keeps, no run points to and no running build
 * uses, and debris of interrupted builds (partial folders, locks and leases of processes that are
 * gone). Sweeps, benchmarks and embed slices waiting for a merge are left alone.
 *
 *   list what would go        -> always printed first (--dry-run stops there)
 *   KEEP=5 | KEEP=30d         -> also forget the run records beyond that (the latest of each run stays)
 *   ask                       -> on a terminal, a y/N question; elsewhere nothing is removed without --yes
 */
import { resolve } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { runMain, UserError } from '../pipeline/errors.js';
import { parseArgs } from '../pipeline/cli.js';
import { formatBytes, info } from '../pipeline/log.js';
import { ArtifactStore } from '../pipeline/artifacts/store.js';
import { collectGarbage } from '../pipeline/artifacts/gc.js';
import { listRecords, recordsBeyond, removeRecord } from '../pipeline/artifacts/records.js';
import { STAGES } from '../pipeline/dag.js';
import { cacheDebris } from '../pipeline/download/index.js';

runMain(async () => {
  const args = await parseArgs('gc', 'Remove artifacts that no run record keeps.', (y) =>
    y
      .option('dry-run', { type: 'boolean', default: false, describe: 'list what would be removed, remove nothing (make gc DRY_RUN=1)' })
      .option('yes', { type: 'boolean', default: false, describe: 'remove without asking (make gc YES=1)' })
      .option('keep', { type: 'string', describe: 'also forget older run records: KEEP=5 (records per run) or KEEP=30d (days); the latest of each run stays' }),
  );
  const store = new ArtifactStore(resolve(args.artifacts));
  const stages = STAGES.map((s) => s.name);
  const forget = args.keep !== undefined ? recordsBeyond(listRecords(store), String(args.keep)) : [];
  const forgetIds = new Set(forget.map((r) => r.id));
  const shown = [...collectGarbage(store, true, stages, forgetIds), ...cacheDebris(true)];
  for (const r of forget) info(`${args['dry-run'] ? 'would forget' : 'forget'} run record ${r.id} (${r.name}, ${r.created_at.slice(0, 16).replace('T', ' ')})`);
  for (const r of shown) info(`${args['dry-run'] ? 'would remove' : 'remove'} ${r.path} (${formatBytes(r.bytes)})`);
  const total = formatBytes(shown.reduce((a, r) => a + r.bytes, 0));
  if (!shown.length && !forget.length) return info('gc: nothing to remove (every artifact is kept by a run record, a run or a running build)');
  if (args['dry-run']) return info(`gc: ${shown.length} to remove, ${total}${forget.length ? `, ${forget.length} run record(s) to forget` : ''} (dry run: nothing removed)`);
  if (!args.yes && !(await confirmed(`remove ${shown.length} path(s), ${total}${forget.length ? `, and forget ${forget.length} run record(s)` : ''}? [y/N] `))) {
    throw new UserError(`gc: nothing removed: ${process.stdin.isTTY ? 'not confirmed' : 'no terminal to ask on'}; \`make gc YES=1\` (gc --yes) removes the above, \`make gc DRY_RUN=1\` only lists`);
  }
  for (const r of forget) removeRecord(store, r.id);
  // Only what was shown and agreed to; anything that turned into debris since waits for the next gc.
  const agreed = new Set(shown.map((r) => r.path));
  const removed = [...collectGarbage(store, false, stages, forgetIds, agreed), ...cacheDebris(false, agreed)];
  info(`gc: ${removed.length} removed, ${formatBytes(removed.reduce((a, r) => a + r.bytes, 0))}${forget.length ? `; ${forget.length} run record(s) forgotten` : ''}`);
});

async function confirmed(question: string): Promise<boolean> {
  if (!process.stdin.isTTY) return false;
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } finally {
    rl.close();
  }
}
