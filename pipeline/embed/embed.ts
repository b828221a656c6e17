import type { ManifestBody } from '../artifacts/store.js';
import type { StageRun } from '../stage-types.js';
import { featurizerOf } from './featurizer.js';

/**
 * The embed stage: one vector per row of ingest's train.parquet and test.parquet, made by the
 * featurizer `embed.method` names (featurizer.ts), with what it fitted stored beside them.
 */
export async function embed(run: StageRun): Promise<ManifestBody> {
  const featurizer = await featurizerOf(run.loaded.config).load();
  return featurizer.build(run);
}
