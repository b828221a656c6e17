import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import pLimit from 'p-limit';
import { UserError } from '../errors.js';
import { formatSeconds, info } from '../log.js';
import { loadConfig, type LoadedConfig } from '../config/index.js';
import { neededFor, planPipeline, providersOf } from '../artifacts/plan.js';
import { recordRun } from '../artifacts/runs.js';
import type { ArtifactStore } from '../artifacts/store.js';
import type { StageOutcome } from '../stage-types.js';
import { STAGES } from '../dag.js';
import { describeOverrides, overrideArgs, overrideStrings, type Sweep, type Variant } from './file.js';

/**
 * Runs every variant of a sweep. The upstream of each variant (everything up to the vectors
 * evaluate reads: ingest, tokenize, embed) is built one variant at a time, so variants that agree
 * on it (they differ only in train.* and later) share one build: the first builds, the others
 * find it up to date and start no process. Then train -> evaluate -> report run for up to
 * `max_parallel` variants side by side, each as the stage programs a user would run. A variant
 * that fails is recorded with its error; the others go on.
 */

export interface VariantResult extends Variant {
  status: 'ok' | 'failed';
  error?: string;
  seconds: number;
  log: string;
  /** Stage -> artifact key the variant used. */
  keys: Record<string, string>;
  loaded?: LoadedConfig;
}

export interface SweepRun {
  results: VariantResult[];
  /** Stage -> how many times it was built (not reused) during this sweep. */
  builds: Record<string, number>;
  seconds: number;
}

/** Where each stage's program is: the sweep runs stages as a user would, and only the program layer knows where they are. */
export type StagePrograms = (stage: string) => string;

/** The variant's stages: the shared upstream (through the stage that offers evaluate's vectors) and the rest. */
function stagesOf(loaded: LoadedConfig): { upstream: string[]; downstream: string[] } {
  const needed = neededFor(STAGES, STAGES[STAGES.length - 1]!.name, loaded.config);
  const upstream = neededFor(STAGES, providersOf(STAGES, 'evaluate', loaded.config).vectors!.stage, loaded.config);
  return { upstream, downstream: needed.filter((s) => !upstream.includes(s)) };
}

/**
 * Runs one stage program, as a user would; its output goes to the variant's log. Resolves to
 * whether it built (the runner's `--result-json`), or throws with the program's error line.
 */
function runStageProgram(program: string, stage: string, sweep: Sweep, variant: Variant, artifacts: string, log: string): Promise<boolean> {
  const resultFile = join(dirname(log), `.${variant.run}.${stage}.${process.pid}.result.json`);
  return new Promise((resolve, reject) => {
    const out = createWriteStream(log, { flags: 'a' });
    const args = ['--config', sweep.basePath, '--artifacts', artifacts, '--set', `run=${variant.run}`, ...overrideArgs(variant.overrides), '--result-json', resultFile];
    const child = spawn(process.execPath, [program, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CI: '1' },
    });
    let stderr = '';
    // The variant's stage as it goes: its start, then its progress lines (a training epoch), at most one every 5 s.
    info(`sweep: ${variant.run}: ${stage}`);
    let lastShown = performance.now();
    child.stdout.pipe(out, { end: false });
    child.stderr.on('data', (chunk: Buffer) => {
      const text = chunk.toString();
      stderr += text;
      out.write(chunk);
      const progress = text.split('\n').filter((l) => /^\S+: epoch \d+\//.test(l) || /^\S+ +[\d,]+\/[\d,]+ /.test(l)).pop();
      if (progress && performance.now() - lastShown > 5000) {
        lastShown = performance.now();
        info(`sweep: ${variant.run}: ${progress.trim()}`);
      }
    });
    child.on('error', reject);
    child.on('close', (code) => {
      out.end();
      if (code === 0) {
        const outcome = JSON.parse(readFileSync(resultFile, 'utf8')) as StageOutcome;
        rmSync(resultFile);
        return resolve(outcome.built);
      }
      const error = stderr.split('\n').find((l) => l.startsWith('error:')) ?? stderr.trim().split('\n').slice(-1)[0] ?? `exit ${code}`;
      reject(new UserError(`${stage}: ${error.replace(/^error:\s*/, '')}`));
    });
  });
}

