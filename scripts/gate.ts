/**
 * gate: the current run's metrics against a committed baseline; exit 1 on a regression
 *
 *   find the run            -> the evaluate artifact that --config builds (it must be built)
 *   read the baseline       -> configs/baselines/<config name>.yaml: split, metric -> value, tolerance
 *   compare                 -> a table; a metric worse than value - tolerance is a REGRESSION
 *   --update                -> write the run's figures as the new baseline (keeping tolerances)
 */
import { basename, dirname, extname, join, resolve } from 'node:path';
import { existsSync, mkdirSync } from 'node:fs';
import { runMain, UserError } from '../pipeline/errors.js';
import { parseArgs } from '../pipeline/cli.js';
import { info } from '../pipeline/log.js';
import { loadConfig, makeCommand } from '../pipeline/config/index.js';
import { ArtifactStore } from '../pipeline/artifacts/store.js';
import { checkGate, currentMetrics, formatGate, readBaseline, writeBaseline } from '../pipeline/compare/index.js';

runMain(async () => {
  const args = await parseArgs('gate', 'Compare the run\'s metrics with a committed baseline; exit 1 on a regression.', (y) =>
    y
      .option('baseline', { type: 'string', describe: 'baseline file (default: configs/baselines/<config name>.yaml next to the config)' })
      .option('update', { type: 'boolean', default: false, describe: 'write the run\'s figures as the new baseline' })
      .option('allow-worse', { type: 'boolean', default: false, describe: 'with --update: write it even when a metric gets worse than the committed baseline' }),
  );
  const loaded = loadConfig(args.config, args.set);
  const baselinePath = args.baseline ?? join(dirname(args.config), 'baselines', `${basename(args.config, extname(args.config))}.yaml`);
  const store = new ArtifactStore(resolve(args.artifacts));
  const { key, metrics, intervals } = await currentMetrics(store, loaded);
  if (args.update) {
    mkdirSync(dirname(baselinePath), { recursive: true });
    const baseline = writeBaseline(baselinePath, metrics, args.config, existsSync(baselinePath) ? readBaseline(baselinePath) : undefined, args['allow-worse']);
    info(`gate: wrote ${baselinePath} from evaluate ${key} (${Object.keys(baseline.metrics).join(', ')}); review and commit it`);
    return;
  }
  const baseline = readBaseline(baselinePath, makeCommand('gate-update', loaded));
  const rows = checkGate(baseline, metrics, baselinePath, intervals);
  process.stdout.write(`${formatGate(rows, baseline.split)}\n`);
  const failed = rows.filter((r) => !r.ok);
  if (failed.length) throw new UserError(`gate: ${failed.length} metric(s) regressed against ${baselinePath}: ${failed.map((r) => r.metric).join(', ')} (run: evaluate ${key})`);
  info(`gate: passed, ${rows.length} metrics within tolerance of ${baselinePath} (evaluate ${key})`);
});
