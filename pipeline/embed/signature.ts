import { signature, type StageRun } from '../stage-types.js';
import { embedArtifact } from './artifact.js';
import { featurizerOf } from './featurizer.js';

/**
 * The embed stage's signature is its featurizer's (featurizer.ts): BERT reads tokenize's ids and
 * the model; TF-IDF reads ingest's texts and splits. Its code is the featurizer's module alone,
 * so editing one featurizer re-keys no other.
 */
export const embedSignature = signature({
  name: 'embed',
  // 2: keyed by what it reads; vectors from the vector cache.
  version: 2,
  output: embedArtifact,
  reads: (config) => featurizerOf(config).reads(config),
  params: (config) => featurizerOf(config).params(config),
  settings: (config) => featurizerOf(config).settings(config),
  sources: (config) => featurizerOf(config).sources(config),
  code: (config) => featurizerOf(config).code,
});

/** Each featurizer types its own run (bert.ts, tfidf.ts); the stage only dispatches. */
export type EmbedRun = StageRun<{ embed: { method: string | string[] } } & Record<string, unknown>, Record<string, unknown>, Record<string, unknown>, Record<string, unknown>>;
