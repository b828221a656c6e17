import { signature, type RunOf, type Source } from '../stage-types.js';
import { GENRES, MOVIES } from '../ingest/artifact.js';
import { TOKEN_STATS, TOKENS } from '../tokenize/artifact.js';
import { HISTORY } from '../train/artifact.js';
import { METRICS, PREDICTIONS } from '../evaluate/artifact.js';
import { embedSignature } from '../embed/signature.js';
import { resolveConfigPath } from '../config/index.js';
import { reportArtifact } from './artifact.js';
import { referenceSources, readReferenceRuns, type ReportContext } from './references.js';
import { imageSources } from './sources.js';

/** The posters folder (report.images), by its images' content, not its path. */
const postersSource: Source<string | null> = {
  hash: imageSources,
  open: async (loaded) => (loaded.config.report.images ? resolveConfigPath(loaded, loaded.config.report.images) : null),
};

/** What the report shows beside this run (other runs, its previous build, the gate baseline), by the artifacts and file each is. */
const referencesSource: Source<ReportContext> = {
  hash: async (loaded, store, upstream) => referenceSources(loaded, store, upstream),
  open: async (loaded, store, upstream) => readReferenceRuns(loaded, store, upstream),
};

export const reportSignature = signature({
  name: 'report',
  version: 3,
  output: reportArtifact,
  // Token lengths only when embed reads token ids: a TF-IDF report has no truncation to show.
  reads: (config) => ({
    movies: MOVIES,
    genres: GENRES,
    history: HISTORY,
    predictions: PREDICTIONS,
    metrics: METRICS,
    ...(Object.values(embedSignature.reads(config)).some((port) => port.name === TOKENS.name) ? { tokenStats: TOKEN_STATS } : {}),
  }),
  // Timings, versions and keys of every upstream artifact, and the settings each ran with.
  provenance: true,
  params: (config) => {
    const { images: _images, ...report } = config.report;
    return { report, seed: config.seed, run: config.run };
  },
  sources: () => ({ posters: postersSource, references: referencesSource }),
  code: ['pipeline/report/report.js#buildReport'],
});

export type ReportRun = RunOf<typeof reportSignature>;
