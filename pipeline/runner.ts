import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import YAML from 'yaml';
import { loadConfig, makeCommand, type LoadedConfig } from './config/index.js';
import { UserError } from './errors.js';
import { info } from './log.js';
import { ArtifactStore } from './artifacts/store.js';
import { planAvailable, type PlannedStage } from './artifacts/plan.js';
import { leaseKeys, takeLease } from './artifacts/lease.js';
import { recordRun, runDir } from './artifacts/runs.js';
import { STAGES, stage as pipelineStage } from './dag.js';
import type { CommonArgs } from './cli.js';

export type { StageRun, UpstreamArtifact } from './stage-types.js';
import type { StageBuild, StageOutcome, UpstreamArtifact } from './stage-types.js';

/** Loads the config and the store, and plans the keys of every stage the config can plan (`stage` at least). */
export async function openStage(stage: string, args: CommonArgs) {
  const loaded = loadConfig(args.config, args.set);
  const store = new ArtifactStore(resolve(args.artifacts));
  const { plan, blocked } = await planAvailable(STAGES, loaded, store);
  const planned = plan.get(stage);
  if (!planned) throw new UserError(blocked!.reason);
  return { loaded, store, plan, planned };
}

/** Stage -> key of a plan. */
export const planKeys = (plan: Map<string, PlannedStage>) => Object.fromEntries([...plan.values()].map((p) => [p.spec.name, p.key]));

/**
 * The part of every stage that is the same: find the key, reuse the artifact if it is published,
 * otherwise check that the inputs exist, build under the store's lock, publish, and point the
 * run at it.
 */
export async function runStage(
  stage: string,
  args: CommonArgs,
  options: {
    /** The stage's build from `STAGES` unless given (embed's `--shard` and `--merge`). */
    build?: StageBuild;
    resumable?: boolean;
    /** Publish under another name (an `embed-slice`), outside the run: a part, not the stage's artifact. */
    publishAs?: (planned: PlannedStage) => { stage: string; key: string };
  } = {},
): Promise<UpstreamArtifact & { built: boolean; loaded: LoadedConfig; store: ArtifactStore }> {
  const { loaded, store, plan, planned } = await openStage(stage, args);
  const spec = pipelineStage(stage);
  // What this build reads and writes is kept by `make gc` until the build ends.
  takeLease(store, leaseKeys(plan));
  for (const [input, key] of Object.entries(planned.inputs)) {
    if (!store.readManifest(input, key)) throw new UserError(`${stage} needs the ${input} artifact ${key}, which is not built: run \`${makeCommand(input, loaded)}\` first`);
  }
  const target = options.publishAs?.(planned) ?? { stage, key: planned.key };
  const { manifest, dir, built } = await store.ensure(
    { stage: target.stage, key: target.key, stage_version: planned.spec.version, params: planned.params, inputs: planned.inputs, sources: planned.sources, code: planned.code },
    async (ctx) => {
      // Every input file is checked against its manifest before it is read, and only when the
      // stage builds: an up-to-date stage reads nothing, so it hashes nothing.
      const verifyStarted = performance.now();
      const inputs: Record<string, UpstreamArtifact> = {};
      for (const [input, key] of Object.entries(planned.inputs)) inputs[input] = await store.verified(input, key);
      const verifySeconds = Math.round(performance.now() - verifyStarted) / 1000;
      // Loaded only now: an up-to-date stage never loads TensorFlow.js or ONNX Runtime.
      const build = options.build ?? (await spec.build());
      const body = await build({ ...ctx, loaded, store, planned, inputs });
      return { ...body, timings: { ...body.timings, verify_inputs_seconds: verifySeconds } };
    },
    { resumable: options.resumable ?? spec.resumable, force: args.force },
  );
  let where = dir;
  if (!options.publishAs) {
    recordRun(store, loaded.config.run, planKeys(plan), loaded.config, loaded.path);
    where = `${runDir(store, loaded.config.run)}/${stage}`;
  }
  info(built ? `${target.stage}: built ${target.key} in ${manifest.timings.seconds}s -> ${where}` : `${target.stage}: up to date (${target.key}) -> ${where}`);
  if (args.resultJson) writeFileSync(args.resultJson, JSON.stringify({ stage: target.stage, key: target.key, built, dir } satisfies StageOutcome));
  return { manifest, dir, built, loaded, store };
}

export function printConfig(loaded: LoadedConfig): string {
  return YAML.stringify(loaded.config);
}
