import type { ManifestBody } from '../artifacts/store.js';
import { featurizerOf } from './featurizer.js';
import type { EmbedRun } from './signature.js';

/**
 * The embed stage: one vector per row of ingest's train.parquet and test.parquet, made by the
 * featurizer `embed.method` names (featurizer.ts), with what it fitted stored beside them.
 * Only dispatch: the key covers the featurizer's own build (featurizer.ts `code`).
 */
export async function embed(run: EmbedRun): Promise<ManifestBody> {
  const featurizer = await featurizerOf(run.params).load();
  return featurizer.build(run);
}
