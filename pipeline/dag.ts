import type { StageSpec } from './artifacts/plan.js';
import type { StageBuild } from './stage-types.js';
import { ingestSources } from './ingest/source.js';
import { reportSources } from './report/sources.js';
import { modelSources, TOKENIZER_FILES } from './model/index.js';
import { featurizerOf } from './embed/featurizer.js';

/** A stage of the DAG: what makes up its key, and its build function (loaded only when it runs). */
export interface PipelineStage extends StageSpec {
  build(): Promise<StageBuild>;
  /** Keeps its work folder after a failure, so that a rerun resumes (embed's finished shards). */
  resumable?: boolean;
}

/**
 * A stage's code is its program (`stages/<name>.ts`) and its body (`pipeline/<name>/<name>.ts`),
 * with everything they import: what its key hashes.
 */
const code = (name: string) => [`stages/${name}.js`, `pipeline/${name}/${name}.js`];

/**
 * The pipeline, the one description of it: the stages in DAG order, with what makes up each
 * one's key and the function that builds it. The runner, `make status`, the sweep, `predict` and
 * the report take their stage lists from here; a test checks that the Makefile's targets agree.
 */
export const STAGES: readonly PipelineStage[] = [
  {
    name: 'ingest',
    code: code('ingest'),
    build: async () => (await import('./ingest/ingest.js')).ingest,
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
    code: code('tokenize'),
    build: async () => (await import('./tokenize/tokenize.js')).tokenize,
    version: 1,
    inputs: ['ingest'],
    // Worker count cannot change the ids.
    params: ({ config }) => ({ tokenize: { max_length: config.tokenize.max_length } }),
    sources: (loaded, store) => modelSources(loaded, store, TOKENIZER_FILES),
  },
  {
    name: 'embed',
    code: code('embed'),
    // The whole corpus in one process; `--shard i/n` and `--merge n` are the program's own modes.
    build: async () => (await import('./embed/embed.js')).embed,
    resumable: true,
    version: 1,
    // BERT reads tokenize's ids; TF-IDF reads ingest's descriptions and fits on its training split.
    inputs: ['ingest', 'tokenize'],
    // What changes the vectors is the featurizer's to say (embed/featurizer.ts).
    params: ({ config }) => featurizerOf(config).params(config),
    sources: (loaded, store) => featurizerOf(loaded.config).sources(loaded, store),
  },
  {
    name: 'train',
    code: code('train'),
    build: async () => (await import('./train/train.js')).trainClassifier,
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
    code: code('evaluate'),
    build: async () => (await import('./evaluate/evaluate.js')).evaluate,
    version: 1,
    inputs: ['ingest', 'embed', 'train'],
    params: ({ config }) => ({ evaluate: config.evaluate }),
  },
  {
    name: 'report',
    code: code('report'),
    build: async () => (await import('./report/report.js')).buildReport,
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

/** The stage named `name`; a bug if there is none. */
export function stage(name: string): PipelineStage {
  const found = STAGES.find((s) => s.name === name);
  if (!found) throw new Error(`no stage named ${name} in STAGES`);
  return found;
}

/** `name` and every stage it reads from, directly or not, in DAG order. */
export function upstreamOf(name: string): string[] {
  const needed = new Set([name]);
  for (const spec of [...STAGES].reverse()) if (needed.has(spec.name)) for (const input of spec.inputs) needed.add(input);
  return STAGES.map((s) => s.name).filter((s) => needed.has(s));
}
