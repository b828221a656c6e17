/**
 * report: every upstream artifact -> one self-contained report.html and a summary.md
 *
 *   parse arguments       -> config + overrides (report.* never changes an upstream key)
 *   read the artifacts    -> metrics, predictions, history, token lengths, manifests
 *   chart                 -> Vega-Lite specs rendered to SVG in Node (no script in the page)
 *   gallery               -> a seeded sample of test movies and the most confident mistakes,
 *                            with posters when report.images has them, drawn tiles otherwise
 *   publish               -> report.html (inline CSS, SVG and images; opens from disk),
 *                            summary.md (for CI job summaries)
 */
import { join, relative } from 'node:path';
import { runMain } from '../pipeline/errors.js';
import { parseStageArgs } from '../pipeline/cli.js';
import { runStage } from '../pipeline/runner.js';
import { info } from '../pipeline/log.js';
import { runDir } from '../pipeline/artifacts/runs.js';

runMain(async () => {
  const args = await parseStageArgs('report', 'Write report.html and summary.md for the run.');
  const { loaded, store } = await runStage('report', args);
  info(`report: open ${relative(process.cwd(), join(runDir(store, loaded.config.run), 'report', 'report.html')) || '.'}`);
});
