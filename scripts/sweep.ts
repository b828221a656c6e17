/**
 * sweep: a sweep file -> every variant trained and scored, and a leaderboard
 *
 *   read the sweep file     -> base config + a grid, a list of variants or seeded random draws
 *   plan every variant      -> a bad value fails that variant only
 *   shared upstream         -> variants that differ only in train.* and later share one ingest,
 *                              tokenize and embed, built (or reused) once, one variant at a time
 *   train, evaluate, report -> up to max_parallel variants side by side; a failure is recorded,
 *                              the others go on
 *   publish                 -> artifacts/sweeps/<name>/leaderboard.{parquet,html,md}, sweep.json,
 *                              logs/<run>.log; exit 1 if any variant failed
 */
import { relative, resolve, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdirSync } from 'node:fs';
import { runMain, UserError } from '../pipeline/errors.js';
import { parseArgs } from '../pipeline/cli.js';
import { info } from '../pipeline/log.js';
import { ArtifactStore } from '../pipeline/artifacts/store.js';
import { acquireLock } from '../pipeline/artifacts/lock.js';
import { loadSweep } from '../pipeline/sweep/file.js';

runMain(async () => {
  const args = await parseArgs('sweep', 'Run every variant of a sweep file and rank them.', (y) =>
    y
      .command('$0 <sweep>', 'Run every variant of a sweep file and rank them: sweep configs/sweeps/mlp.yaml', (c) => c.positional('sweep', { type: 'string', describe: 'the sweep file' }))
      .option('max-parallel', { type: 'number', describe: 'variants side by side (default: the file\'s max_parallel)' })
      .option('base', { type: 'string', describe: 'run the variants on this config instead of the file\'s base (runs named <sweep>-<config>)' }),
  );
  const sweep = loadSweep((args as typeof args & { sweep: string }).sweep, args.base);
  if (args['max-parallel'] !== undefined) sweep.maxParallel = Math.max(1, Math.floor(args['max-parallel']));
  if (args.set.length) throw new UserError('sweep: --set does not apply to a sweep; put fixed values in its base config or in every variant');
  const store = new ArtifactStore(resolve(args.artifacts));
  info(`sweep: ${sweep.name}: ${sweep.variants.length} variants of ${sweep.basePath}, ${sweep.maxParallel} at a time, ranked by ${sweep.metric}`);
  const { runSweep } = await import('../pipeline/sweep/run.js');
  const { writeLeaderboard } = await import('../pipeline/sweep/leaderboard.js');
  // A second run of the same sweep waits for the first, then finds its variants built.
  mkdirSync(join(store.root, 'sweeps'), { recursive: true });
  const lock = await acquireLock(join(store.root, 'sweeps', `${sweep.name}.lock`), `sweep ${sweep.name}`);
  let outcome, dir, rows;
  try {
    outcome = await runSweep(sweep, store, args.artifacts, (stage) => fileURLToPath(new URL(`../stages/${stage}.js`, import.meta.url)));
    ({ dir, rows } = await writeLeaderboard(sweep, outcome, store));
  } finally {
    lock.release();
  }
  const failed = rows.filter((r) => r.status !== 'ok');
  for (const r of rows) info(`  ${String(r.rank ?? '–').padStart(2)}  ${r.run.padEnd(16)} ${r.value === null ? 'failed'.padEnd(6) : r.value.toFixed(4)}  ${r.changes}`);
  info(`sweep: built ${Object.entries(outcome.builds).map(([s, n]) => `${s} x${n}`).join(', ') || 'nothing (all reused)'} in ${outcome.seconds.toFixed(1)}s`);
  info(`sweep: leaderboard -> ${relative(process.cwd(), join(dir, 'leaderboard.html'))}`);
  if (failed.length) throw new UserError(`sweep: ${failed.length} of ${rows.length} variants failed (${failed.map((r) => r.run).join(', ')}); their logs are in ${relative(process.cwd(), join(dir, 'logs'))}`);
});
