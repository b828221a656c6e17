import { isAbsolute, relative } from 'node:path';
import { listRuns, readRun, runPointers } from '../artifacts/runs.js';
import { latestRecords, listRecords, type RunRecord } from '../artifacts/records.js';
import { UserError } from '../errors.js';
import type { ArtifactStore } from '../artifacts/store.js';
import type { ColumnType, TableSchema } from '../parquet/index.js';
import { flatten } from './index.js';
import { METRICS, type MetricName } from './metrics.js';
import { readMetricsFile } from '../evaluate/artifact.js';

/**
 * `make runs`: the runs in the store as one table, as `dvc exp show` shows experiments: the run,
 * its record id, its config file, the settings that differ between runs (each a column of its
 * own), the key metrics with their 95% intervals, when it was evaluated and by which commit.
 * By default the latest record of each run name (what `runs/<name>` points at); `all` lists every
 * record, the builds an alias moved away from included.
 */
export interface RunsTable {
  rows: Record<string, unknown>[];
  /** Settings whose values differ between the runs: the columns worth reading. */
  params: string[];
  /** Of those, the settings that differ between runs of one config file (what SET= or a sweep varied). */
  changed: string[];
  metrics: string[];
  schema: TableSchema;
  /** Every setting of each row's config (aligned with `rows`), for --filter on any of them. */
  settings: Record<string, unknown>[];
}

const METRIC_COLUMNS = [
  ['validation', 'accuracy'],
  ['validation', 'macro_f1'],
  ['test', 'accuracy'],
  ['test', 'macro_f1'],
  ['test', 'log_loss'],
] as const;

interface RunSource {
  run: string;
  record?: RunRecord;
  configPath: string | null;
  config: Record<string, unknown>;
  pointers: Record<string, string>;
  damaged?: string;
}

/** The settings of a config as columns: a list of plain values is one column (`report.reference_runs`), a list of sections one per item. */
export function settingColumns(config: Record<string, unknown>): Record<string, unknown> {
  const { run: _name, ...rest } = config;
  const lists: Record<string, unknown> = {};
  const collapse = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.every((v) => v === null || typeof v !== 'object') ? value.map(String).join(',') : value.map(collapse);
    if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, collapse(v)]));
    return value;
  };
  Object.assign(lists, flatten(collapse(rest)));
  return lists;
}

function sources(store: ArtifactStore, all: boolean): RunSource[] {
  if (all) {
    return listRecords(store).map((record) => ({ run: record.name, record, configPath: record.config_path, config: record.config, pointers: record.keys }));
  }
  const latest = latestRecords(store);
  return listRuns(store)
    .sort()
    .map((run) => {
      const pointers = runPointers(store, run);
      // The alias's record: the latest of its name, when the alias still points where that record does.
      const candidate = latest.get(run);
      const record = candidate && Object.entries(pointers).every(([s, k]) => candidate.keys[s] === k) ? candidate : undefined;
      try {
        const recorded = readRun(store, run);
        return { run, record, configPath: recorded?.configPath ?? null, config: (recorded?.config ?? {}) as Record<string, unknown>, pointers };
      } catch (error) {
        // One damaged run is shown as damaged; it does not hide the others.
        if (!(error instanceof UserError)) throw error;
        return { run, record, configPath: null, config: {}, pointers, damaged: error.message };
      }
    });
}

