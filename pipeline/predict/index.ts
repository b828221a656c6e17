import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, extname, join, resolve } from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { toCsv } from '../csv.js';
import { UserError } from '../errors.js';
import { formatCount, info } from '../log.js';
import { readParquet, writeParquet, type TableSchema } from '../parquet/index.js';
import { configSchema, type Config } from '../config/schema.js';
import { makeCommand, type LoadedConfig } from '../config/index.js';
import type { ArtifactStore, Manifest } from '../artifacts/store.js';
import { listRuns, readRun, runPointers } from '../artifacts/runs.js';
import { planPipeline, providersOf } from '../artifacts/plan.js';
import { viewOf } from '../artifacts/contract.js';
import { STAGES, type PipelineStage } from '../dag.js';
import { featurizerOf } from '../embed/featurizer.js';
import { selectBackend } from '../mlp/backend.js';
import { CLASSIFIER } from '../train/artifact.js';
import { topColumns } from '../evaluate/artifact.js';
import { topK } from '../metrics/index.js';

/**
 * Predicts genres for new descriptions with a finished run, through the same pipeline evaluate
 * scores with: the featurizer of the artifact evaluate reads its vectors from (the same ONNX
 * model, checked by checksum, or the same fitted TF-IDF vocabulary), and the classifier of the
 * stage evaluate reads its classifier from (train, or a stage inserted after it), both found in
 * STAGES as the runner finds them. Nothing is retrained and no artifact is written.
 */

interface Opened {
  stage: string;
  dir: string;
  manifest: Manifest;
}

export interface RunArtifacts {
  name: string;
  loaded: LoadedConfig;
  /** The artifact evaluate reads its vectors from (embed). */
  vectors: Opened;
  /** The artifact evaluate reads its classifier from. */
  classifier: Opened;
  stages: readonly PipelineStage[];
}

/** The artifacts of the current config's run (`loaded`), or of a named run under artifacts/runs/. */
export async function findRun(store: ArtifactStore, loaded: LoadedConfig, runName?: string, stages: readonly PipelineStage[] = STAGES): Promise<RunArtifacts> {
  let keys: Record<string, string>;
  if (runName) {
    const recorded = readRun(store, runName);
    if (!recorded) {
      const runs = listRuns(store);
      throw new UserError(`predict --run ${runName}: no such run in ${store.root}/runs (${runs.length ? `runs: ${runs.join(', ')}` : 'no runs yet: make train'})`);
    }
    if (!recorded.configPath) throw new UserError(`predict --run ${runName}: the run does not say which config file made it; rerun \`make train\` for it once`);
    const parsed = configSchema.safeParse(recorded.config);
    if (!parsed.success) throw new UserError(`predict --run ${runName}: ${store.root}/runs/${runName}/config.yaml is not a valid config; rerun \`make train\` for it`);
    loaded = { config: { ...parsed.data, run: runName } as Config, path: recorded.configPath, baseDir: dirname(recorded.configPath), overrides: [] };
    keys = runPointers(store, runName);
  } else {
    const plan = await planPipeline(stages, loaded, store, 'evaluate');
    keys = Object.fromEntries([...plan.stages].map(([stage, planned]) => [stage, planned.key]));
  }
  const providers = providersOf(stages, 'evaluate', loaded.config);
  const open = async (stage: string, files: readonly string[]): Promise<Opened> => {
    const manifest = keys[stage] ? store.readManifest(stage, keys[stage]) : undefined;
    if (!manifest) throw new UserError(`predict: the run "${loaded.config.run}" is unfinished: its ${stage} artifact is not built; run \`${makeCommand(stage, loaded)}\` first`);
    // What predict reads (the classifier's weights, what the featurizer fitted) is read as
    // published or not at all; the corpus's vectors are not read.
    await store.verified(stage, keys[stage]!, files);
    return { stage, dir: store.keyDir(stage, keys[stage]!), manifest };
  };
  const vectorsStage = providers.vectors!.stage;
  const classifierStage = stages.find((s) => s.name === providers.classifier!.stage)!;
  const vectors = await open(vectorsStage, featurizerOf(loaded.config).state);
  const classifier = await open(classifierStage.name, viewOf(classifierStage.output, CLASSIFIER)!.files);
  // A named run may point at artifacts made from model files that have changed since. (The
  // current config's keys already hash today's model files, so its artifacts match by construction.)
  if (runName) {
    const now: Record<string, string> = {};
    for (const source of Object.values(stages.find((s) => s.name === vectorsStage)!.sources(loaded.config) as Record<string, { hash: (l: LoadedConfig, s: ArtifactStore) => Promise<Record<string, string>> }>)) Object.assign(now, await source.hash(loaded, store));
    for (const [file, sha] of Object.entries(vectors.manifest.sources)) {
      if (now[file] !== undefined && now[file] !== sha) throw new UserError(`predict: ${file} has changed since run "${loaded.config.run}" was embedded; retrain with \`${makeCommand('train', loaded)}\``);
    }
  }
  return { name: loaded.config.run, loaded, vectors, classifier, stages };
}

