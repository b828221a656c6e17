/**
 * runs: every run in the store as one table (as `dvc exp show`): the settings that differ between
 * runs as columns, key metrics, when and by which commit. Printed, and written as
 * <artifacts>/runs.parquet and runs.csv for pandas, DuckDB or a spreadsheet.
 *
 *   make runs
 */
import { join, resolve } from 'node:path';
import { toCsv } from '../pipeline/csv.js';
import { runMain } from '../pipeline/errors.js';
import { parseArgs } from '../pipeline/cli.js';
import { info } from '../pipeline/log.js';
import { ArtifactStore, writeFileAtomically } from '../pipeline/artifacts/store.js';
import { writeParquet } from '../pipeline/parquet/index.js';
import { table } from '../pipeline/compare/index.js';
import { configName, runsTable } from '../pipeline/compare/runs.js';

runMain(async () => {
  const args = await parseArgs('runs', 'Every run in the store as one table.');
  const store = new ArtifactStore(resolve(args.artifacts));
  const { rows, params, schema } = await runsTable(store);
  if (!rows.length) {
    info(`runs: no runs in ${store.root}/runs yet (make all makes one)`);
    return;
  }
  const show = (v: unknown) => (v === null || v === undefined ? '–' : typeof v === 'number' ? String(Number(v.toPrecision(4))) : String(v));
  const metrics = Object.keys(schema).filter((k) => /^(validation|test)\./.test(k));
  const header = ['run', 'config', ...params, ...metrics, 'commit'];
  process.stdout.write(
    `${table(header, rows.map((r) => [String(r.run), configName(r.config), ...params.map((p) => show(r[p])), ...metrics.map((m) => show(r[m])), show(r.commit).slice(0, 12)]))}\n`,
  );
  for (const row of rows.filter((r) => typeof r.note === 'string' && r.note !== 'not evaluated')) info(`runs: ${row.run}: ${row.note}`);
  await writeParquet(join(store.root, 'runs.parquet'), schema, rows);
  writeFileAtomically(join(store.root, 'runs.csv'), toCsv(rows, Object.keys(schema)));
  info(`runs: ${rows.length} runs, ${params.length} setting(s) that differ -> ${join(args.artifacts, 'runs.parquet')}, ${join(args.artifacts, 'runs.csv')}`);
});
