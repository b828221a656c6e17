import type { StageSpec } from './artifacts/plan.js';
import { ingestSources } from './ingest/source.js';
import { reportSources } from './report/sources.js';
import { modelSources, NETWORK_FILES, TOKENIZER_FILES } from './model/index.js';

/**
 * The stages in DAG order, with what makes up each one's key. The Makefile runs them in this
 * order; this list says which config fields and files each one depends on.
 */
export const STAGES: readonly StageSpec[] = [
  {
    name: 'ingest',
    // 2: the optional image column.
    version: 2,
    inputs: [],
    params: ({ config }) => {
      // Download retries and time-outs cannot change the rows; the seed drives the validation split.
      // The source is identified by its content (`sources`), so moving the data does not rebuild.
      const { download: _download, source: _source, sha256: _sha256, ...params } = config.ingest;
      return { ingest: params, seed: config.seed };
    },
    sources: ingestSources,
  },
  {
    name: 'tokenize',
    version: 1,
    inputs: ['ingest'],
    // Worker count cannot change the ids.
    params: ({ config }) => ({ tokenize: { max_length: config.tokenize.max_length } }),
    sources: (loaded, store) => modelSources(loaded, store, TOKENIZER_FILES),
  },
  {
    name: 'embed',
    version: 1,
    inputs: ['tokenize'],
    // Providers, threads, batch and shard sizes change how fast, not what: they stay out of the key.
    params: ({ config }) => ({ embed: { pooling: config.embed.pooling }, model: { precision: config.model?.precision } }),
    sources: (loaded, store) => modelSources(loaded, store, NETWORK_FILES(loaded)),
  },
  {
    name: 'train',
    version: 1,
    inputs: ['ingest', 'embed'],
    // The backend is left out: it changes speed, and only float rounding of the result.
    params: ({ config }) => {
      // train.seed enters the key only when set, so that artifacts made before it existed keep their keys.
      const { backend: _backend, seed: trainSeed, ...train } = config.train;
      return { train: trainSeed === null ? train : { ...train, seed: trainSeed }, seed: config.seed };
    },
  },
  {
    name: 'evaluate',
    version: 1,
    inputs: ['ingest', 'embed', 'train'],
    params: ({ config }) => ({ evaluate: config.evaluate }),
  },
  {
    name: 'report',
    // 2: posters from the image column, empty confusion cells left blank.
    version: 2,
    inputs: ['ingest', 'tokenize', 'embed', 'train', 'evaluate'],
    // The posters folder is identified by its images' content (`sources`), not its path.
    params: ({ config }) => {
      const { images: _images, ...report } = config.report;
      return { report, seed: config.seed, run: config.run };
    },
    sources: reportSources,
  },
];
