import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import YAML from 'yaml';
import { warn } from '../log.js';
import { sha256 } from '../hash.js';
import type { LoadedConfig } from '../config/index.js';
import type { ArtifactStore, Manifest } from '../artifacts/store.js';
import { listRuns, runPointers } from '../artifacts/runs.js';
import { listRecords } from '../artifacts/records.js';
import { readMetricsFile, type MetricsFile } from '../evaluate/artifact.js';

/**
 * What the report puts this run beside, so that its numbers have context:
 *
 * - other runs: `report.reference_runs` when it names any (exactly those), otherwise every other
 *   evaluated run on the same data (the same ingest texts and genres; at most CONTEXT_RUNS): a
 *   TF-IDF run beside a BERT run answers "is BERT worth its cost over a bag of words?";
 * - the previous build of this run (its latest run record with another evaluate artifact);
 * - the gate baseline of this config (configs/baselines/<config>.yaml), when there is one.
 *
 * Each enters the report's key (the evaluate artifact it points at, the baseline's content), so
 * a report is rebuilt when what it shows beside the run changes.
 */
export interface ReferenceRun {
  run: string;
  /** How the run made its vectors, in words: "TF-IDF", "BERT", "random-weight BERT". */
  featurizer: string;
  metrics: MetricsFile;
  /** Whether it drew the same validation split (a report on validation rows compares only those). */
  sameSplits: boolean;
}

export interface ReportContext {
  references: ReferenceRun[];
  /** How the other runs were chosen. */
  chosen: 'named' | 'same data';
  previous?: { id: string; built_at: string; metrics: MetricsFile };
  baseline?: { path: string; split: string; metrics: Record<string, { value: number; tolerance: number }> };
}

/** At most this many other runs are shown by default (the latest named first is not knowable; by name). */
export const CONTEXT_RUNS = 6;

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

/** The ports of an ingest artifact: another run's (where its folder points) or this build's (its planned key). */
const ingestPorts = (store: ArtifactStore, key: string | undefined) => (key ? store.readManifest('ingest', key)?.ports : undefined);
const runIngest = (store: ArtifactStore, run: string) => ingestPorts(store, runPointers(store, run).ingest);

/** The other runs to show: those named, or those evaluated on the same data as this build. */
function chooseRuns(loaded: LoadedConfig, store: ArtifactStore, upstream: Readonly<Record<string, string>>): { runs: string[]; chosen: ReportContext['chosen'] } {
  const self = loaded.config.run;
  const named = loaded.config.report.reference_runs.filter((run) => run !== self);
  if (loaded.config.report.reference_runs.length) return { runs: named, chosen: 'named' };
  const mine = ingestPorts(store, upstream.ingest);
  if (!mine) return { runs: [], chosen: 'same data' };
  const runs = listRuns(store)
    .filter((run) => run !== self)
    .filter((run) => {
      const evaluate = runPointers(store, run).evaluate;
      const theirs = runIngest(store, run);
      return evaluate && store.readManifest('evaluate', evaluate) && theirs?.texts === mine.texts && theirs.genres === mine.genres;
    })
    .sort()
    .slice(0, CONTEXT_RUNS);
  return { runs, chosen: 'same data' };
}

/** The latest run record of this run whose evaluate artifact is not this build's, and still kept. */
function previousBuild(loaded: LoadedConfig, store: ArtifactStore, upstream: Readonly<Record<string, string>>): { id: string; built_at: string; evaluate: string } | undefined {
  const current = upstream.evaluate;
  const records = listRecords(store).filter((r) => r.name === loaded.config.run && r.keys.evaluate && r.keys.evaluate !== current);
  const previous = records.reverse().find((r) => store.readManifest('evaluate', r.keys.evaluate!));
  return previous ? { id: previous.id, built_at: previous.updated_at, evaluate: previous.keys.evaluate! } : undefined;
}

/** configs/baselines/<config name>.yaml beside the config file, as `make gate` reads it. */
export const baselinePathOf = (loaded: LoadedConfig) => join(dirname(loaded.path), 'baselines', `${basename(loaded.path, extname(loaded.path))}.yaml`);

/** The report's key entries for its context: each run's evaluate artifact, the previous build's, the baseline's content. */
export function referenceSources(loaded: LoadedConfig, store: ArtifactStore, upstream: Readonly<Record<string, string>>): Record<string, string> {
  const { runs } = chooseRuns(loaded, store, upstream);
  const sources: Record<string, string> = Object.fromEntries(runs.map((run) => [`reference_runs/${run}`, runPointers(store, run).evaluate ?? 'not built']));
  const previous = previousBuild(loaded, store, upstream);
  if (previous) sources.previous_build = previous.evaluate;
  const baseline = baselinePathOf(loaded);
  if (existsSync(baseline)) sources.gate_baseline = sha256(readFileSync(baseline));
  return sources;
}

/** The context itself; a named run that has not been evaluated is named in a warning and left out. */
export function readReferenceRuns(loaded: LoadedConfig, store: ArtifactStore, upstream: Readonly<Record<string, string>>): ReportContext {
  const { runs, chosen } = chooseRuns(loaded, store, upstream);
  const mine = ingestPorts(store, upstream.ingest);
  const references: ReferenceRun[] = [];
  for (const run of runs) {
    const keys = runPointers(store, run);
    if (!keys.evaluate || !store.readManifest('evaluate', keys.evaluate)) {
      warn(`report: warning: report.reference_runs names "${run}", which has no evaluate artifact in ${store.root}/runs (build it with make evaluate for its config); left out`);
      continue;
    }
    references.push({
      run,
      featurizer: featurizerLabel(keys.embed ? store.readManifest('embed', keys.embed) ?? null : null),
      metrics: readMetricsFile(store.keyDir('evaluate', keys.evaluate)),
      sameSplits: Boolean(mine && runIngest(store, run)?.splits === mine.splits),
    });
  }
  const context: ReportContext = { references, chosen };
  const previous = previousBuild(loaded, store, upstream);
  if (previous) context.previous = { id: previous.id, built_at: previous.built_at, metrics: readMetricsFile(store.keyDir('evaluate', previous.evaluate)) };
  const path = baselinePathOf(loaded);
  if (existsSync(path)) {
    try {
      const parsed = YAML.parse(readFileSync(path, 'utf8')) as { split?: string; metrics?: Record<string, { value: number; tolerance: number }> };
      if (parsed?.metrics) context.baseline = { path, split: parsed.split ?? 'test', metrics: parsed.metrics };
    } catch (error) {
      warn(`report: warning: ${path} cannot be read (${(error as Error).message.split('\n')[0]}); the report shows no delta against the gate baseline (make gate says what is wrong)`);
    }
  }
  return context;
}
