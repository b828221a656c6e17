/**
 * tokenize: ingest's descriptions -> WordPiece ids (Arrow IPC), row-aligned with ingest
 *
 *   parse arguments          -> config + overrides
 *   open the model folder    -> tokenizer.json (local, or a pinned hub download)
 *   tokenize                 -> [CLS] ... [SEP], cut at tokenize.max_length, on every core
 *   publish                  -> train.arrow, test.arrow, stats.json (length percentiles, truncation)
 */
import { runMain } from '../pipeline/errors.js';
import { parseStageArgs } from '../pipeline/cli.js';
import { runStage } from '../pipeline/runner.js';

runMain(async () => {
  const args = await parseStageArgs('tokenize', 'Tokenize descriptions with the model\'s WordPiece tokenizer.');
  await runStage('tokenize', args);
});
