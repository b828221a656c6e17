/**
 * run: builds a target stage and everything it needs, in order, each stage as its own program
 * (`dist/stages/<stage>.js`), as `make <stage>` and `make all` do.
 *
 *   plan the pipeline           -> the stages the target needs (the config decides: TF-IDF needs
 *                                  no tokenize), each keyed as far as the built artifacts allow
 *   nothing to build            -> point the run at the artifacts and stop: one process, no model loaded
 *   otherwise, the first stage  -> run its program; plan again (a rebuilt stage that wrote what it
 *   not built                     wrote before leaves the next stages up to date); repeat
 */
import { spawnSync } from 'node:child_process';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runMain, UserError } from '../pipeline/errors.js';
import { parseArgs } from '../pipeline/cli.js';
import { info } from '../pipeline/log.js';
import { notPlannable, openPipeline, planKeys } from '../pipeline/runner.js';
import { recordRun, runDir } from '../pipeline/artifacts/runs.js';
import { leaseKeys, takeLease } from '../pipeline/artifacts/lease.js';
import { STAGES } from '../pipeline/dag.js';

const program = (stage: string) => fileURLToPath(new URL(`../stages/${stage}.js`, import.meta.url));

runMain(async () => {
  const args = await parseArgs('run', 'Build a stage and everything it needs.', (y) =>
    y
      .option('target', { type: 'string', default: STAGES[STAGES.length - 1]!.name, choices: STAGES.map((s) => s.name), describe: 'the stage to build' })
      .option('force', { type: 'string', array: true, default: [] as string[], describe: 'rebuild these stages even when their artifacts are published (make FORCE="embed train")' }),
  );
  const force = new Set(args.force.flatMap((s) => s.split(/\s+/)).filter(Boolean));
  for (const stage of force) if (!STAGES.some((s) => s.name === stage)) throw new UserError(`FORCE=${stage}: no such stage (stages: ${STAGES.map((s) => s.name).join(', ')})`);
  const common = ['--config', args.config, '--artifacts', args.artifacts, ...args.set.flatMap((s) => ['--set', s])];
  const built: string[] = [];
  let releaseLease = () => {};
  for (;;) {
    const { loaded, store, plan } = await openPipeline(args);
    if (plan.blocked && !plan.stages.size) throw new UserError(plan.blocked.reason);
    // What the run will read and write is kept from `make gc` while this runs.
    releaseLease();
    releaseLease = takeLease(store, leaseKeys(plan));
    const needed = plan.needed.slice(0, plan.needed.indexOf(args.target) + 1);
    const next = needed.find((stage) => {
      const planned = plan.stages.get(stage);
      return !planned || !store.readManifest(stage, planned.key) || (force.has(stage) && !built.includes(stage));
    });
    if (!next) {
      recordRun(store, loaded.config.run, planKeys(plan), loaded.config, loaded.path, plan.needed);
      releaseLease();
      if (!built.length) info(`all stages up to date for ${args.config}${args.target === 'report' ? `; report: ${relative(process.cwd(), join(runDir(store, loaded.config.run), 'report', 'report.html'))}` : ` (through ${args.target})`}`);
      return;
    }
    // A stage that cannot be keyed although all it reads is built: the config is the problem.
    if (!plan.stages.has(next) && !plan.waiting.find((w) => w.stage === next)?.on) throw notPlannable(plan, next, loaded);
    if (built.includes(next) && !force.has(next)) throw new Error(`${next} was built but its artifact is not where the plan looks for it`);
    const result = spawnSync(process.execPath, [program(next), ...common, ...(force.has(next) ? ['--force'] : [])], { stdio: 'inherit' });
    if (result.status !== 0) {
      releaseLease();
      process.exit(result.status ?? 1);
    }
    built.push(next);
  }
});
