import YAML from 'yaml';
import { z } from 'zod';
import { UserError } from '../errors.js';
import { formatIssues, makeCommand, readYamlFile, type LoadedConfig } from '../config/index.js';
import { listRuns, readRun, runPointers } from '../artifacts/runs.js';
import { findRecord } from '../artifacts/records.js';
import { RUN_NAME } from '../config/schema.js';
import { planPipeline } from '../artifacts/plan.js';
import { STAGES } from '../dag.js';
import { writeFileAtomically, type ArtifactStore } from '../artifacts/store.js';
import { improvement, METRICS, METRIC_NAMES, pairedRows, readIntervals, readMetrics, SPLITS, type MetricName, type MetricSplit } from './metrics.js';
import { BOOTSTRAP_SAMPLES, mcnemar, pairedDifference, type IntervalMetric } from '../metrics/bootstrap.js';

/**
 * `diff RUN_A RUN_B` (params and metrics side by side, as `dvc params diff` and
 * `dvc metrics diff` show them) and the quality gate (a run's metrics against a committed
 * baseline with a tolerance per metric).
 */

/** `{a: {b: [1, 2]}}` -> `{'a.b[0]': 1, 'a.b[1]': 2}`. */
export function flatten(value: unknown, prefix = '', out: Record<string, unknown> = {}): Record<string, unknown> {
  if (Array.isArray(value)) {
    if (!value.length) out[prefix] = [];
    value.forEach((v, i) => flatten(v, `${prefix}[${i}]`, out));
  } else if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value);
    if (!entries.length && prefix) out[prefix] = {};
    for (const [k, v] of entries) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else {
    out[prefix] = value;
  }
  return out;
}

interface RunView {
  name: string;
  params: Record<string, unknown>;
  metrics: ReturnType<typeof readMetrics>;
  /** The evaluate artifact's folder, when the run has been evaluated. */
  evaluateDir?: string;
}

/** A run by name (the latest build, where `runs/<name>` points) or a run record by its id or a unique part of it. */
async function openRun(store: ArtifactStore, name: string): Promise<RunView> {
  const recorded = RUN_NAME.test(name) ? readRun(store, name) : null;
  const record = recorded ? null : findRecord(store, name);
  if (!recorded && !record) {
    const runs = listRuns(store);
    throw new UserError(`diff: no run named "${name}" in ${store.root}/runs and no run record with that id (${runs.length ? `runs: ${runs.join(', ')}; make runs ALL=1 lists the records` : 'none yet'})`);
  }
  const evaluate = recorded ? runPointers(store, name).evaluate : record!.keys.evaluate;
  const { run: _run, ...params } = (recorded ? recorded.config : record!.config) as Record<string, unknown>;
  const dir = evaluate ? (await store.verified('evaluate', evaluate)).dir : undefined;
  return { name, params: flatten(params), metrics: dir ? readMetrics(dir) : {}, evaluateDir: dir };
}

const show = (v: unknown) => (v === undefined ? '–' : typeof v === 'number' ? String(Number(v.toPrecision(6))) : JSON.stringify(v).replace(/^"|"$/g, ''));

export interface DiffResult {
  params: { key: string; a: unknown; b: unknown }[];
  metrics: { split: MetricSplit; metric: MetricName; a: number | null; b: number | null; change: number | null; interval: [number, number] | null; verdict: string }[];
  /** Per split: whether the two runs were scored on the same rows, and McNemar's test of their accuracy there. */
  paired: Partial<Record<MetricSplit, { same_rows: boolean; reason?: string; mcnemar?: { only_a: number; only_b: number; p_value: number } }>>;
}

