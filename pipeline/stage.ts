import { resolve } from 'node:path';
import YAML from 'yaml';
import { loadConfig, type LoadedConfig } from './config/index.js';
import { UserError } from './errors.js';
import { info } from './log.js';
import { ArtifactStore, type BuildContext, type Manifest, type ManifestBody } from './artifacts/store.js';
import { planStages, type PlannedStage } from './artifacts/plan.js';
import { recordRun, runDir } from './artifacts/runs.js';
import { STAGES } from './stages.js';
import type { CommonArgs } from './cli.js';

export interface UpstreamArtifact {
  dir: string;
  manifest: Manifest;
}

export interface StageRun extends BuildContext {
  loaded: LoadedConfig;
  store: ArtifactStore;
  planned: PlannedStage;
  /** Published artifacts of the stage's inputs, by stage name. */
  inputs: Record<string, UpstreamArtifact>;
}

/** Loads the config and the store, and plans the keys of `stage` and everything upstream. */
export async function openStage(stage: string, args: CommonArgs) {
  const loaded = loadConfig(args.config, args.set);
  const store = new ArtifactStore(resolve(args.artifacts));
  const plan = await planStages(STAGES, loaded, store, stage);
  return { loaded, store, plan, planned: plan.get(stage)! };
}

/**
 * The part of every stage that is the same: find the key, reuse the artifact if it is published,
 * otherwise check that the inputs exist, build under the store's lock, publish, and point the
 * run at it.
 */
export async function runStage(
  stage: string,
  args: CommonArgs,
  build: (run: StageRun) => Promise<ManifestBody> | ManifestBody,
  options: {
    resumable?: boolean;
    /** Publish under another name (an `embed-slice`), outside the run: a part, not the stage's artifact. */
    publishAs?: (planned: PlannedStage) => { stage: string; key: string };
  } = {},
): Promise<UpstreamArtifact & { built: boolean; loaded: LoadedConfig; store: ArtifactStore }> {
  const { loaded, store, planned } = await openStage(stage, args);
  const inputs: Record<string, UpstreamArtifact> = {};
  for (const [input, key] of Object.entries(planned.inputs)) {
    const manifest = store.readManifest(input, key);
    if (!manifest) throw new UserError(`${stage} needs the ${input} artifact ${key}, which is not built: run \`make ${input} CONFIG=${args.config}\` first`);
    inputs[input] = { dir: store.keyDir(input, key), manifest };
  }
  const target = options.publishAs?.(planned) ?? { stage, key: planned.key };
  const { manifest, dir, built } = await store.ensure(
    { stage: target.stage, key: target.key, stage_version: planned.spec.version, params: planned.params, inputs: planned.inputs, sources: planned.sources },
    async (ctx) => build({ ...ctx, loaded, store, planned, inputs }),
    options,
  );
  let where = dir;
  if (!options.publishAs) {
    recordRun(store, loaded.config.run, stage, planned.key, loaded.config, loaded.path);
    where = `${runDir(store, loaded.config.run)}/${stage}`;
  }
  info(built ? `${target.stage}: built ${target.key} in ${manifest.timings.seconds}s -> ${where}` : `${target.stage}: up to date (${target.key}) -> ${where}`);
  return { manifest, dir, built, loaded, store };
}

export function printConfig(loaded: LoadedConfig): string {
  return YAML.stringify(loaded.config);
}
