/**
 * evaluate: the trained classifier -> predictions and metrics on validation and test
 *
 *   parse arguments       -> config + overrides
 *   load the model        -> TF.js layers model and its standardization
 *   predict               -> probabilities for every validation and test row
 *   score                 -> accuracy, top-k, macro/weighted P/R/F1, per class, confusion matrix,
 *                            log loss, ECE, majority baseline (scikit-learn conventions)
 *   publish               -> predictions.parquet, metrics.json (submission.txt when the test
 *                            split has no genres)
 */
import { runMain } from '../pipeline/errors.js';
import { parseStageArgs } from '../pipeline/cli.js';
import { runStage } from '../pipeline/runner.js';

runMain(async () => {
  const args = await parseStageArgs('evaluate', 'Score the classifier on the validation and test splits.');
  await runStage('evaluate', args);
});
