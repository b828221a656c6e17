import type { StageSpec } from './artifacts/plan.js';
import { ingestSources } from './ingest/source.js';

/**
 * The stages in DAG order, with what makes up each one's key. The Makefile runs them in this
 * order; this list says which config fields and files each one depends on.
 */
export const STAGES: readonly StageSpec[] = [
  {
    name: 'ingest',
    version: 1,
    inputs: [],
    params: ({ config }) => {
      // Download retries and time-outs cannot change the rows; the seed drives the validation split.
      // The source is identified by its content (`sources`), so moving the data does not rebuild.
      const { download: _download, source: _source, sha256: _sha256, ...params } = config.ingest;
      return { ingest: params, seed: config.seed };
    },
    sources: ingestSources,
  },
];