export async function runSweep(sweep: Sweep, store: ArtifactStore, artifacts: string, programs: StagePrograms): Promise<SweepRun> {
  const started = performance.now();
  // One folder of logs per sweep invocation: a rerun's "up to date" lines never replace the logs of the build.
  const logs = join(store.root, 'sweeps', sweep.name, 'logs', `${new Date().toISOString().replace(/[:.]/g, '-')}-${process.pid}`);
  mkdirSync(logs, { recursive: true });
  const builds: Record<string, number> = {};
  const stageRunner = (variant: VariantResult) => async (stage: string) => {
    if (await runStageProgram(programs(stage), stage, sweep, variant, artifacts, variant.log)) builds[stage] = (builds[stage] ?? 0) + 1;
  };
  const results = loadVariants(sweep, logs);
  await buildUpstream(results, store, stageRunner);
  await runVariants(results.filter((r) => r.status === 'ok'), sweep, stageRunner);
  for (const r of results.filter((r) => r.status === 'ok')) {
    const plan = await planPipeline(STAGES, r.loaded!, store);
    r.keys = Object.fromEntries([...plan.stages].map(([stage, planned]) => [stage, planned.key]));
  }
  return { results, builds, seconds: (performance.now() - started) / 1000 };
}

type StageRunner = (variant: VariantResult) => (stage: string) => Promise<void>;

/** Loads every variant's config: a bad value fails that variant here, before anything runs. */
function loadVariants(sweep: Sweep, logs: string): VariantResult[] {
  return sweep.variants.map((variant) => {
    const result: VariantResult = { ...variant, status: 'ok', seconds: 0, log: join(logs, `${variant.run}.log`), keys: {} };
    try {
      result.loaded = loadConfig(sweep.basePath, [`run=${variant.run}`, ...overrideStrings(variant.overrides)]);
    } catch (error) {
      if (!(error instanceof UserError)) throw error;
      Object.assign(result, { status: 'failed', error: error.message });
      info(`sweep: ${variant.run} (${describeOverrides(variant.overrides)}) is invalid: ${error.message}`);
    }
    return result;
  });
}

/**
 * Each variant's upstream, one variant at a time: a variant whose upstream is already built (by
 * an earlier variant, or an earlier run) starts no process and is only pointed at it.
 */
async function buildUpstream(results: VariantResult[], store: ArtifactStore, stageRunner: StageRunner): Promise<void> {
  const shared = new Map<string, string[]>();
  for (const r of results.filter((r) => r.status === 'ok')) {
    const { upstream } = stagesOf(r.loaded!);
    try {
      for (const stage of upstream) {
        const plan = await planPipeline(STAGES, r.loaded!, store, stage);
        const planned = plan.stages.get(stage);
        if (!planned && plan.blocked) throw new UserError(plan.blocked.reason);
        if (!planned || !store.readManifest(stage, planned.key)) await stageRunner(r)(stage);
      }
      const plan = await planPipeline(STAGES, r.loaded!, store);
      recordRun(store, r.run, Object.fromEntries([...plan.stages].map(([stage, planned]) => [stage, planned.key])), r.loaded!.config, r.loaded!.path, plan.needed);
      const last = plan.stages.get(upstream[upstream.length - 1]!)!.key;
      shared.set(last, [...(shared.get(last) ?? []), r.run]);
    } catch (error) {
      Object.assign(r, { status: 'failed', error: (error as Error).message });
      info(`sweep: the upstream of ${r.run} failed: ${(error as Error).message}`);
    }
  }
  for (const [key, runs] of shared) info(`sweep: ${runs.length} variant(s) share the vectors ${key}: ${runs.join(', ')}`);
}

/** The stages below the shared upstream, for up to `max_parallel` variants side by side. */
async function runVariants(runnable: VariantResult[], sweep: Sweep, stageRunner: StageRunner): Promise<void> {
  const limit = pLimit(sweep.maxParallel);
  let done = 0;
  await Promise.all(
    runnable.map((r) =>
      limit(async () => {
        const t0 = performance.now();
        try {
          for (const stage of stagesOf(r.loaded!).downstream) if (stage !== 'report' || sweep.report) await stageRunner(r)(stage);
        } catch (error) {
          Object.assign(r, { status: 'failed', error: (error as Error).message });
        }
        r.seconds = (performance.now() - t0) / 1000;
        done++;
        info(`sweep: ${r.run} ${r.status === 'ok' ? 'done' : `FAILED (${r.error})`} in ${formatSeconds(r.seconds)} [${done}/${runnable.length}]  ${describeOverrides(r.overrides)}`);
      }),
    ),
  );
}
