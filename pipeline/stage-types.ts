import type { LoadedConfig } from './config/index.js';
import type { ArtifactStore, BuildContext, Manifest, ManifestBody } from './artifacts/store.js';
import type { PlannedStage } from './artifacts/plan.js';

/**
 * What a stage's build function is given: types only, so that a stage body depends on this
 * description and not on the runner (`runner.ts`) that calls it.
 */
export interface UpstreamArtifact {
  dir: string;
  manifest: Manifest;
}

export interface StageRun extends BuildContext {
  loaded: LoadedConfig;
  store: ArtifactStore;
  planned: PlannedStage;
  /** Published artifacts of the stage's inputs, by stage name, each checked against its manifest. */
  inputs: Record<string, UpstreamArtifact>;
}

/** A stage's build: reads its inputs, writes its files into `run.dir`, returns its manifest's body. */
export type StageBuild = (run: StageRun) => Promise<ManifestBody> | ManifestBody;

/** What a stage run did, as `--result-json` writes it for the programs that drive stages (the sweep). */
export interface StageOutcome {
  stage: string;
  key: string;
  built: boolean;
  dir: string;
}
