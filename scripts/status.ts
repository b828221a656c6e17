/**
 * status: per stage, its key, whether it is built, and what would rerun and why
 * (a changed param, input, source file or stage version), as `dvc status` does.
 */
import { runMain } from '../pipeline/errors.js';
import { parseArgs } from '../pipeline/cli.js';
import { join, relative, resolve } from 'node:path';
import { info } from '../pipeline/log.js';
import { loadConfig } from '../pipeline/config/index.js';
import { ArtifactStore } from '../pipeline/artifacts/store.js';
import { planAvailable } from '../pipeline/artifacts/plan.js';
import { allUpToDate, explainStatus } from '../pipeline/artifacts/status.js';
import { runDir, runPointers } from '../pipeline/artifacts/runs.js';
import { STAGES } from '../pipeline/dag.js';
import { leaseKeys, takeLease } from '../pipeline/artifacts/lease.js';

runMain(async () => {
  const args = await parseArgs('status', 'Show which stages are built and why others would rerun.', (y) =>
    y
      .option('json', { type: 'boolean', default: false, describe: 'print JSON' })
      .option('check', { type: 'boolean', default: false, describe: 'exit 0 when nothing would run (printing where the report is), 3 otherwise (printing nothing)' })
      .option('lease-for', { type: 'number', describe: 'with --check, when something would run: keep the plan\'s artifacts from `make gc` while this pid lives (make all passes its shell)' }),
  );
  const loaded = loadConfig(args.config, args.set);
  const store = new ArtifactStore(resolve(args.artifacts));
  const { plan, blocked } = await planAvailable(STAGES, loaded, store);
  const pointers = runPointers(store, loaded.config.run);
  const statuses = explainStatus(plan, store, pointers);
  if (args.check) {
    process.exitCode = !blocked && allUpToDate(statuses, pointers) ? 0 : 3;
    if (process.exitCode === 3 && args['lease-for']) takeLease(store, leaseKeys(plan), args['lease-for']);
    if (process.exitCode === 0) info(`all stages up to date for ${args.config}; report: ${relative(process.cwd(), join(runDir(store, loaded.config.run), 'report', 'report.html'))}`);
    return;
  }
  if (args.json) {
    process.stdout.write(`${JSON.stringify({ run: loaded.config.run, stages: statuses, blocked }, null, 2)}\n`);
    return;
  }
  const lines = [`run ${loaded.config.run} (${args.config})`];
  for (const s of statuses) {
    lines.push(`  ${s.stage.padEnd(10)} ${s.key}  ${s.built ? 'built' : 'would run'}`);
    for (const reason of s.reasons) lines.push(`      ${reason}`);
  }
  if (blocked) lines.push(`  ${blocked.stage.padEnd(10)} cannot be planned: ${blocked.reason}`);
  process.stdout.write(`${lines.join('\n')}\n`);
});
