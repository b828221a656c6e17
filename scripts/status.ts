/**
 * status: per stage, its key, whether it is built, and what would rerun and why
 * (a changed param, input content, source file or code), as `dvc status` does.
 */
import { runMain } from '../pipeline/errors.js';
import { parseArgs } from '../pipeline/cli.js';
import { openPipeline } from '../pipeline/runner.js';
import { allUpToDate, explainStatus } from '../pipeline/artifacts/status.js';
import { runPointers } from '../pipeline/artifacts/runs.js';
import { STAGES } from '../pipeline/dag.js';

runMain(async () => {
  const args = await parseArgs('status', 'Show which stages are built and why others would rerun.', (y) =>
    y
      .option('json', { type: 'boolean', default: false, describe: 'print JSON' })
      .option('check', { type: 'boolean', default: false, describe: 'print nothing; exit 0 when nothing would run, 3 otherwise' }),
  );
  const { loaded, store, plan } = await openPipeline(args);
  const pointers = runPointers(store, loaded.config.run);
  const statuses = explainStatus(plan, store, pointers);
  if (args.check) {
    process.exitCode = !plan.blocked && allUpToDate(statuses, pointers) ? 0 : 3;
    return;
  }
  if (args.json) {
    process.stdout.write(`${JSON.stringify({ run: loaded.config.run, stages: statuses, blocked: plan.blocked }, null, 2)}\n`);
    return;
  }
  const lines = [`run ${loaded.config.run} (${args.config})`];
  for (const s of statuses) {
    if (s.state === 'cannot be planned') {
      lines.push(`  ${s.stage.padEnd(10)} cannot be planned: ${s.reasons.join('; ')}`);
      continue;
    }
    lines.push(`  ${s.stage.padEnd(10)} ${(s.key ?? '(not keyed)').padEnd(16)}  ${s.state}`);
    for (const reason of s.reasons) lines.push(`      ${reason}`);
  }
  for (const spec of STAGES.filter((s) => !plan.needed.includes(s.name))) lines.push(`  ${spec.name.padEnd(10)} ${''.padEnd(16)}  not used by this config (nothing after it reads its artifact)`);
  process.stdout.write(`${lines.join('\n')}\n`);
});
