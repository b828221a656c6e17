import { existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { readParquet, writeParquet, type TableSchema } from '../parquet/index.js';
import { getPath, loadConfig, parseKeyPath, type Config } from '../config/index.js';
import { METRICS, pairedRows, parseMetricRef, readIntervals, readMetrics, type MetricName, type MetricSplit } from '../compare/metrics.js';
import { INTERVAL_METRICS, pairedDifference, type IntervalMetric } from '../metrics/bootstrap.js';
import { readPredictions, type PredictionRow } from '../evaluate/artifact.js';
import { writeFileAtomically, type ArtifactStore, type Manifest } from '../artifacts/store.js';
import { delta, escapeHtml, figure, fixed, page, section } from '../report/html.js';
import { renderChart } from '../report/charts.js';
import type { Sweep } from './file.js';
import type { SweepRun } from './run.js';

/**
 * The sweep's leaderboard: every variant ranked by the sweep's metric, with what it changed
 * relative to the base config, its validation and test metrics, and its training time.
 * Written as leaderboard.parquet (for pandas/DuckDB), leaderboard.html (the report's style) and
 * leaderboard.md (for CI job summaries), under artifacts/sweeps/<name>/.
 */

export interface LeaderboardRow {
  rank: number | null;
  run: string;
  status: string;
  error: string | null;
  changes: string;
  metric: string;
  value: number | null;
  [column: string]: unknown;
}

const SHOWN: [MetricSplit, MetricName][] = [
  ['validation', 'accuracy'],
  ['validation', 'macro_f1'],
  ['test', 'accuracy'],
  ['test', 'macro_f1'],
  ['test', 'weighted_f1'],
  ['test', 'top_k_accuracy'],
  ['test', 'log_loss'],
];

/** The settings the sweep varies: every key any variant overrides, in the order they first appear. */
export function sweptParams(outcome: SweepRun): string[] {
  return [...new Set(outcome.results.flatMap((r) => Object.keys(r.overrides)))];
}

/** Each swept setting as a column of its own: numbers stay numbers, anything else is its JSON text. */
function paramColumns(rows: LeaderboardRow[], params: string[]): TableSchema {
  return Object.fromEntries(params.map((p) => [p, { type: rows.every((r) => typeof r[p] === 'number' || r[p] === null) ? ('DOUBLE' as const) : ('UTF8' as const), optional: true }]));
}

export async function leaderboardRows(sweep: Sweep, outcome: SweepRun, store: ArtifactStore, base: Config = loadConfig(sweep.basePath).config): Promise<LeaderboardRow[]> {
  const ref = parseMetricRef(sweep.metric) as { split: MetricSplit; name: MetricName };
  const params = sweptParams(outcome);
  const rows: LeaderboardRow[] = outcome.results.map((r) => {
    const metrics = r.status === 'ok' ? readMetrics(store.keyDir('evaluate', r.keys.evaluate!)) : {};
    const train = r.status === 'ok' ? (store.readManifest('train', r.keys.train!) as Manifest | undefined) : undefined;
    const changes =
      Object.entries(r.overrides)
        .map(([key, value]) => [key, JSON.stringify(getPath(base, parseKeyPath(key, key))) ?? '(unset)', JSON.stringify(value)])
        .filter(([, was, now]) => was !== now)
        .map(([key, was, now]) => `${key}: ${was} -> ${now}`)
        .join('; ') || '(the base config)';
    const row: LeaderboardRow = {
      rank: null,
      run: r.run,
      status: r.status,
      error: r.error ?? null,
      changes,
      metric: sweep.metric,
      value: metrics[ref.split]?.[ref.name] ?? null,
    };
    // The ranking figure's own 95% interval (evaluate's bootstrap over the split's rows).
    const interval = r.status === 'ok' ? readIntervals(store.keyDir('evaluate', r.keys.evaluate!))[ref.split]?.[ref.name] : undefined;
    row.value_low = interval?.[0] ?? null;
    row.value_high = interval?.[1] ?? null;
    for (const param of params) {
      const value = param in r.overrides ? r.overrides[param] : getPath(base, parseKeyPath(param, param));
      row[param] = value === undefined || value === null ? null : typeof value === 'number' ? value : JSON.stringify(value);
    }
    for (const [split, name] of SHOWN) row[`${split}_${name}`] = metrics[split]?.[name] ?? null;
    row.epochs = train?.rows.epochs ?? null;
    row.train_seconds = train?.timings.seconds ?? null;
    row.seconds = Math.round(r.seconds * 10) / 10;
    row.train_key = r.keys.train ?? null;
    row.embed_key = r.keys.embed ?? null;
    row.ingest_key = r.keys.ingest ?? null;
    return row;
  });
  const sign = METRICS[ref.name].higherIsBetter ? -1 : 1;
  rows.sort((a, b) => (a.value === null ? 1 : 0) - (b.value === null ? 1 : 0) || sign * ((a.value ?? 0) - (b.value ?? 0)) || a.run.localeCompare(b.run));
  rows.forEach((row, i) => (row.rank = row.value === null ? null : i + 1));
  await compareWithBest(rows, outcome, ref, store);
  return rows;
}

/**
 * Each variant against the best on the ranking split's rows, by a paired bootstrap of the ranking
 * metric's difference: `within noise` when its 95% interval holds 0 (on 211 validation rows most
 * differences are), `worse` when it does not. Variants scored on other rows are not compared.
 */
async function compareWithBest(rows: LeaderboardRow[], outcome: SweepRun, ref: { split: MetricSplit; name: MetricName }, store: ArtifactStore): Promise<void> {
  const best = rows.find((r) => r.rank === 1);
  const keyOf = (run: string) => outcome.results.find((r) => r.run === run)?.keys.evaluate;
  // The best run's predictions are read once, not once per variant.
  const cache = new Map<string, Promise<PredictionRow[]>>();
  const read = (dir: string, split: MetricSplit) => cache.get(`${dir}:${split}`) ?? cache.set(`${dir}:${split}`, readPredictions(dir, split)).get(`${dir}:${split}`)!;
  for (const row of rows) {
    row.vs_best = null;
    row.vs_best_low = null;
    row.vs_best_high = null;
    if (!best || row.value === null || !INTERVAL_METRICS.includes(ref.name as IntervalMetric)) continue;
    if (row === best) {
      row.vs_best = 'best';
      continue;
    }
    const pair = await pairedRows(store.keyDir('evaluate', keyOf(best.run)!), store.keyDir('evaluate', keyOf(row.run)!), ref.split, read);
    if ('reason' in pair) {
      row.vs_best = 'other rows';
      continue;
    }
    const { difference, interval } = pairedDifference(pair.a, pair.b)[ref.name as IntervalMetric];
    const higherIsBetter = METRICS[ref.name].higherIsBetter;
    [row.vs_best_low, row.vs_best_high] = interval;
    row.vs_best = interval[0] <= 0 && interval[1] >= 0 ? 'within noise' : (difference < 0) === higherIsBetter ? 'worse' : 'better';
  }
}

const SCHEMA: TableSchema = {
  rank: { type: 'INT32', optional: true },
  run: { type: 'UTF8' },
  status: { type: 'UTF8' },
  error: { type: 'UTF8', optional: true },
  changes: { type: 'UTF8' },
  metric: { type: 'UTF8' },
  value: { type: 'DOUBLE', optional: true },
  /** The ranking value's 95% interval (bootstrap over the ranking split's rows). */
  value_low: { type: 'DOUBLE', optional: true },
  value_high: { type: 'DOUBLE', optional: true },
  ...Object.fromEntries(SHOWN.map(([s, n]) => [`${s}_${n}`, { type: 'DOUBLE' as const, optional: true }])),
  epochs: { type: 'INT32', optional: true },
  train_seconds: { type: 'DOUBLE', optional: true },
  seconds: { type: 'DOUBLE' },
  train_key: { type: 'UTF8', optional: true },
  embed_key: { type: 'UTF8', optional: true },
  ingest_key: { type: 'UTF8', optional: true },
  /** Against the best variant on the ranking split's rows: best, within noise, worse or other rows; and the paired 95% interval of the difference (this variant minus the best). */
  vs_best: { type: 'UTF8', optional: true },
  vs_best_low: { type: 'DOUBLE', optional: true },
  vs_best_high: { type: 'DOUBLE', optional: true },
};

export async function writeLeaderboard(sweep: Sweep, outcome: SweepRun, store: ArtifactStore): Promise<{ dir: string; rows: LeaderboardRow[] }> {
  const dir = join(store.root, 'sweeps', sweep.name);
  // The base config once, for the rows' changes and the table's base values.
  const base = loadConfig(sweep.basePath).config;
  const rows = await leaderboardRows(sweep, outcome, store, base);
  // Per process: two sweeps writing at once never share a temporary file.
  const parquetTmp = join(dir, `.leaderboard.parquet.${process.pid}.tmp`);
  rmSync(parquetTmp, { force: true });
  const params = sweptParams(outcome);
  // The parameters first (a pandas user's index), then the table.
  const [first, ...rest] = Object.entries(SCHEMA);
  const schema: TableSchema = { ...Object.fromEntries([first!]), ...paramColumns(rows, params), ...Object.fromEntries(rest) };
  await writeParquet(parquetTmp, schema, rows.map((r) => Object.fromEntries(Object.keys(schema).map((k) => [k, typeof r[k] === 'number' && schema[k]!.type === 'UTF8' ? String(r[k]) : r[k]]))));
  renameSync(parquetTmp, join(dir, 'leaderboard.parquet'));
  writeFileAtomically(join(dir, 'leaderboard.html'), await leaderboardHtml(sweep, outcome, rows, dir, store, base));
  writeFileAtomically(join(dir, 'leaderboard.md'), leaderboardMarkdown(sweep, rows));
  writeFileAtomically(
    join(dir, 'sweep.json'),
    `${JSON.stringify({ sweep: sweep.path, base: sweep.basePath, metric: sweep.metric, builds: outcome.builds, seconds: Math.round(outcome.seconds * 10) / 10, variants: outcome.results.map(({ loaded: _l, ...r }) => r) }, null, 2)}\n`,
  );
  return { dir, rows };
}

/** A setting's value in a few characters: numbers as they are, text unquoted, anything longer cut (the cell's title has it whole). */
function shortValue(value: unknown): string {
  const text = value === undefined ? '(unset)' : typeof value === 'string' ? value : JSON.stringify(value);
  return text.length > 18 ? `${text.slice(0, 17)}…` : text;
}

const cell = (v: unknown) => (typeof v === 'number' ? fixed(v) : v === null || v === undefined ? '–' : escapeHtml(v));

async function leaderboardHtml(sweep: Sweep, outcome: SweepRun, rows: LeaderboardRow[], dir: string, store: ArtifactStore, base: Config): Promise<string> {
  const ref = parseMetricRef(sweep.metric) as { split: MetricSplit; name: MetricName };
  const best = rows.find((r) => r.value !== null)?.value ?? null;
  // The ranking metric has its own column; it is not repeated among the others.
  const shown = SHOWN.filter(([s, n]) => s !== ref.split || n !== ref.name);
  // The metrics first, so that they are in view at 1366 px; then one short column per swept setting.
  const params = sweptParams(outcome);
  const baseValue = (param: string) => getPath(base, parseKeyPath(param, param));
  const paramHead = params
    .map((p) => `<th class="param" title="${escapeHtml(p)}">${escapeHtml(p.split('.').slice(-2).join('.'))}<br><span class="interval">base ${escapeHtml(shortValue(baseValue(p)))}</span></th>`)
    .join('');
  // split above metric: two short lines rather than one long one, so that every metric fits at 1280 px.
  const twoLines = (ref: string) => escapeHtml(ref).replace('.', '<br>');
  const head = `<tr><th>rank</th><th style="text-align:left">run</th><th title="${escapeHtml(sweep.metric)}">${twoLines(sweep.metric)}</th><th>vs best</th>${shown.map(([s, n]) => `<th title="${s}.${n}">${s}<br>${n}</th>`).join('')}${paramHead}<th>epochs</th><th>train s</th></tr>`;
  const paramCells = (r: LeaderboardRow) => {
    const overrides = outcome.results.find((v) => v.run === r.run)?.overrides ?? {};
    return params
      .map((p) => {
        const raw = p in overrides ? overrides[p] : baseValue(p);
        const same = JSON.stringify(raw) === JSON.stringify(baseValue(p));
        return `<td class="param${same ? ' base' : ''}" title="${escapeHtml(`${p} = ${JSON.stringify(raw)}`)}">${escapeHtml(shortValue(raw))}</td>`;
      })
      .join('');
  };
  const body = rows
    .map((r) => {
      const report = r.status === 'ok' && sweep.report ? relative(dir, join(store.root, 'runs', r.run, 'report', 'report.html')) : null;
      const name = report ? `<a href="${escapeHtml(report)}">${escapeHtml(r.run)}</a>` : escapeHtml(r.run);
      const gap = r.value !== null && best !== null ? delta(METRICS[ref.name].higherIsBetter ? r.value - best : best - r.value) : '–';
      const paired = r.vs_best_low !== null ? `<br><span class="interval">${fixed(r.vs_best_low as number)} to ${fixed(r.vs_best_high as number)}</span>` : '';
      const versus = r.vs_best && r.vs_best !== 'best' ? `${gap} <span class="verdict">${escapeHtml(r.vs_best)}</span>${paired}` : gap;
      if (r.status !== 'ok') return `<tr class="worst" data-run="${escapeHtml(r.run)}"><td>–</td><td style="text-align:left">${name}</td><td colspan="${shown.length + 2}" style="text-align:left">failed: ${escapeHtml(r.error)}</td>${paramCells(r)}<td></td><td></td></tr>`;
      return (
        `<tr class="${r.rank === 1 ? 'best' : ''}" data-run="${escapeHtml(r.run)}"><td>${r.rank ?? '–'}</td><td style="text-align:left">${name}</td><td><b>${cell(r.value)}</b>${r.value_low !== null && r.value_low !== undefined ? `<br><span class="interval">${fixed(r.value_low as number)}-${fixed(r.value_high as number)}</span>` : ''}</td><td>${versus}</td>` +
        `${shown.map(([s, n]) => `<td>${cell(r[`${s}_${n}`])}</td>`).join('')}${paramCells(r)}<td>${cell(r.epochs === null ? null : String(r.epochs))}</td><td>${r.train_seconds === null ? '–' : fixed(r.train_seconds as number, 1)}</td></tr>`
      );
    })
    .join('');
  const builds = Object.entries(outcome.builds).map(([stage, n]) => `${stage} ${n}`).join(', ') || 'nothing (all reused)';
  return page({
    title: `Sweep ${sweep.name}`,
    subtitle: `${rows.length} variants of ${escapeHtml(relative(process.cwd(), sweep.basePath))} ranked by <b>${escapeHtml(sweep.metric)}</b> · ${outcome.seconds.toFixed(0)} s · built: ${escapeHtml(builds)}`,
    nav: [['leaderboard', 'Leaderboard']],
    body:
      section(
        'leaderboard',
        'Leaderboard',
        `<div class="scroll"><table class="leaderboard"><thead>${head}</thead><tbody>${body}</tbody></table></div>`,
        `Ranked by ${escapeHtml(sweep.metric)}; the metrics come first, then each swept setting (grey: the base config's value; hover for the full key and value).${sweep.report ? ' Run names open their reports.' : ' With <code>report: true</code> in the sweep file, run names link to their reports.'}`,
      ) + (await paramCharts(sweep, rows, params, store)),
  });
}

/**
 * How far the ranking metric moves with the classifier's seed alone, from a seeds sweep
 * (configs/sweeps/seeds.yaml, or `make sweep SWEEP=configs/sweeps/seeds.yaml BASE=...`) over the
 * same rows and vectors as this sweep's variants (the same ingest and embed artifacts: same data,
 * split and featurizer); noise measured on other data says nothing about this one, so none is
 * drawn then.
 */
async function seedNoise(sweep: Sweep, rows: LeaderboardRow[], store: ArtifactStore): Promise<{ std: number; seeds: number; sweep: string } | undefined> {
  const sweeps = join(store.root, 'sweeps');
  if (sweep.name.startsWith('seeds') || !existsSync(sweeps)) return undefined;
  // The same vectors and the same rows to score them on: the ingest artifact (data and split) and the embed one.
  const upstream = (r: Record<string, unknown>) => `${r.ingest_key}/${r.embed_key}`;
  const ours = new Set(rows.filter((r) => r.embed_key && r.ingest_key).map(upstream));
  for (const name of readdirSync(sweeps).filter((n) => n.startsWith('seeds')).sort()) {
    const path = join(sweeps, name, 'leaderboard.parquet');
    if (!existsSync(path)) continue;
    const seeds = await readParquet<{ metric: string; value: number | null; embed_key: string | null; ingest_key?: string | null }>(path);
    const values = seeds.filter((r) => r.metric === sweep.metric && r.value !== null && ours.has(upstream(r))).map((r) => r.value!);
    if (values.length < 2) continue;
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    return { std: Math.sqrt(values.reduce((a, v) => a + (v - mean) ** 2, 0) / (values.length - 1)), seeds: values.length, sweep: name };
  }
  return undefined;
}

/** The ranking metric against each swept setting: one small chart per setting, with the seed noise as error bars when it is known. */
async function paramCharts(sweep: Sweep, rows: LeaderboardRow[], params: string[], store: ArtifactStore): Promise<string> {
  const scored = rows.filter((r) => r.value !== null);
  if (!scored.length || !params.length) return '';
  // A list of variants changes settings together: a chart per setting would credit one with what another did.
  if (sweep.kind === 'variants') {
    return section('by-param', `${sweep.metric} by swept setting`, '<p>No per-setting charts: this sweep is a list of variants, which change settings together, so a chart of one setting would mix in the others. A <code>grid:</code> sweep varies each setting across all values of the others and gets one chart per setting.</p>');
  }
  const noise = await seedNoise(sweep, rows, store);
  const figures = [];
  for (const param of params) {
    const numeric = scored.every((r) => typeof r[param] === 'number');
    const values = scored.map((r) => ({ x: r[param], y: r.value, low: r.value! - (noise?.std ?? 0), high: r.value! + (noise?.std ?? 0), hover: `${r.run}: ${param} = ${r[param]}, ${sweep.metric} ${fixed(r.value)}` }));
    const x = { field: 'x', type: numeric ? ('quantitative' as const) : ('nominal' as const), title: param, ...(numeric ? { scale: { zero: false } } : {}) };
    const spec = {
      width: 240,
      height: 170,
      title: param,
      data: { values },
      layer: [
        ...(noise ? [{ mark: { type: 'rule' as const, color: '#adb5bd', strokeWidth: 2 }, encoding: { x, y: { field: 'low', type: 'quantitative' as const, title: sweep.metric, scale: { zero: false } }, y2: { field: 'high' } } }] : []),
        {
          mark: { type: 'point' as const, filled: true, size: 60 },
          encoding: { x, y: { field: 'y', type: 'quantitative' as const, title: sweep.metric, scale: { zero: false } }, description: { field: 'hover' } },
        },
      ],
    };
    figures.push(figure(`param-${param}`, await renderChart(spec as never)));
  }
  const note = noise
    ? `One point per variant; the grey bars are ± one standard deviation of ${escapeHtml(sweep.metric)} over ${noise.seeds} classifier seeds on the same vectors (sweep <code>${escapeHtml(noise.sweep)}</code>): classifier-seed noise only; the leaderboard's "vs best" interval covers the rows' noise.`
    : `One point per variant. Seed noise on these vectors: <code>make sweep SWEEP=configs/sweeps/seeds.yaml BASE=${escapeHtml(relative(process.cwd(), sweep.basePath))}</code> draws it here as error bars.`;
  return section('by-param', `${sweep.metric} by swept setting`, `<div class="charts">${figures.join('')}</div>`, note);
}

function leaderboardMarkdown(sweep: Sweep, rows: LeaderboardRow[]): string {
  const lines = [
    `## Sweep \`${sweep.name}\`: ${rows.length} variants ranked by ${sweep.metric}`,
    '',
    `| rank | run | ${sweep.metric} | vs best (95% paired interval) | test accuracy | test macro-F1 | changes |`,
    '|---:|---|---:|---|---:|---:|---|',
    ...rows.map((r) =>
      r.status === 'ok'
        ? `| ${r.rank ?? '–'} | ${r.run} | ${r.value === null ? '–' : r.value.toFixed(3)} | ${r.vs_best ?? '–'}${r.vs_best_low !== null && r.vs_best_low !== undefined ? ` (${fixed(r.vs_best_low as number)} to ${fixed(r.vs_best_high as number)})` : ''} | ${fixed(r.test_accuracy as number | null)} | ${fixed(r.test_macro_f1 as number | null)} | ${r.changes} |`
        : `| – | ${r.run} | failed | | | | ${r.changes}: ${r.error} |`,
    ),
  ];
  return `${lines.join('\n')}\n`;
}
