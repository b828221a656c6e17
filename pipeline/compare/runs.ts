

import { listRuns, readRun, runPointers } from '../artifacts/runs.js';
import { UserError } from '../errors.js';
import type { ArtifactStore } from '../artifacts/store.js';
import type { TableSchema } from '../parquet/index.js';
import { flatten } from './index.js';
import { readMetrics } from './metrics.js';

/**
 * `make runs`: every run in the store as one table, as `dvc exp show` shows experiments: the
 * run, its config file, the settings that differ between runs (each a column of its own), the
 * key metrics, when it was evaluated and by which commit of the code.
 */
export interface RunsTable {
  rows: Record<string, unknown>[];
  /** Settings whose values differ between the runs: the columns worth reading. */
  params: string[];
  schema: TableSchema;
}

const METRIC_COLUMNS = [
  ['validation', 'accuracy'],
  ['validation', 'macro_f1'],
  ['test', 'accuracy'],
  ['test', 'macro_f1'],
  ['test', 'log_loss'],
] as const;

export async function runsTable(store: ArtifactStore): Promise<RunsTable> {
  const runs = listRuns(store).sort();
  const configs = new Map<string, Record<string, unknown>>();
  // One damaged run is shown as damaged; it does not hide the others.
  const damaged = new Map<string, string>();
  for (const run of runs) {
    try {
      const recorded = readRun(store, run);
      const { run: _name, ...config } = (recorded?.config ?? {}) as Record<string, unknown>;
      configs.set(run, flatten(config));
    } catch (error) {
      if (!(error instanceof UserError)) throw error;
      damaged.set(run, error.message);
      configs.set(run, {});
    }
  }
  const keys = [...new Set([...configs.values()].flatMap((c) => Object.keys(c)))].sort();
  const params = keys.filter((key) => new Set(runs.map((run) => JSON.stringify(configs.get(run)![key] ?? null))).size > 1);
  const rows: Record<string, unknown>[] = [];
  for (const run of runs) {
    const evaluate = runPointers(store, run).evaluate;
    let problem: string | undefined;
    try {
      problem = damaged.get(run) ?? (evaluate ? await store.check('evaluate', evaluate) : 'not evaluated');
    } catch (error) {
      if (!(error instanceof UserError)) throw error;
      problem = error.message;
    }
    const metrics = evaluate && !problem ? readMetrics(store.keyDir('evaluate', evaluate)) : {};
    const manifest = evaluate && !problem ? store.readManifest('evaluate', evaluate) : undefined;
    const row: Record<string, unknown> = { run, config: damaged.has(run) ? null : (readRun(store, run)?.configPath ?? null) };
    for (const param of params) {
      const value = configs.get(run)![param];
      row[param] = value === undefined || value === null ? null : typeof value === 'number' ? value : typeof value === 'string' ? value : JSON.stringify(value);
    }
    for (const [split, name] of METRIC_COLUMNS) row[`${split}.${name}`] = metrics[split]?.[name] ?? null;
    row.evaluated_at = manifest?.created_at ?? null;
    row.commit = manifest?.versions.git_commit ?? null;
    row.note = problem === 'not evaluated' ? 'not evaluated' : damaged.has(run) || problem?.includes('manifest is damaged') ? `damaged: ${problem}` : problem ? `evaluate artifact changed after publishing: ${problem}` : null;
    rows.push(row);
  }
  const schema: TableSchema = {
    run: { type: 'UTF8' },
    config: { type: 'UTF8', optional: true },
    ...Object.fromEntries(params.map((p) => [p, { type: rows.every((r) => r[p] === null || typeof r[p] === 'number') ? ('DOUBLE' as const) : ('UTF8' as const), optional: true }])),
    ...Object.fromEntries(METRIC_COLUMNS.map(([s, n]) => [`${s}.${n}`, { type: 'DOUBLE' as const, optional: true }])),
    evaluated_at: { type: 'UTF8', optional: true },
    commit: { type: 'UTF8', optional: true },
    note: { type: 'UTF8', optional: true },
  };
  for (const row of rows) for (const [name, column] of Object.entries(schema)) if (column.type === 'UTF8' && typeof row[name] === 'number') row[name] = String(row[name]);
  return { rows, params, schema };
}

/** The config file a run came from, shortened for the terminal. */
export const configName = (path: unknown) => (typeof path === 'string' ? path.split('/').slice(-2).join('/') : '–');