export interface Descriptions {
  ids: string[];
  titles: (string | null)[];
  texts: string[];
}

/**
 * Descriptions from a file: plain text (one per line), CSV or JSONL (a `description` column,
 * optional `id` and `title`), or Parquet with the same columns. Empty descriptions are errors
 * that name the line, so that no output row is silently missing.
 */
export async function readDescriptions(path: string, column = 'description'): Promise<Descriptions> {
  if (!existsSync(path)) throw new UserError(`predict: ${path} does not exist`);
  const ext = extname(path).toLowerCase();
  const out: Descriptions = { ids: [], titles: [], texts: [] };
  const add = (record: Record<string, unknown>, where: string, fallbackId: string) => {
    const text = record[column];
    if (typeof text !== 'string' || !text.trim()) throw new UserError(`predict: ${where}: empty or missing "${column}"`);
    out.ids.push(record.id === undefined || record.id === null || record.id === '' ? fallbackId : String(record.id));
    out.titles.push(typeof record.title === 'string' ? record.title : null);
    out.texts.push(text.trim());
  };
  if (ext === '.parquet') {
    let rows: Record<string, unknown>[];
    try {
      rows = await readParquet(path);
    } catch (error) {
      throw new UserError(`predict: ${path}: not a readable Parquet file (${(error as Error).message})`);
    }
    if (rows.length && !(column in rows[0]!)) throw new UserError(`predict: ${path}: no "${column}" column (--column names it)`);
    rows.forEach((row, i) => add(row, `${path} row ${i + 1}`, String(i + 1)));
  } else {
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(readFileSync(path));
    } catch (error) {
      throw new UserError(`predict: ${path}: not readable UTF-8 text (${(error as Error).message})`);
    }
    if (ext === '.csv') {
      let records: Record<string, string>[];
      try {
        records = parseCsv(text, { columns: true, skip_empty_lines: true, bom: true });
      } catch (error) {
        throw new UserError(`predict: ${path}: ${(error as Error).message}`);
      }
      if (records.length && !(column in records[0]!)) throw new UserError(`predict: ${path}: no "${column}" column (the header has ${Object.keys(records[0]!).join(', ')}; --column names it)`);
      records.forEach((r, i) => add(r, `${path} line ${i + 2}`, String(i + 1)));
    } else if (ext === '.jsonl' || ext === '.ndjson') {
      text.split('\n').forEach((line, i) => {
        if (!line.trim()) return;
        let record: unknown;
        try {
          record = JSON.parse(line);
        } catch {
          throw new UserError(`predict: ${path} line ${i + 1}: not valid JSON`);
        }
        if (typeof record !== 'object' || record === null) throw new UserError(`predict: ${path} line ${i + 1}: expected a JSON object`);
        add(record as Record<string, unknown>, `${path} line ${i + 1}`, String(i + 1));
      });
    } else {
      // One description a line; its id is its line number, so blank lines are skipped, not renumbered.
      let blank = 0;
      const lines = text.split('\n');
      if (lines.at(-1) === '') lines.pop();
      lines.forEach((line, i) => {
        if (line.trim()) add({ [column]: line }, `${path} line ${i + 1}`, String(i + 1));
        else blank++;
      });
      if (blank) info(`predict: ${path}: ${formatCount(blank)} blank line${blank === 1 ? '' : 's'} skipped; each prediction's id is its line number`);
    }
  }
  if (!out.texts.length) throw new UserError(`predict: ${path} has no descriptions`);
  return out;
}

export interface Prediction {
  id: string;
  title: string | null;
  top: { genre: string; probability: number }[];
}

