import type { Config } from './config/index.js';
import type { RunOf, Signature, StageBuild } from './stage-types.js';
import { ingestSignature } from './ingest/signature.js';
import { tokenizeSignature } from './tokenize/signature.js';
import { embedSignature } from './embed/signature.js';
import { trainSignature } from './train/signature.js';
import { evaluateSignature } from './evaluate/signature.js';
import { reportSignature } from './report/signature.js';

/** A stage of the pipeline: its signature (what its key is made of) and its build, loaded only when it runs. */
export interface PipelineStage extends Signature<any, any, any, any> {
  build(config: Config): Promise<StageBuild<any>>;
}

/**
 * Binds a signature to its build, type-checked: the build takes exactly the run its signature
 * describes (`RunOf`), so a body cannot read an input or a config field its key does not cover.
 */
export function stage<Sig extends Signature<any, any, any, any>>(sig: Sig, build: (config: Config) => Promise<StageBuild<RunOf<Sig>>>): PipelineStage {
  return { ...sig, build };
}

/**
 * The pipeline, the one description of it: the stages in order, each with its signature
 * (`pipeline/<stage>/signature.ts`) and its body (`pipeline/<stage>/<stage>.ts`). The runner,
 * `make status`, the sweep, `predict` and the report take their stage lists from here.
 */
export const STAGES: readonly PipelineStage[] = [
  stage(ingestSignature, async () => (await import('./ingest/ingest.js')).ingest),
  stage(tokenizeSignature, async () => (await import('./tokenize/tokenize.js')).tokenize),
  stage(embedSignature, async () => (await import('./embed/embed.js')).embed),
  stage(trainSignature, async () => (await import('./train/train.js')).trainClassifier),
  stage(evaluateSignature, async () => (await import('./evaluate/evaluate.js')).evaluate),
  stage(reportSignature, async () => (await import('./report/report.js')).buildReport),
];

/** The stage named `name`; a bug if there is none. */
export function stageNamed(name: string, stages: readonly PipelineStage[] = STAGES): PipelineStage {
  const found = stages.find((s) => s.name === name);
  if (!found) throw new Error(`no stage named ${name} in STAGES`);
  return found;
}