export async function diffRuns(store: ArtifactStore, nameA: string, nameB: string, all = false): Promise<DiffResult> {
  const a = await openRun(store, nameA);
  const b = await openRun(store, nameB);
  const keys = [...new Set([...Object.keys(a.params), ...Object.keys(b.params)])];
  const params = keys.filter((k) => all || JSON.stringify(a.params[k]) !== JSON.stringify(b.params[k])).map((key) => ({ key, a: a.params[key], b: b.params[key] }));
  const metrics: DiffResult['metrics'] = [];
  const paired: DiffResult['paired'] = {};
  for (const split of SPLITS) {
    if (!a.metrics[split] && !b.metrics[split]) continue;
    const pair = a.metrics[split] && b.metrics[split] ? await pairedOn(a, b, split) : undefined;
    if (pair) paired[split] = pair.summary;
    for (const metric of METRIC_NAMES) {
      const va = a.metrics[split]?.[metric] ?? null;
      const vb = b.metrics[split]?.[metric] ?? null;
      const change = va !== null && vb !== null ? vb - va : null;
      const interval = pair?.differences?.[metric as IntervalMetric]?.interval ?? null;
      const unpaired = pair && !pair.differences && change !== null ? ` (different rows)` : '';
      metrics.push({ split, metric, a: va, b: vb, change, interval, verdict: pair?.differences ? pairedVerdict(metric, change, interval) : `${verdict(metric, change)}${unpaired}` });
    }
  }
  return { params, metrics, paired };
}

/** The paired bootstrap of B minus A on one split, when both runs scored the same rows; otherwise why not. */
async function pairedOn(a: RunView, b: RunView, split: MetricSplit) {
  const rows = await pairedRows(a.evaluateDir!, b.evaluateDir!, split);
  if ('reason' in rows) return { summary: { same_rows: false, reason: rows.reason } };
  return { summary: { same_rows: true, mcnemar: mcnemar(rows.a, rows.b) }, differences: pairedDifference(rows.a, rows.b) };
}

/** better or worse only when the paired 95% interval of the difference excludes 0; otherwise within noise. */
function pairedVerdict(metric: MetricName, change: number | null, interval: [number, number] | null): string {
  if (change === null || Math.abs(change) < 5e-5) return verdict(metric, change);
  if (!interval) return `${verdict(metric, change)} (no paired test)`;
  if (interval[0] <= 0 && interval[1] >= 0) return 'within noise';
  return verdict(metric, change);
}

/** +0.0123 / -0.0123, and 0 for a change too small to print. */
const signed = (x: number | null) => (x === null ? '–' : Math.abs(x) < 5e-5 ? '0' : `${x > 0 ? '+' : ''}${x.toFixed(4)}`);

/** Aligned plain-text columns, the first left-aligned and the rest right-aligned. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** Whether a change is an improvement, by the metric's direction (log loss and ECE: lower is better). */
export function verdict(metric: MetricName, change: number | null): string {
  if (change === null) return '–';
  if (Math.abs(change) < 5e-5) return 'same';
  return change > 0 === METRICS[metric].higherIsBetter ? 'better' : 'worse';
}

export function formatDiff(result: DiffResult, nameA: string, nameB: string): string {
  const params = result.params.length ? table(['param', nameA, nameB], result.params.map((p) => [p.key, show(p.a), show(p.b)])) : 'params: identical';
  const metrics = result.metrics.length
    ? table(
        ['metric', nameA, nameB, 'change', '95% interval of the change', `${nameB} is`],
        result.metrics.map((m) => [`${m.split}.${m.metric}`, m.a === null ? '–' : m.a.toFixed(4), m.b === null ? '–' : m.b.toFixed(4), signed(m.change), m.interval ? `${signed(m.interval[0])} to ${signed(m.interval[1])}` : '–', m.verdict]),
      )
    : 'metrics: neither run has been evaluated';
  const notes = Object.entries(result.paired).map(([split, p]) =>
    p!.same_rows
      ? `${split}: same rows, paired bootstrap (${BOOTSTRAP_SAMPLES} resamples); McNemar on accuracy: ${p!.mcnemar!.only_a} rows only ${nameA} gets right, ${p!.mcnemar!.only_b} only ${nameB}, p = ${p!.mcnemar!.p_value.toPrecision(2)}`
      : `${split}: not compared row by row: ${p!.reason}; the changes are bare differences`,
  );
  return `${params}\n\n${metrics}\n${notes.length ? `\n${notes.join('\n')}\n` : ''}`;
}

