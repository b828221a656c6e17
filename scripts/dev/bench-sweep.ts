/**
 * bench-sweep: a sweep against one variant, with the embed artifact already built.
 *
 *   three stores         -> ingest, tokenize, embed of the sweep's base config built in each
 *   one variant          -> train + evaluate of the base config, as make runs them (store A)
 *   each variant alone   -> train + evaluate of every variant, one after another (store C)
 *   the sweep            -> every variant of --sweep, as `make sweep` runs it (store B)
 *
 * Prints and writes artifacts/bench/sweep.json: both wall times, their ratio, and how many times
 * each stage was built during the sweep (upstream must be 0).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { writeBenchResults } from './bench-data.js';
import { runMain, UserError } from '../../pipeline/errors.js';
import { parseArgs } from '../../pipeline/cli.js';
import { info } from '../../pipeline/log.js';
import { loadSweep, overrideArgs } from '../../pipeline/sweep/file.js';

runMain(async () => {
  const args = await parseArgs('bench-sweep', 'Benchmark a sweep against one train + evaluate.', (y) =>
    y.option('sweep', { type: 'string', default: 'configs/sweeps/mlp.yaml', describe: 'the sweep file' }),
  );
  const sweep = loadSweep(args.sweep);
  const work = mkdtempSync(join(tmpdir(), 'bench-sweep-'));
  const run = (program: string, argv: string[]) => {
    const t0 = performance.now();
    const result = spawnSync(process.execPath, [resolve(`dist/${program}.js`), ...argv], { encoding: 'utf8', env: { ...process.env, CI: '1' } });
    if (result.status !== 0) throw new UserError(`bench-sweep: ${program} failed:\n${result.stderr}`);
    return (performance.now() - t0) / 1000;
  };
  try {
    const stores = { single: join(work, 'single'), sweep: join(work, 'sweep'), each: join(work, 'each') };
    for (const store of Object.values(stores)) {
      for (const stage of ['ingest', 'tokenize', 'embed']) run(`stages/${stage}`, ['--config', sweep.basePath, '--artifacts', store]);
    }
    info('bench-sweep: upstream built in both stores; one variant (the base config): train + evaluate');
    const single = ['train', 'evaluate'].reduce((seconds, stage) => seconds + run(`stages/${stage}`, ['--config', sweep.basePath, '--artifacts', stores.single]), 0);
    // Each variant alone, one after another: what the sweep would cost without running side by side.
    const each = sweep.variants.map((v) =>
      ['train', 'evaluate'].reduce((seconds, stage) => seconds + run(`stages/${stage}`, ['--config', sweep.basePath, '--artifacts', stores.each, ...overrideArgs(v.overrides)]), 0),
    );
    const sequential = each.reduce((a, b) => a + b, 0);
    info(`bench-sweep: one variant ${single.toFixed(1)}s; each alone ${each.map((s) => s.toFixed(1)).join(', ')}s (${sequential.toFixed(1)}s in a row); now the sweep, ${sweep.maxParallel} at a time`);
    const whole = run('scripts/sweep', [args.sweep, '--artifacts', stores.sweep]);
    const summary = JSON.parse(readFileSync(join(stores.sweep, 'sweeps', sweep.name, 'sweep.json'), 'utf8'));
    const results = {
      sweep: args.sweep,
      variants: sweep.variants.length,
      max_parallel: sweep.maxParallel,
      report_per_variant: sweep.report,
      one_variant_train_evaluate_seconds: round(single),
      sweep_seconds: round(whole),
      ratio: round(whole / single),
      each_variant_alone_seconds: each.map(round),
      ratio_to_mean_variant: round(whole / (sequential / each.length)),
      speedup_over_one_at_a_time: round(sequential / whole),
      builds: summary.builds,
      variant_seconds: Object.fromEntries(summary.variants.map((v: { run: string; seconds: number }) => [v.run, round(v.seconds)])),
    };
    info(
      `bench-sweep: ${sweep.variants.length} variants in ${whole.toFixed(1)}s = ${results.ratio}x the base variant's train + evaluate (${single.toFixed(1)}s), ` +
        `${results.ratio_to_mean_variant}x the mean variant's, ${results.speedup_over_one_at_a_time}x faster than one at a time; built ${JSON.stringify(summary.builds)}`,
    );
    writeBenchResults(args.artifacts, 'sweep', results);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

const round = (x: number) => Math.round(x * 100) / 100;
