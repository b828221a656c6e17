/**
 * ingest: data files -> train.parquet, test.parquet, labels.json, rejects.jsonl
 *
 *   parse arguments           -> config + --set overrides, validated
 *   find the source           -> local file or folder, archive, or https URL (checked, cached)
 *   read and validate rows    -> malformed rows to rejects.jsonl, too many is an error
 *   split                     -> official test split; seeded, stratified validation split from train
 *   publish                   -> artifacts/ingest/<key>/ with a manifest, linked from the run
 */
import { runMain } from '../pipeline/errors.js';
import { parseStageArgs } from '../pipeline/cli.js';
import { runStage } from '../pipeline/runner.js';

runMain(async () => {
  const args = await parseStageArgs('ingest', 'Read, validate and split the movie data set.');
  // The work is imported only when there is work to do, so an up-to-date check stays fast.
  await runStage('ingest', args);
});
