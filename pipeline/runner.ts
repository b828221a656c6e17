import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { loadConfig, makeCommand, type LoadedConfig } from './config/index.js';
import { UserError } from './errors.js';
import { info } from './log.js';
import { ArtifactStore, type Manifest } from './artifacts/store.js';
import { planPipeline, type Plan, type PlannedStage } from './artifacts/plan.js';
import { viewOf } from './artifacts/contract.js';
import { leaseKeys, takeLease } from './artifacts/lease.js';
import { recordRun, runDir } from './artifacts/runs.js';
import { STAGES, type PipelineStage } from './dag.js';
import type { CommonArgs } from './cli.js';
import type { Source, StageBuild, StageOutcome, StageRun } from './stage-types.js';

/** Loads the config and the store, and keys every stage of the pipeline that can be keyed. */
export async function openPipeline(args: Pick<CommonArgs, 'config' | 'set' | 'artifacts'>, stages: readonly PipelineStage[] = STAGES): Promise<{ loaded: LoadedConfig; store: ArtifactStore; plan: Plan }> {
  const loaded = loadConfig(args.config, args.set);
  const store = new ArtifactStore(resolve(args.artifacts));
  return { loaded, store, plan: await planPipeline(stages, loaded, store) };
}

/** Stage -> key of a plan's keyed stages. */
export const planKeys = (plan: Plan) => Object.fromEntries([...plan.stages.values()].map((p) => [p.spec.name, p.key]));

/** Why a needed stage has no key: an upstream artifact to build first, or the config. */
export function notPlannable(plan: Plan, stage: string, loaded: LoadedConfig): UserError {
  const waiting = plan.waiting.find((w) => w.stage === stage)!;
  if (!waiting.on) return new UserError(waiting.reason);
  return new UserError(`${stage} reads the ${waiting.on} artifact, which is not built yet: run \`${makeCommand(waiting.on, loaded)}\` first (or \`${makeCommand(stage, loaded)}\`, which builds what it needs)`);
}

export interface StageResult {
  manifest?: Manifest;
  dir?: string;
  built: boolean;
  /** True when the config's pipeline does not use the stage (tokenize for TF-IDF): nothing was done. */
  skipped?: boolean;
  loaded: LoadedConfig;
  store: ArtifactStore;
}

/**
 * The part of every stage that is the same: find the key, reuse the artifact if it is published,
 * otherwise check and open exactly the inputs the stage's signature reads, open its sources, build
 * under the store's lock with its slice of the config, publish with the digest of each view of
 * the new artifact, and point the run at it.
 */
export async function runStage(
  name: string,
  args: CommonArgs,
  options: {
    /** The stage's build from `STAGES` unless given (embed's `--shard` and `--merge`). */
    build?: StageBuild<any>;
    /** Publish under another name (an `embed-slice`), outside the run: a part, not the stage's artifact. */
    publishAs?: (planned: PlannedStage) => { stage: string; key: string };
    /** The pipeline (STAGES, or a test's own list). */
    stages?: readonly PipelineStage[];
  } = {},
): Promise<StageResult> {
  const stages = options.stages ?? STAGES;
  const { loaded, store, plan } = await openPipeline(args, stages);
  if (!plan.needed.includes(name)) {
    info(`${name}: not part of this config's pipeline (nothing after it reads its artifact, e.g. embed.method ${loaded.config.embed.method}); nothing to do`);
    return { built: false, skipped: true, loaded, store };
  }
  const planned = plan.stages.get(name);
  if (!planned) throw notPlannable(plan, name, loaded);
  const spec = stages.find((s) => s.name === name)!;
  // What this build reads and writes is kept by `make gc` until the build ends.
  const releaseLease = takeLease(store, leaseKeys(plan));
  const target = options.publishAs?.(planned) ?? { stage: name, key: planned.key };
  const { params, settings, reads, inputs, sources, code } = planned;
  const { manifest, dir, built } = await store.ensure(
    { stage: target.stage, key: target.key, stage_version: spec.version, params, settings, reads, inputs, sources, code },
    async (ctx) => {
      // Inputs are checked against their manifests and opened only when the stage builds: an
      // up-to-date stage reads nothing, so it hashes nothing, and loads neither TF.js nor ONNX Runtime.
      const verifyStarted = performance.now();
      const run: StageRun = {
        ...ctx,
        key: planned.key,
        params,
        settings,
        inputs: await openInputs(planned, stages, store),
        sources: await openSources(spec, loaded, store, planKeys(plan)),
        sourceHashes: sources,
        upstream: spec.provenance ? upstreamManifests(planned, stages, store) : {},
        store,
        hints: { config: loaded.path, command: (stage) => makeCommand(stage, loaded) },
      };
      const verifySeconds = Math.round(performance.now() - verifyStarted) / 1000;
      const build = options.build ?? (await spec.build(loaded.config));
      const body = await build(run);
      return { ...body, timings: { ...body.timings, verify_inputs_seconds: verifySeconds } };
    },
    { force: args.force, contract: options.publishAs ? undefined : spec.output },
  );
  let where = dir;
  if (!options.publishAs) {
    // Keyed again now that this stage is built: the stages after it that it leaves up to date are linked too.
    const after = await planPipeline(stages, loaded, store);
    recordRun(store, loaded.config.run, planKeys(after), loaded.config, loaded.path, after.needed);
    where = `${runDir(store, loaded.config.run)}/${name}`;
  }
  releaseLease();
  info(built ? `${target.stage}: built ${target.key} in ${manifest.timings.seconds}s -> ${where}` : `${target.stage}: up to date (${target.key}) -> ${where}`);
  if (args.resultJson) writeFileSync(args.resultJson, JSON.stringify({ stage: target.stage, key: target.key, built, dir } satisfies StageOutcome));
  return { manifest, dir, built, loaded, store };
}

/** Each port the stage reads, opened from the artifact that offers it, after checking the files that view reads. */
async function openInputs(planned: PlannedStage, stages: readonly PipelineStage[], store: ArtifactStore): Promise<Record<string, unknown>> {
  const opened: Record<string, unknown> = {};
  for (const [alias, read] of Object.entries(planned.reads)) {
    const view = viewOf(stages.find((s) => s.name === read.stage)!.output, { name: read.port })!;
    const { dir, manifest } = await store.verified(read.stage, read.key, view.files);
    opened[alias] = await view.open(dir, manifest);
  }
  return opened;
}

async function openSources(spec: PipelineStage, loaded: LoadedConfig, store: ArtifactStore, upstream: Record<string, string>): Promise<Record<string, unknown>> {
  const opened: Record<string, unknown> = {};
  for (const [name, source] of Object.entries(spec.sources(loaded.config) as Record<string, Source<unknown>>)) opened[name] = await source.open(loaded, store, upstream);
  return opened;
}

/** The manifest of every stage the planned one depends on, in pipeline order. */
function upstreamManifests(planned: PlannedStage, stages: readonly PipelineStage[], store: ArtifactStore): Record<string, Manifest> {
  return Object.fromEntries(stages.filter((s) => s.name in planned.inputs).map((s) => [s.name, store.readManifest(s.name, planned.inputs[s.name]!)!]));
}
