import { signature, type RunOf } from '../stage-types.js';
import { GENRES, MOVIES, SPLITS } from '../ingest/artifact.js';
import { VECTORS } from '../embed/artifact.js';
import { CLASSIFIER } from '../train/artifact.js';
import { evaluateArtifact } from './artifact.js';

export const evaluateSignature = signature({
  name: 'evaluate',
  version: 2,
  output: evaluateArtifact,
  // The classifier comes from the nearest stage before evaluate that offers one: train, or a stage
  // inserted after it (predict resolves it the same way).
  reads: () => ({ classifier: CLASSIFIER, vectors: VECTORS, splits: SPLITS, genres: GENRES, movies: MOVIES }),
  params: (config) => ({ evaluate: config.evaluate }),
  settings: (config) => ({ backend: config.train.backend }),
  code: ['pipeline/evaluate/evaluate.js#evaluate'],
});

export type EvaluateRun = RunOf<typeof evaluateSignature>;