export async function runsTable(store: ArtifactStore, options: { all?: boolean } = {}): Promise<RunsTable> {
  const runs = sources(store, options.all ?? false);
  const settings = runs.map((r) => settingColumns(r.config));
  const keys = [...new Set(settings.flatMap((c) => Object.keys(c)))].sort();
  const differs = (indexes: number[], key: string) => new Set(indexes.map((i) => JSON.stringify(settings[i]![key] ?? null))).size > 1;
  const everyone = runs.map((_, i) => i);
  const params = keys.filter((key) => differs(everyone, key));
  const byConfig = new Map<string, number[]>();
  runs.forEach((r, i) => byConfig.set(r.configPath ?? '?', [...(byConfig.get(r.configPath ?? '?') ?? []), i]));
  const changed = params.filter((key) => [...byConfig.values()].some((group) => differs(group, key)));
  const rows: Record<string, unknown>[] = [];
  for (const [index, source] of runs.entries()) {
    const evaluate = source.pointers.evaluate;
    let problem: string | undefined = source.damaged;
    try {
      problem ??= evaluate ? await store.check('evaluate', evaluate) : 'not evaluated';
    } catch (error) {
      if (!(error instanceof UserError)) throw error;
      problem = error.message;
    }
    const all = evaluate && !problem ? readMetricsFile(store.keyDir('evaluate', evaluate)) : undefined;
    const manifest = evaluate && !problem ? store.readManifest('evaluate', evaluate) : undefined;
    const row: Record<string, unknown> = {
      run: source.run,
      id: source.record?.id ?? null,
      config: source.damaged ? null : source.configPath ? shortPath(source.configPath) : null,
      built_at: source.record ? new Date(source.record.updated_at) : null,
    };
    for (const param of params) row[param] = displayValue(settings[index]![param]);
    for (const [split, name] of METRIC_COLUMNS) {
      const m = all?.[split];
      row[`${split}.${name}`] = m ? METRICS[name].read(m) : (source.record?.metrics?.[split]?.[name] ?? null);
      const interval = m?.intervals?.[name] ?? source.record?.metrics?.[split]?.intervals?.[name];
      row[`${split}.${name}_low`] = interval?.[0] ?? null;
      row[`${split}.${name}_high`] = interval?.[1] ?? null;
    }
    row.evaluated_at = manifest?.created_at ? new Date(manifest.created_at) : null;
    row.commit = manifest?.versions.git_commit ?? source.record?.commit ?? null;
    const notBuilt = source.record?.not_built ?? [];
    row.note =
      problem === 'not evaluated'
        ? notBuilt.length
          ? `not built: ${notBuilt.join(', ')} (the run's last build stopped before them)`
          : 'not evaluated'
        : source.damaged || problem?.includes('manifest is damaged')
          ? `damaged: ${problem}`
          : problem
            ? `evaluate artifact changed after publishing: ${problem}`
            : null;
    rows.push(row);
  }
  const metrics = METRIC_COLUMNS.map(([s, n]) => `${s}.${n}`);
  const schema: TableSchema = {
    run: { type: 'UTF8' },
    id: { type: 'UTF8', optional: true },
    config: { type: 'UTF8', optional: true },
    built_at: { type: 'TIMESTAMP_MILLIS', optional: true },
    ...Object.fromEntries(params.map((p) => [p, { type: columnType(rows.map((r) => r[p])), optional: true }])),
    ...Object.fromEntries(metrics.flatMap((m) => [m, `${m}_low`, `${m}_high`].map((c) => [c, { type: 'DOUBLE' as const, optional: true }]))),
    evaluated_at: { type: 'TIMESTAMP_MILLIS', optional: true },
    commit: { type: 'UTF8', optional: true },
    note: { type: 'UTF8', optional: true },
  };
  for (const row of rows) for (const [name, column] of Object.entries(schema)) if (column.type === 'UTF8' && row[name] !== null && typeof row[name] !== 'string') row[name] = String(row[name]);
  return { rows, params, changed, metrics, schema, settings };
}

/** Integers as INT64, booleans as BOOLEAN, other numbers as DOUBLE, the rest as text: what pandas and DuckDB should see. */
function columnType(values: unknown[]): ColumnType {
  const present = values.filter((v) => v !== null && v !== undefined);
  if (present.length && present.every((v) => typeof v === 'boolean')) return 'BOOLEAN';
  if (present.length && present.every((v) => Number.isSafeInteger(v))) return 'INT64';
  if (present.every((v) => typeof v === 'number')) return 'DOUBLE';
  return 'UTF8';
}

const displayValue = (value: unknown) =>
  value === undefined || value === null ? null : typeof value === 'string' ? (isAbsolute(value) ? shortPath(value) : value) : typeof value === 'object' ? JSON.stringify(value) : value;

/** A path as the person typing `make` would write it: relative to where they stand, unless that is longer. */
function shortPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel.length < path.length ? rel : path;
}

/** `--filter key=value`: a setting (any, not only the differing ones), or run, id, config; every filter must hold. */
export function filterRuns(table: RunsTable, filters: string[]): RunsTable {
  if (!filters.length) return table;
  const parsed = filters.map((f) => {
    const at = f.indexOf('=');
    if (at < 1) throw new UserError(`--filter ${f}: expected key=value (a setting such as train.epochs=5, or run=, id=, config=)`);
    return { key: f.slice(0, at), value: f.slice(at + 1) };
  });
  const kept = table.rows.map((row, i) => ({ row, settings: table.settings[i]! })).filter(({ row, settings }) =>
    parsed.every(({ key, value }) => {
      if (key === 'run' || key === 'config' || key === 'id') return String(row[key] ?? '').includes(value);
      if (!(key in settings)) throw new UserError(`--filter ${key}=${value}: no run has a setting ${key} (settings look like train.epochs, embed.method, seed)`);
      const actual = displayValue(settings[key]);
      return String(actual) === value;
    }),
  );
  return { ...table, rows: kept.map((k) => k.row), settings: kept.map((k) => k.settings) };
}

/** `--sort METRIC`: best first, by the metric's direction (log loss: lowest first); runs without it last. */
export function sortRuns(table: RunsTable, metric: string): RunsTable {
  if (!table.metrics.includes(metric)) throw new UserError(`--sort ${metric}: not a column of make runs (choices: ${table.metrics.join(', ')})`);
  const name = metric.split('.')[1] as MetricName;
  const sign = METRICS[name].higherIsBetter ? -1 : 1;
  const value = (r: Record<string, unknown>) => (typeof r[metric] === 'number' ? (r[metric] as number) : null);
  const rows = [...table.rows].sort((a, b) => {
    const va = value(a);
    const vb = value(b);
    if (va === null || vb === null) return va === null ? (vb === null ? 0 : 1) : -1;
    return sign * (va - vb);
  });
  return { ...table, rows };
}
