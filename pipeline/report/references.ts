import { warn } from '../log.js';
import type { LoadedConfig } from '../config/index.js';
import type { ArtifactStore, Manifest } from '../artifacts/store.js';
import { runPointers } from '../artifacts/runs.js';
import { readMetricsFile, type MetricsFile } from '../evaluate/artifact.js';

/**
 * Other runs the report shows beside this one (`report.reference_runs`): a TF-IDF run beside a
 * BERT run answers "is BERT worth its cost over a bag of words?" on the same rows.
 */
export interface ReferenceRun {
  run: string;
  /** How the run made its vectors, in words: "TF-IDF", "BERT", "random-weight BERT". */
  featurizer: string;
  metrics: MetricsFile;
}

/** What made an embed artifact's vectors, in words. */
export function featurizerLabel(embed: Manifest | null): string {
  if (!embed) return 'unknown';
  const label = (method: unknown, details: Record<string, unknown>): string => {
    if (method === 'tfidf') return 'TF-IDF';
    if (method === 'use-lite') return 'USE-lite';
    if (method === 'glove') return 'GloVe mean';
    return details.random_model ? 'random-weight BERT' : 'BERT';
  };
  const { method } = embed.details;
  // A joined featurizer: its members, as they are named alone.
  if (Array.isArray(method)) return method.map((m) => label(m, ((embed.details.parts as Record<string, Record<string, unknown>>)[m as string] ?? {}))).join(' + ');
  return label(method, embed.details);
}

const others = (loaded: LoadedConfig) => loaded.config.report.reference_runs.filter((run) => run !== loaded.config.run);

/**
 * The evaluate artifact each reference run points at, for the report's key: when a reference run
 * is rebuilt (or built for the first time), the report that shows it is rebuilt too.
 */
export function referenceSources(loaded: LoadedConfig, store: ArtifactStore): Record<string, string> {
  return Object.fromEntries(others(loaded).map((run) => [`reference_runs/${run}`, runPointers(store, run).evaluate ?? 'not built']));
}

/** The reference runs that have been evaluated; the others are named in a warning and left out. */
export function readReferenceRuns(loaded: LoadedConfig, store: ArtifactStore): ReferenceRun[] {
  const found: ReferenceRun[] = [];
  for (const run of others(loaded)) {
    const keys = runPointers(store, run);
    if (!keys.evaluate || !store.readManifest('evaluate', keys.evaluate)) {
      warn(`report: warning: report.reference_runs names "${run}", which has no evaluate artifact in ${store.root}/runs (build it with make evaluate for its config); left out`);
      continue;
    }
    found.push({ run, featurizer: featurizerLabel(keys.embed ? store.readManifest('embed', keys.embed) ?? null : null), metrics: readMetricsFile(store.keyDir('evaluate', keys.evaluate)) });
  }
  return found;
}
