import type { Config, LoadedConfig } from '../config/index.js';
import type { ArtifactStore, ManifestBody } from '../artifacts/store.js';
import type { StageRun, UpstreamArtifact } from '../stage-types.js';
import { modelSources, NETWORK_FILES } from '../model/index.js';
import { TFIDF_STATE_FILE } from './artifact.js';

/**
 * A featurizer turns descriptions into vectors, the one thing train, evaluate and the report need
 * from the embed stage. Each follows the same three steps: fit on the training rows (TF-IDF's
 * vocabulary and IDF; nothing for a frozen encoder), store the fitted state in the embed artifact,
 * and transform, both in the stage (every row, into train.arrow and test.arrow) and in `predict`
 * (new descriptions, from the stored state), so that a description gets the same vector in both.
 *
 * Adding one: a module exporting `build` and `open`, an entry in FEATURIZERS, and its name in
 * `embed.method` (config/schema.ts).
 */
export interface FeaturizerModule {
  /** The embed stage: fit, store the state in `run.dir`, write every row's vector (embed/artifact.ts). */
  build(run: StageRun): Promise<ManifestBody>;
  /** Opens a built embed artifact to vectorize new texts exactly as the stage did. */
  open(loaded: LoadedConfig, embed: UpstreamArtifact): Promise<Vectorizer>;
}

export interface Vectorizer {
  dim: number;
  /** Row-major vectors of `texts`, `dim` each, and the seconds each step took. */
  vectorize(texts: string[]): Promise<{ vectors: Float32Array; seconds: Record<string, number> }>;
}

export interface Featurizer {
  /** The config fields that change the vectors: the embed key's params. */
  params(config: Config): unknown;
  /** Content hashes of the files outside the store that the vectors depend on. */
  sources(loaded: LoadedConfig, store: ArtifactStore): Promise<Record<string, string>>;
  /** The embed artifact's files that `open` reads: `predict` checks them against the manifest first. */
  state: readonly string[];
  /** The module, loaded only when the stage or `predict` runs. */
  load(): Promise<FeaturizerModule>;
}

export const FEATURIZERS: Record<Config['embed']['method'], Featurizer> = {
  bert: {
    // Providers, threads, batch and shard sizes change how fast, not what: they stay out of the key.
    params: (config) => ({ embed: { pooling: config.embed.pooling }, model: { precision: config.model?.precision } }),
    sources: (loaded, store) => modelSources(loaded, store, NETWORK_FILES(loaded)),
    // Nothing fitted: the model's files are checked by their checksums instead.
    state: [],
    load: () => import('./bert.js'),
  },
  tfidf: {
    params: (config) => ({ embed: { method: 'tfidf', tfidf: config.embed.tfidf } }),
    // Everything it reads is in the ingest artifact.
    sources: async () => ({}),
    state: [TFIDF_STATE_FILE],
    load: () => import('./tfidf.js'),
  },
};

export const featurizerOf = (config: Config): Featurizer => FEATURIZERS[config.embed.method];
