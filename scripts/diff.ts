/**
 * diff: two runs side by side, as `dvc params diff` and `dvc metrics diff` show them
 *
 *   read both runs          -> artifacts/runs/<run>/config.yaml and its evaluate metrics
 *   params                  -> the dotted keys whose values differ (--all: every key)
 *   metrics                 -> validation and test figures with the change from A to B
 */
import { resolve } from 'node:path';
import { runMain } from '../pipeline/errors.js';
import { parseArgs } from '../pipeline/cli.js';
import { ArtifactStore } from '../pipeline/artifacts/store.js';
import { diffRuns, formatDiff } from '../pipeline/compare/index.js';

runMain(async () => {
  const args = await parseArgs('diff', 'Compare the params and metrics of two runs.', (y) =>
    y
      .command('$0 <a> <b>', 'Compare the params and metrics of two runs: diff default mlp-02', (c) =>
        c.positional('a', { type: 'string', describe: 'a run under artifacts/runs/' }).positional('b', { type: 'string', describe: 'another run' }),
      )
      .option('all', { type: 'boolean', default: false, describe: 'list every param, not only those that differ' })
      .option('json', { type: 'boolean', default: false, describe: 'print JSON' }),
  );
  const { a, b } = args as typeof args & { a: string; b: string };
  const result = await diffRuns(new ArtifactStore(resolve(args.artifacts)), String(a), String(b), args.all);
  process.stdout.write(args.json ? `${JSON.stringify(result, null, 2)}\n` : formatDiff(result, String(a), String(b)));
});
