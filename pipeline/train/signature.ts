import { signature, type RunOf } from '../stage-types.js';
import { GENRES, SPLITS } from '../ingest/artifact.js';
import { VECTORS } from '../embed/artifact.js';
import { trainArtifact } from './artifact.js';

export const trainSignature = signature({
  name: 'train',
  version: 2,
  output: trainArtifact,
  reads: () => ({ vectors: VECTORS, splits: SPLITS, genres: GENRES }),
  params: (config) => {
    // train.seed enters the key only when set; the top-level seed seeds the network otherwise.
    const { backend: _backend, seed: trainSeed, ...train } = config.train;
    return { train: trainSeed === null ? train : { ...train, seed: trainSeed }, seed: config.seed };
  },
  // The backend changes speed, and only float rounding of the result.
  settings: (config) => ({ backend: config.train.backend }),
  code: ['pipeline/train/train.js#trainClassifier'],
});

export type TrainRun = RunOf<typeof trainSignature>;