// ---- the quality gate ----

const baselineSchema = z.strictObject({
  split: z.enum(SPLITS).default('test'),
  metrics: z
    .partialRecord(
      z.enum(METRIC_NAMES as [MetricName, ...MetricName[]]),
      z.strictObject({
        value: z.number(),
        /** How far the run may fall behind `value` (in the metric's worse direction) and still pass. */
        tolerance: z.number().min(0),
        /**
         * `tolerance` (default): the run's figure must be within `tolerance` of `value`.
         * `not_significantly_worse`: it fails only when its whole 95% interval lies beyond
         * `value - tolerance`, so that a drop the validation noise explains does not block a retrain.
         */
        rule: z.enum(['tolerance', 'not_significantly_worse']).default('tolerance'),
      }),
    )
    .refine((m) => Object.keys(m).length > 0, 'expected at least one metric')
    .refine((m) => !m.ece || m.ece.rule !== 'not_significantly_worse', 'ece has no interval: its rule can only be tolerance'),
});

export type Baseline = z.output<typeof baselineSchema>;

/** A gate baseline; `updateHint` is the command that writes one for the run (said when it is missing). */
export function readBaseline(path: string, updateHint = 'make gate-update CONFIG=<your config>'): Baseline {
  const parsed = baselineSchema.safeParse(readYamlFile(path, 'gate baseline', `; create it from a run you trust with \`${updateHint}\` and commit it`) ?? {}, { reportInput: true });
  if (!parsed.success) throw new UserError(`${path}: ${formatIssues(parsed.error.issues)}`);
  return parsed.data;
}

export interface GateRow {
  metric: MetricName;
  baseline: number;
  tolerance: number;
  rule: 'tolerance' | 'not_significantly_worse';
  run: number;
  /** The run's 95% interval, for the not_significantly_worse rule. */
  interval?: [number, number];
  change: number;
  ok: boolean;
}

/** The metrics of the evaluate artifact that `loaded` builds (not whatever ran last). */
export async function currentMetrics(store: ArtifactStore, loaded: LoadedConfig): Promise<{ key: string; metrics: ReturnType<typeof readMetrics>; intervals: ReturnType<typeof readIntervals> }> {
  const plan = await planPipeline(STAGES, loaded, store, 'evaluate');
  const key = plan.stages.get('evaluate')?.key;
  if (!key || !store.readManifest('evaluate', key)) throw new UserError(`gate: ${loaded.path} has not been evaluated (${key ? `evaluate ${key} is not built` : 'what evaluate reads is not built yet'}); run \`${makeCommand('evaluate', loaded)}\` first`);
  // An edited metrics.json must not pass the gate: the file is checked against its manifest first.
  const { dir } = await store.verified('evaluate', key);
  return { key, metrics: readMetrics(dir), intervals: readIntervals(dir) };
}

export function checkGate(baseline: Baseline, metrics: ReturnType<typeof readMetrics>, baselinePath: string, intervals: ReturnType<typeof readIntervals> = {}): GateRow[] {
  const split = metrics[baseline.split];
  if (!split) throw new UserError(`gate: the run has no ${baseline.split} metrics (the split has no genres), but ${baselinePath} checks that split`);
  return Object.entries(baseline.metrics).map(([name, entry]) => {
    const { value, tolerance, rule } = entry!;
    const metric = name as MetricName;
    const run = split[metric];
    const change = run - value;
    if (rule === 'not_significantly_worse') {
      const interval = intervals[baseline.split]?.[metric];
      if (!interval) throw new UserError(`${baselinePath}: metrics.${metric}.rule is not_significantly_worse, but the run's metrics.json has no interval for ${baseline.split}.${metric} (rebuild evaluate: make evaluate FORCE=evaluate)`);
      // The interval's best end: even it falls short of the threshold only when the drop is beyond noise.
      const bestEnd = METRICS[metric].higherIsBetter ? interval[1] : interval[0];
      return { metric, baseline: value, tolerance, rule, run, interval, change, ok: improvement(metric, value, bestEnd) >= -tolerance - 1e-12 };
    }
    return { metric, baseline: value, tolerance, rule, run, change, ok: improvement(metric, value, run) >= -tolerance - 1e-12 };
  });
}

