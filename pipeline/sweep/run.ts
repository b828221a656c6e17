import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pLimit from 'p-limit';
import { UserError } from '../errors.js';
import { formatSeconds, info } from '../log.js';
import { loadConfig, type LoadedConfig } from '../config/index.js';
import { planStages } from '../artifacts/plan.js';
import { recordRun } from '../artifacts/runs.js';
import type { ArtifactStore } from '../artifacts/store.js';
import type { StageOutcome } from '../stage-types.js';
import { STAGES, upstreamOf } from '../dag.js';
import { describeOverrides, overrideArgs, overrideStrings, type Sweep, type Variant } from './file.js';

/**
 * Runs every variant of a sweep. Variants are planned first: those whose ingest, tokenize and
 * embed keys agree (they differ only in train.* and later) share one upstream build, made once
 * before any variant trains. Then train -> evaluate -> report run for up to `max_parallel`
 * variants side by side, each as the stage programs a user would run. A variant that fails is
 * recorded with its error; the others go on.
 */

// Variants with the same embed key share it and everything it reads; the rest runs per variant.
const UPSTREAM = upstreamOf('embed');
const DOWNSTREAM = STAGES.map((s) => s.name).filter((s) => !UPSTREAM.includes(s));

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

const program = (stage: string) => fileURLToPath(new URL(`../../stages/${stage}.js`, import.meta.url));

/**
 * Runs one stage program, as a user would; its output goes to the variant's log. Resolves to
 * whether it built (the runner's `--result-json`), or throws with the program's error line.
 */
function runStageProgram(stage: string, sweep: Sweep, variant: Variant, artifacts: string, log: string): Promise<boolean> {
  const resultFile = join(dirname(log), `.${variant.run}.${stage}.result.json`);
  return new Promise((resolve, reject) => {
    const out = createWriteStream(log, { flags: 'a' });
    const args = ['--config', sweep.basePath, '--artifacts', artifacts, '--set', `run=${variant.run}`, ...overrideArgs(variant.overrides), '--result-json', resultFile];
    const child = spawn(process.execPath, [program(stage), ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CI: '1' },
    });
    let stderr = '';
    child.stdout.pipe(out, { end: false });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      out.write(chunk);
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

export async function runSweep(sweep: Sweep, store: ArtifactStore, artifacts: string): Promise<SweepRun> {
  const started = performance.now();
  // One folder of logs per sweep invocation: a rerun's "up to date" lines never replace the logs of the build.
  const logs = join(store.root, 'sweeps', sweep.name, 'logs', new Date().toISOString().replace(/[:.]/g, '-'));
  mkdirSync(logs, { recursive: true });
  const builds: Record<string, number> = {};
  const stageRunner = (variant: VariantResult) => async (stage: string) => {
    if (await runStageProgram(stage, sweep, variant, artifacts, variant.log)) builds[stage] = (builds[stage] ?? 0) + 1;
  };
  const results = await planVariants(sweep, store, logs);
  await buildSharedUpstream(results, store, stageRunner);
  await runVariants(results.filter((r) => r.status === 'ok'), sweep, stageRunner);
  return { results, builds, seconds: (performance.now() - started) / 1000 };
}

type StageRunner = (variant: VariantResult) => (stage: string) => Promise<void>;

/** Plans every variant: a bad value fails that variant here, before anything runs. */
async function planVariants(sweep: Sweep, store: ArtifactStore, logs: string): Promise<VariantResult[]> {
  const results: VariantResult[] = [];
  for (const variant of sweep.variants) {
    const result: VariantResult = { ...variant, status: 'ok', seconds: 0, log: join(logs, `${variant.run}.log`), keys: {} };
    try {
      result.loaded = loadConfig(sweep.basePath, [`run=${variant.run}`, ...overrideStrings(variant.overrides)]);
      const plan = await planStages(STAGES, result.loaded, store, 'report');
      for (const [stage, planned] of plan) result.keys[stage] = planned.key;
    } catch (error) {
      if (!(error instanceof UserError)) throw error;
      Object.assign(result, { status: 'failed', error: error.message });
      info(`sweep: ${variant.run} (${describeOverrides(variant.overrides)}) is invalid: ${error.message}`);
    }
    results.push(result);
  }
  return results;
}

/** One upstream build per distinct embed key, made by the first variant that needs it. */
async function buildSharedUpstream(results: VariantResult[], store: ArtifactStore, stageRunner: StageRunner): Promise<void> {
  const groups = new Map<string, VariantResult[]>();
  for (const r of results.filter((r) => r.status === 'ok')) {
    const group = groups.get(r.keys.embed!);
    if (group) group.push(r);
    else groups.set(r.keys.embed!, [r]);
  }
  for (const [embedKey, group] of groups) {
    const first = group[0]!;
    info(`sweep: ${group.length} variant(s) share embed ${embedKey}: ${UPSTREAM.join(' -> ')} built or reused once for all`);
    try {
      // Built already (the usual case when a sweep changes train.*): no process needed.
      const missing = UPSTREAM.filter((stage) => !store.readManifest(stage, first.keys[stage]!));
      for (const stage of missing.length ? UPSTREAM : []) await stageRunner(first)(stage);
      // Every variant's run points at the shared artifacts, as if it had run the stages itself.
      for (const r of missing.length ? group.slice(1) : group) recordRun(store, r.run, r.keys as Record<string, string>, r.loaded!.config, r.loaded!.path);
    } catch (error) {
      for (const r of group) Object.assign(r, { status: 'failed', error: (error as Error).message });
      info(`sweep: the shared upstream of ${group.map((r) => r.run).join(', ')} failed: ${(error as Error).message}`);
    }
  }
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
          for (const stage of DOWNSTREAM) if (stage !== 'report' || sweep.report) await stageRunner(r)(stage);
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
