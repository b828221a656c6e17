import { basename, dirname, extname, resolve } from 'node:path';
import { z } from 'zod';
import { UserError } from '../errors.js';
import { Rng } from '../random.js';
import { formatIssues, parseKeyPath, readYamlFile } from '../config/index.js';
import { parseMetricRef } from '../compare/metrics.js';

/**
 * A sweep file: a base config and the values to try for dotted keys, as a grid, a list of
 * variants, or seeded random draws.
 *
 *   base: ../default.yaml
 *   metric: validation.macro_f1        # what the leaderboard ranks by
 *   max_parallel: 2
 *   grid:
 *     train.layers[0].units: [256, 512]
 *     train.optimizer.lr: [1.0e-3, 3.0e-4]
 */

const choices = z.array(z.unknown()).min(1, 'expected at least one value');
const range = z.tuple([z.number(), z.number()]).refine(([lo, hi]) => lo < hi, 'expected [low, high] with low < high');
const dimension = z.union([
  choices,
  z.strictObject({ uniform: range }),
  z.strictObject({ log_uniform: range.refine(([lo]) => lo > 0, 'log_uniform needs a positive low end') }),
  z.strictObject({ int: range }),
]);

export const sweepSchema = z
  .strictObject({
    /** The config every variant starts from, relative to the sweep file. */
    base: z.string().min(1),
    /** Names the leaderboard folder and prefixes the variants' runs (default: the file's name). */
    name: z.string().regex(/^[A-Za-z0-9._-]+$/, 'expected letters, digits, ".", "_" or "-"').optional(),
    metric: z.string().default('validation.macro_f1'),
    max_parallel: z.number().int().min(1).max(32).default(2),
    /** Also build each variant's report.html (the leaderboard then links them); off by default, as it costs a second or two per variant. */
    report: z.boolean().default(false),
    grid: z.record(z.string(), choices).optional(),
    variants: z.array(z.record(z.string(), z.unknown())).min(1).optional(),
    random: z
      .strictObject({
        draws: z.number().int().min(1).max(1000),
        seed: z.number().int().min(0).default(0),
        space: z.record(z.string(), dimension),
      })
      .optional(),
  })
  .check((ctx) => {
    const given = (['grid', 'variants', 'random'] as const).filter((k) => ctx.value[k] !== undefined);
    if (given.length !== 1) ctx.issues.push({ code: 'custom', path: [], message: `expected exactly one of grid, variants or random (found ${given.length ? given.join(', ') : 'none'})`, input: ctx.value });
    const metric = parseMetricRef(ctx.value.metric);
    if (typeof metric === 'string') ctx.issues.push({ code: 'custom', path: ['metric'], message: metric, input: ctx.value.metric });
  });

export interface Variant {
  /** `<sweep>-01`: the run folder of this variant. */
  run: string;
  /** Dotted key -> value, in file order. */
  overrides: Record<string, unknown>;
}

export interface Sweep {
  name: string;
  path: string;
  basePath: string;
  metric: string;
  maxParallel: number;
  report: boolean;
  /** How the variants were made: a grid varies each setting across the others; a list changes settings together. */
  kind: 'grid' | 'variants' | 'random';
  variants: Variant[];
}

/**
 * Reads and expands a sweep file; any mistake is one error naming the file and field. `base`
 * (make sweep BASE=...) puts the same variants on another config, e.g. the seeds sweep on any
 * config: its runs and leaderboard are named `<sweep>-<config>` so that they sit beside the
 * file's own.
 */
export function loadSweep(path: string, base?: string): Sweep {
  const raw = readYamlFile(path, 'sweep file');
  const parsed = sweepSchema.safeParse(raw ?? {}, { reportInput: true });
  if (!parsed.success) throw new UserError(`${path}: ${formatIssues(parsed.error.issues)}`);
  const sweep = parsed.data;
  const name = `${sweep.name ?? basename(path, extname(path))}${base ? `-${basename(base, extname(base))}` : ''}`;
  const keys = Object.keys(sweep.grid ?? sweep.random?.space ?? Object.assign({}, ...(sweep.variants ?? [])));
  for (const key of keys) parseKeyPath(key, `${path}: key "${key}"`);
  let sets: Record<string, unknown>[];
  if (sweep.grid) {
    sets = Object.entries(sweep.grid).reduce<Record<string, unknown>[]>((acc, [key, values]) => acc.flatMap((set) => values.map((v) => ({ ...set, [key]: v }))), [{}]);
  } else if (sweep.variants) {
    sets = sweep.variants;
  } else {
    const { draws, seed, space } = sweep.random!;
    const rng = new Rng(seed, 'sweep.random');
    sets = Array.from({ length: draws }, () =>
      Object.fromEntries(
        Object.entries(space).map(([key, d]) => {
          if (Array.isArray(d)) return [key, rng.pick(d)];
          if ('uniform' in d) return [key, roundValue(d.uniform[0] + rng.next() * (d.uniform[1] - d.uniform[0]))];
          if ('log_uniform' in d) return [key, roundValue(Math.exp(Math.log(d.log_uniform[0]) + rng.next() * (Math.log(d.log_uniform[1]) - Math.log(d.log_uniform[0]))))];
          return [key, d.int[0] + rng.int(d.int[1] - d.int[0] + 1)];
        }),
      ),
    );
  }
  const width = Math.max(2, String(sets.length).length);
  return {
    name,
    path,
    basePath: base ? resolve(base) : resolve(dirname(path), sweep.base),
    metric: sweep.metric,
    maxParallel: sweep.max_parallel,
    report: sweep.report,
    kind: sweep.grid ? 'grid' : sweep.variants ? 'variants' : 'random',
    variants: sets.map((overrides, i) => ({ run: `${name}-${String(i + 1).padStart(width, '0')}`, overrides })),
  };
}

/** Four significant digits: a learning rate of 0.000312 reads better than 0.00031187954. */
const roundValue = (x: number) => Number(x.toPrecision(4));

/** `key=value` overrides for a variant; values travel as JSON, which the config loader reads as YAML. */
export function overrideStrings(overrides: Record<string, unknown>): string[] {
  return Object.entries(overrides).map(([key, value]) => `${key}=${JSON.stringify(value)}`);
}

export const overrideArgs = (overrides: Record<string, unknown>) => overrideStrings(overrides).flatMap((o) => ['--set', o]);

export function describeOverrides(overrides: Record<string, unknown>): string {
  return overrideStrings(overrides).join(' ');
}
