/**
 * runs: the runs in the store as one table (as `dvc exp show`): the settings that differ between
 * runs as columns, key metrics with their 95% intervals, when and by which commit. Printed to fit
 * the terminal, and written whole as <artifacts>/runs.parquet (typed columns) and runs.csv.
 *
 *   make runs                                   the latest record of each run (what runs/<name> points at)
 *   make runs ALL=1                             every record, the builds an alias moved away from too (--all)
 *   make runs ONLY_CHANGED=1 SORT=test.accuracy FILTER=embed.method=tfidf SHOW=seed,test.
 *                                               --only-changed --sort --filter (repeatable) --columns
 *   make runs REMOVE=<id>                       forget one record (then `make gc` may free its artifacts)
 */
import { join, resolve } from 'node:path';
import { toCsv } from '../pipeline/csv.js';
import { runMain, UserError } from '../pipeline/errors.js';
import { parseArgs } from '../pipeline/cli.js';
import { info } from '../pipeline/log.js';
import { ArtifactStore, writeFileAtomically } from '../pipeline/artifacts/store.js';
import { findRecord, latestRecords, removeRecord } from '../pipeline/artifacts/records.js';
import { writeParquet } from '../pipeline/parquet/index.js';
import { table } from '../pipeline/compare/index.js';
import { filterRuns, runsTable, sortRuns } from '../pipeline/compare/runs.js';

runMain(async () => {
  const args = await parseArgs('runs', 'The runs in the store as one table.', (y) =>
    y
      .option('all', { type: 'boolean', default: false, describe: 'every run record, not only the latest of each run' })
      .option('only-changed', { type: 'boolean', default: false, describe: 'only the settings that differ between runs of one config (what SET= or a sweep varied)' })
      .option('sort', { type: 'string', describe: 'best first by this metric column, e.g. test.accuracy' })
      .option('filter', { type: 'string', array: true, default: [] as string[], describe: 'key=value: a setting, or run=, id=, config= (a part of it); repeatable' })
      .option('columns', { type: 'string', describe: 'comma-separated columns or prefixes to show (e.g. seed,train.,test.)' })
      .option('remove', { type: 'string', describe: 'forget this run record (an id or a unique part of one)' }),
  );
  const store = new ArtifactStore(resolve(args.artifacts));
  if (args.remove) return forget(store, String(args.remove));
  const full = await runsTable(store, { all: args.all });
  if (!full.rows.length) return info(`runs: no runs in ${store.root}/runs yet (make all makes one)`);
  // The files hold every run and column; the filters and columns shape only what is printed.
  await writeParquet(join(store.root, 'runs.parquet'), full.schema, full.rows);
  writeFileAtomically(join(store.root, 'runs.csv'), toCsv(full.rows.map(csvRow), Object.keys(full.schema)));
  let shown = filterRuns(full, args.filter);
  if (args.sort) shown = sortRuns(shown, args.sort);
  let params = args['only-changed'] ? full.changed : full.params;
  let metrics = full.metrics;
  if (args.columns) {
    const wanted = String(args.columns).split(',').map((c) => c.trim()).filter(Boolean);
    const pick = (c: string) => wanted.some((w) => c === w || (w.endsWith('.') && c.startsWith(w)));
    const unknown = wanted.filter((w) => ![...full.params, ...full.metrics].some((c) => c === w || (w.endsWith('.') && c.startsWith(w))));
    if (unknown.length) throw new UserError(`--columns: no column ${unknown.join(', ')} (settings that differ: ${full.params.join(', ') || 'none'}; metrics: ${full.metrics.join(', ')}; end a prefix with ".")`);
    params = full.params.filter(pick);
    metrics = full.metrics.filter(pick);
  }
  const width = Number(process.env.COLUMNS) || process.stdout.columns || 160;
  const { text, hidden } = fitted(shown.rows, params, full.changed, metrics, args.all, width);
  process.stdout.write(`${text}\n`);
  if (hidden.length) info(`runs: ${hidden.length} column(s) do not fit in ${width} columns: ${hidden.join(', ')} (--only-changed, --columns, or runs.csv)`);
  for (const row of shown.rows.filter((r) => typeof r.note === 'string' && r.note !== 'not evaluated')) info(`runs: ${row.run}${args.all ? ` ${row.id}` : ''}: ${row.note}`);
  const filtered = shown.rows.length < full.rows.length ? ` (${shown.rows.length} shown)` : '';
  info(`runs: ${full.rows.length} ${args.all ? 'record(s)' : 'run(s)'}${filtered}, ${full.params.length} setting(s) differ, ${full.changed.length} within a config -> ${join(args.artifacts, 'runs.parquet')}, ${join(args.artifacts, 'runs.csv')}`);
});

/** The table as wide as the terminal: setting columns are dropped from the right until it fits; run, metrics and commit stay. */
function fitted(rows: Record<string, unknown>[], params: string[], changed: string[], metrics: string[], all: boolean, width: number): { text: string; hidden: string[] } {
  const clip = (s: string) => (s.length > 24 ? `${s.slice(0, 23)}…` : s);
  const show = (v: unknown) => (v === null || v === undefined ? '–' : typeof v === 'number' ? String(Number(v.toPrecision(4))) : clip(String(v)));
  const metric = (r: Record<string, unknown>, m: string) => {
    const value = r[m];
    if (typeof value !== 'number') return '–';
    const lo = r[`${m}_low`];
    const hi = r[`${m}_high`];
    // The half-width of the 95% interval: enough to read whether two rows differ.
    return typeof lo === 'number' && typeof hi === 'number' ? `${value.toFixed(3)}±${((hi - lo) / 2).toFixed(3)}` : value.toFixed(3);
  };
  const hidden: string[] = [];
  let kept = [...params];
  for (;;) {
    // validation.accuracy -> val.accuracy: the cells are 11 characters, the header need not be 19.
    const header = ['run', 'id', ...(all ? ['built'] : []), 'config', ...kept, ...metrics.map((m) => m.replace(/^validation\./, 'val.')), 'commit'];
    const body = rows.map((r) => [
      String(r.run),
      typeof r.id === 'string' ? r.id.slice(-8) : '–',
      ...(all ? [r.built_at instanceof Date ? r.built_at.toISOString().slice(5, 16).replace('T', ' ') : '–'] : []),
      show(r.config),
      ...kept.map((p) => show(r[p])),
      ...metrics.map((m) => metric(r, m)),
      typeof r.commit === 'string' ? r.commit.slice(0, 8) : '–',
    ]);
    const text = table(header, body);
    const widest = Math.max(...text.split('\n').map((l) => l.length));
    if (widest <= width || !kept.length) return { text, hidden };
    // What varied between runs of one config goes last: the config column already tells configs apart.
    const drop = kept.map((p) => !changed.includes(p)).lastIndexOf(true);
    hidden.unshift(kept.splice(drop >= 0 ? drop : kept.length - 1, 1)[0]!);
  }
}

const csvRow = (row: Record<string, unknown>) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, v instanceof Date ? v.toISOString() : v]));

function forget(store: ArtifactStore, ref: string): void {
  const record = findRecord(store, ref);
  if (!record) throw new UserError(`runs --remove ${ref}: no run record matches (make runs ARGS=--all lists them)`);
  if (latestRecords(store).get(record.name)?.id === record.id) {
    throw new UserError(`runs --remove ${record.id}: it is the latest build of run ${record.name} (runs/${record.name} points at it): \`make clean\` with its config forgets the run and its records`);
  }
  removeRecord(store, record.id);
  info(`runs: forgot ${record.id} (${record.name}); \`make gc\` removes the artifacts nothing else keeps`);
}
