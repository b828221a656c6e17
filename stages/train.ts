/**
 * train: BERT vectors + genres -> a TF.js MLP classifier
 *
 *   parse arguments            -> config + overrides (train.* never changes an upstream key)
 *   pick the backend           -> tfjs-node(-gpu) when installed, else wasm, else cpu; logged
 *   read features              -> embed vectors joined with ingest's genres and splits
 *   standardize                -> per-feature mean and std fitted on train, stored with the model
 *   for each epoch             -> seeded shuffle, fit, validation loss/accuracy/macro-F1; one line
 *                                 per epoch; learning-rate schedule; early stopping, best restored
 *   publish                    -> model/ (model.json + weights.bin), standardize.json, labels.json,
 *                                 history.parquet
 */
import { runMain } from '../pipeline/errors.js';
import { parseStageArgs } from '../pipeline/cli.js';
import { runStage } from '../pipeline/runner.js';

runMain(async () => {
  const args = await parseStageArgs('train', 'Train the genre classifier on the embed vectors.');
  await runStage('train', args);
});