/** Vectorizes and classifies `texts` as the run's embed, train and evaluate stages would have. */
export async function predictDescriptions(run: RunArtifacts, input: Descriptions, k: number, store: ArtifactStore): Promise<{ predictions: Prediction[]; genres: string[]; seconds: Record<string, number>; fromCache?: number }> {
  const featurizer = await featurizerOf(run.loaded.config).load();
  // The featurizer's model and the classifier's backend load side by side.
  const vectorizerReady = featurizer.open(run.loaded, run.vectors, store);
  const backendReady = selectBackend(run.loaded.config.train.backend, 'predict');
  const classifierStage = run.stages.find((s) => s.name === run.classifier.stage)!;
  const classifier = await viewOf(classifierStage.output, CLASSIFIER)!.open(run.classifier.dir, run.classifier.manifest);
  const vectorizer = await vectorizerReady;
  const { vectors, seconds, fromCache } = await vectorizer.vectorize(input.texts);
  const started = performance.now();
  await backendReady;
  const { genres } = classifier;
  const probs = await classifier.predict(vectors, vectorizer.dim);
  const predictions = input.texts.map((_, i) => {
    const p = probs.subarray(i * genres.length, (i + 1) * genres.length);
    return { id: input.ids[i]!, title: input.titles[i] ?? null, top: topK(p, Math.min(k, genres.length)).map((l) => ({ genre: genres[l]!, probability: p[l]! })) };
  });
  return { predictions, genres, seconds: { ...seconds, classify: (performance.now() - started) / 1000 }, fromCache };
}

/** A terminal table: one block per description, a bar per genre. */
export function formatTable(predictions: Prediction[], limit = 20): string {
  const lines: string[] = [];
  for (const p of predictions.slice(0, limit)) {
    if (predictions.length > 1) lines.push(`${p.id}${p.title ? `  ${p.title}` : ''}`);
    for (const { genre, probability } of p.top) {
      const width = Math.round(probability * 30);
      lines.push(`  ${genre.padEnd(14)} ${'█'.repeat(width)}${'░'.repeat(30 - width)} ${(probability * 100).toFixed(1).padStart(5)}%`);
    }
  }
  if (predictions.length > limit) lines.push(`… ${formatCount(predictions.length - limit)} more (--output FILE writes them all, --json prints them)`);
  return `${lines.join('\n')}\n`;
}

/**
 * The output file's format by extension; any other is an error. Called before the work as well,
 * so that a wrong name is reported at once rather than after every row is predicted.
 */
export function outputFormat(path: string): '.parquet' | '.csv' | '.jsonl' {
  const ext = extname(path).toLowerCase();
  if (ext !== '.parquet' && ext !== '.csv' && ext !== '.jsonl') throw new UserError(`predict --output ${path}: expected a .parquet, .csv or .jsonl file`);
  return ext;
}

/** Writes Parquet, CSV or JSONL by extension, through a temporary file so no half file is left. */
/** Which run and artifacts made a prediction: on every output row, and in a Parquet file's metadata. */
/** What made a set of predictions, carried by every output: the run, the classifier's and the featurizer's keys, and the classifier's genre order. */
export interface PredictionSource {
  run: string;
  classifier_key: string;
  embed_key: string;
  genres: string[];
}

export async function writePredictions(path: string, predictions: Prediction[], k: number, source: PredictionSource): Promise<void> {
  const ext = outputFormat(path);
  const flat = predictions.map((p) => {
    const row: Record<string, unknown> = { id: p.id, title: p.title, predicted_genre: p.top[0]!.genre, run: source.run, classifier_key: source.classifier_key, embed_key: source.embed_key };
    p.top.forEach((t, j) => {
      const column = topColumns(j + 1);
      row[column.genre] = t.genre;
      row[column.prob] = t.probability;
    });
    return row;
  });
  const tmp = join(dirname(resolve(path)), `.${Date.now()}.${process.pid}${ext}`);
  try {
    if (ext === '.parquet') {
      const schema: TableSchema = { id: { type: 'UTF8' }, title: { type: 'UTF8', optional: true }, predicted_genre: { type: 'UTF8' }, run: { type: 'UTF8' }, classifier_key: { type: 'UTF8' }, embed_key: { type: 'UTF8' } };
      for (let j = 1; j <= k; j++) Object.assign(schema, { [topColumns(j).genre]: { type: 'UTF8', optional: true }, [topColumns(j).prob]: { type: 'DOUBLE', optional: true } });
      await writeParquet(tmp, schema, flat, { run: source.run, classifier_key: source.classifier_key, embed_key: source.embed_key, genres: JSON.stringify(source.genres) });
    } else if (ext === '.csv') {
      writeFileSync(tmp, toCsv(flat, Object.keys(flat[0]!)));
    } else {
      writeFileSync(tmp, flat.map((r) => JSON.stringify(r)).join('\n') + '\n');
    }
    // CSV and JSONL have no place for file metadata that every reader keeps: a sidecar beside them.
    if (ext !== '.parquet') writeFileSync(`${path}.meta.json`, `${JSON.stringify({ ...source, top_k: k }, null, 2)}\n`);
    renameSync(tmp, path);
  } catch (error) {
    rmSync(tmp, { force: true });
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'EACCES') throw new UserError(`predict --output ${path}: cannot write there (${(error as Error).message})`);
    throw error;
  }
}