export function formatGate(rows: GateRow[], split: string): string {
  const status = (r: GateRow) => {
    if (r.rule !== 'not_significantly_worse') return r.ok ? 'ok' : 'REGRESSION';
    const beyond = improvement(r.metric, r.baseline, r.run) < -r.tolerance - 1e-12;
    return r.ok ? (beyond ? 'ok (worse, within noise)' : 'ok') : 'REGRESSION (beyond noise)';
  };
  return table(
    ['metric', 'baseline', 'tolerance', 'run', 'run 95% interval', 'change', 'status'],
    rows.map((r) => [
      `${split}.${r.metric}${METRICS[r.metric].higherIsBetter ? '' : ' (lower is better)'}`,
      r.baseline.toFixed(4),
      `${r.tolerance.toFixed(4)}${r.rule === 'not_significantly_worse' ? ' (significance)' : ''}`,
      r.run.toFixed(4),
      r.interval ? `${r.interval[0].toFixed(4)} to ${r.interval[1].toFixed(4)}` : '–',
      signed(r.change),
      status(r),
    ]),
  );
}

/** Writes the run's figures as the new baseline, keeping existing tolerances (default 0.02). */
/**
 * Rewrites the baseline from the run. A baseline that would get worse (a metric moving in its
 * worse direction) is refused unless `allowWorse`: lowering the bar has to be a decision, made
 * with the list of what moves in front of you, not a side effect of rerunning the command.
 */
export function writeBaseline(path: string, metrics: ReturnType<typeof readMetrics>, configPath: string, previous?: Baseline, allowWorse = false): Baseline {
  const split = previous?.split ?? 'test';
  const figures = metrics[split];
  if (!figures) throw new UserError(`gate --update: the run has no ${split} metrics to record`);
  const names = previous ? (Object.keys(previous.metrics) as MetricName[]) : (['accuracy', 'macro_f1', 'weighted_f1', 'top_k_accuracy', 'log_loss'] as MetricName[]);
  const worse = previous
    ? names.filter((n) => {
        const before = previous.metrics[n]!.value;
        const after = Number(figures[n].toFixed(4));
        return METRICS[n].higherIsBetter ? after < before : after > before;
      })
    : [];
  if (worse.length && !allowWorse) {
    const list = worse.map((n) => `${split}.${n} ${previous!.metrics[n]!.value} -> ${figures[n].toFixed(4)}`).join(', ');
    throw new UserError(`gate --update: this would lower the baseline in ${path} (${list}); nothing was written. If that is intended, rerun with ALLOW_WORSE=1 (--allow-worse)`);
  }
  const baseline: Baseline = {
    split,
    metrics: Object.fromEntries(
      names.map((n) => [n, { value: Number(figures[n].toFixed(4)), tolerance: previous?.metrics[n]?.tolerance ?? (n === 'log_loss' ? 0.05 : 0.02), rule: previous?.metrics[n]?.rule ?? 'tolerance' }]),
    ) as Baseline['metrics'],
  };
  const header = `# Quality gate for ${configPath}: \`make gate\` fails when a ${split} metric is worse than its value by more\n# than its tolerance. Rewritten by \`make gate-update\` from the current run; review and commit it.\n`;
  // The default rule is left out of the file, as a person would write it.
  const written = { split, metrics: Object.fromEntries(Object.entries(baseline.metrics).map(([n, e]) => [n, e!.rule === 'tolerance' ? { value: e!.value, tolerance: e!.tolerance } : e])) };
  writeFileAtomically(path, header + YAML.stringify(written));
  return baseline;
}
