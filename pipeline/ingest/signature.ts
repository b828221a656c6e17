import { signature, type RunOf, type Source } from '../stage-types.js';
import { ingestArtifact } from './artifact.js';
import { ingestSources, resolveSource, type ResolvedSource } from './source.js';

/** The data files, identified by content (a pinned download's checksum, a local file's hash), so moving the data rebuilds nothing. */
export const dataSource: Source<ResolvedSource> = { hash: ingestSources, open: (loaded) => resolveSource(loaded) };

export const ingestSignature = signature({
  name: 'ingest',
  // 3: reads are keyed by content (the `texts`, `splits`, `genres` and `movies` views).
  version: 3,
  output: ingestArtifact,
  reads: () => ({}),
  // Where the data lives is not what it holds: `source` and `sha256` enter the key as the data's
  // content (`sources`); download retries and time-outs only decide whether it arrives.
  params: (config) => {
    const { download: _download, source: _source, sha256: _sha256, ...ingest } = config.ingest;
    return { ingest, seed: config.seed };
  },
  settings: (config) => ({ download: config.ingest.download }),
  sources: () => ({ data: dataSource }),
  code: ['pipeline/ingest/ingest.js#ingest'],
});

export type IngestRun = RunOf<typeof ingestSignature>;
