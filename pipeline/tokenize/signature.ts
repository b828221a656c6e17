import { signature, type RunOf, type Source } from '../stage-types.js';
import { modelSources, resolveModel, TOKENIZER_FILES, type ModelFiles } from '../model/index.js';
import { TEXTS } from '../ingest/artifact.js';
import { tokenizeArtifact } from './artifact.js';

/** The model's tokenizer files, by content: a hub file by its pinned checksum, a local one by its hash. */
export const tokenizerSource: Source<ModelFiles> = {
  hash: (loaded, store) => modelSources(loaded, store, TOKENIZER_FILES),
  open: (loaded) => resolveModel(loaded, TOKENIZER_FILES),
};

export const tokenizeSignature = signature({
  name: 'tokenize',
  version: 2,
  output: tokenizeArtifact,
  // The descriptions, not ingest's splits or genres: a new validation split tokenizes nothing.
  reads: () => ({ texts: TEXTS }),
  params: (config) => ({ tokenize: { max_length: config.tokenize.max_length } }),
  // Worker count cannot change the ids.
  settings: (config) => ({ workers: config.tokenize.workers }),
  sources: () => ({ model: tokenizerSource }),
  code: ['pipeline/tokenize/tokenize.js#tokenize'],
});

export type TokenizeRun = RunOf<typeof tokenizeSignature>;
