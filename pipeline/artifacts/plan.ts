import { hashValue } from '../hash.js';
import { UserError } from '../errors.js';
import type { LoadedConfig } from '../config/index.js';
import { DamagedManifest, type ArtifactStore } from './store.js';
import type { Port } from './contract.js';
import { codeFingerprint, type CodeFingerprint } from './code.js';
import type { Signature, Source } from './signature.js';

/** One port a stage reads: which upstream artifact offers it, and the digest of its content. */
export interface PlannedRead {
  port: string;
  stage: string;
  key: string;
  digest: string;
}

export interface PlannedStage {
  spec: Signature;
  key: string;
  params: unknown;
  /** How it runs (threads, providers, ...): never part of the key. */
  settings: unknown;
  /** By the name the build uses. */
  reads: Record<string, PlannedRead>;
  /** Upstream stage -> the key of the artifact it reads (for provenance; the key holds the digests). */
  inputs: Record<string, string>;
  sources: Record<string, string>;
  code: CodeFingerprint;
}

/** A stage the plan needs but cannot key yet. */
export interface WaitingStage {
  stage: string;
  /** The stage whose artifact it reads and that is not built: its key depends on what that one writes. */
  on?: string;
  reason: string;
}

export interface Plan {
  /** The stages that can be keyed, in pipeline order. */
  stages: Map<string, PlannedStage>;
  /** The stages the target needs, in pipeline order. */
  needed: string[];
  /** Needed stages that wait for an upstream build, or that the config cannot plan (`blocked`). */
  waiting: WaitingStage[];
  /** A stage the config cannot plan (a missing model section, a missing file): the first such. */
  blocked?: WaitingStage;
}

/**
 * Which earlier stage offers each port a stage reads: the nearest one whose contract has it, so
 * that a stage inserted between train and evaluate that offers a classifier is what evaluate
 * (and predict) read.
 */
export function providersOf(stages: readonly Signature[], name: string, config: LoadedConfig['config']): Record<string, { port: Port<unknown>; stage: string }> {
  const index = stages.findIndex((s) => s.name === name);
  if (index < 0) throw new Error(`no stage named ${name}`);
  const providers: Record<string, { port: Port<unknown>; stage: string }> = {};
  for (const [alias, port] of Object.entries(stages[index]!.reads(config) as Record<string, Port<unknown>>)) {
    const provider = stages
      .slice(0, index)
      .reverse()
      .find((s) => s.output.views.some((v) => v.port.name === port.name));
    if (!provider) throw new Error(`${name} reads the port ${port.name}, which no earlier stage offers`);
    providers[alias] = { port, stage: provider.name };
  }
  return providers;
}

/** `target` and every stage it reads from, directly or not, in pipeline order. */
export function neededFor(stages: readonly Signature[], target: string, config: LoadedConfig['config']): string[] {
  const needed = new Set([target]);
  for (const spec of [...stages].reverse()) {
    if (!needed.has(spec.name)) continue;
    for (const { stage } of Object.values(providersOf(stages, spec.name, config))) needed.add(stage);
  }
  const index = stages.findIndex((s) => s.name === target);
  return stages.filter((s, i) => needed.has(s.name) && i <= index).map((s) => s.name);
}

/**
 * Keys every stage `target` needs, as far as the built artifacts allow. A key hashes the stage's
 * name and version, its params, the digest of each port it reads (recorded in the upstream
 * manifest when that artifact was published), its sources' content and its code. So a stage
 * whose upstream is not built yet cannot be keyed: its key depends on what that build writes,
 * and a rebuild that writes the same texts leaves it up to date.
 */
export async function planPipeline(stages: readonly Signature[], loaded: LoadedConfig, store: ArtifactStore, target = stages[stages.length - 1]!.name): Promise<Plan> {
  const { config } = loaded;
  const needed = neededFor(stages, target, config);
  const plan: Plan = { stages: new Map(), needed, waiting: [] };
  const waiting = new Set<string>();
  for (const name of needed) {
    const spec = stages.find((s) => s.name === name)!;
    const providers = providersOf(stages, name, config);
    const upstream = spec.provenance ? needed.slice(0, needed.indexOf(name)) : [];
    const reads = [...Object.values(providers).map((p) => p.stage), ...upstream];
    // An upstream artifact whose manifest is damaged stops the stage with that error, not with "not built".
    const damaged = reads.map((stage) => damageOf(store, stage, plan)).find(Boolean);
    if (damaged) {
      waiting.add(name);
      const blocked = { stage: name, reason: damaged };
      plan.waiting.push(blocked);
      plan.blocked ??= blocked;
      continue;
    }
    const blockedBy = reads.find((stage) => waiting.has(stage) || !store.readManifest(stage, plan.stages.get(stage)!.key));
    if (blockedBy) {
      waiting.add(name);
      const reason = waiting.has(blockedBy) ? `waits for ${blockedBy}` : `reads ${blockedBy}, which is not built yet: its key depends on what ${blockedBy} writes`;
      plan.waiting.push({ stage: name, on: blockedBy, reason });
      continue;
    }
    try {
      plan.stages.set(name, await planStage(spec, loaded, store, providers, upstream, plan));
    } catch (error) {
      if (!(error instanceof UserError)) throw error;
      waiting.add(name);
      const blocked = { stage: name, reason: error.message };
      plan.waiting.push(blocked);
      plan.blocked ??= blocked;
    }
  }
  return plan;
}

function damageOf(store: ArtifactStore, stage: string, plan: Plan): string | undefined {
  const planned = plan.stages.get(stage);
  if (!planned) return undefined;
  try {
    store.readManifest(stage, planned.key);
    return undefined;
  } catch (error) {
    if (error instanceof DamagedManifest) return error.message;
    throw error;
  }
}

async function planStage(spec: Signature, loaded: LoadedConfig, store: ArtifactStore, providers: ReturnType<typeof providersOf>, upstream: string[], plan: Plan): Promise<PlannedStage> {
  const { config } = loaded;
  const params = spec.params(config);
  const settings = spec.settings(config);
  const reads: Record<string, PlannedRead> = {};
  for (const [alias, { port, stage }] of Object.entries(providers)) {
    const key = plan.stages.get(stage)!.key;
    const digest = store.readManifest(stage, key)!.ports?.[port.name];
    if (!digest) throw new UserError(`${store.keyDir(stage, key)}: its manifest has no digest for ${port.name} (made by an older version of the pipeline): rebuild it with \`make ${stage} FORCE=${stage}\``);
    reads[alias] = { port: port.name, stage, key, digest };
  }
  const inputs: Record<string, string> = {};
  for (const read of Object.values(reads)) inputs[read.stage] = read.key;
  for (const stage of upstream) inputs[stage] = plan.stages.get(stage)!.key;
  const sources: Record<string, string> = {};
  const planned = Object.fromEntries([...plan.stages].map(([stage, p]) => [stage, p.key]));
  for (const source of Object.values(spec.sources(config) as Record<string, Source<unknown>>)) Object.assign(sources, await source.hash(loaded, store, planned));
  const viewCode = Object.values(providers).map(({ port, stage }) => plan.stages.get(stage)!.spec.output.views.find((v) => v.port.name === port.name)!.code);
  const code = codeFingerprint([...spec.code(config), ...viewCode]);
  const key = hashValue({
    stage: spec.name,
    version: spec.version,
    params,
    reads: Object.fromEntries(Object.entries(reads).map(([alias, r]) => [alias, `${r.port}:${r.digest}`])),
    // The provenance a report prints is the upstream artifacts themselves, not only their content.
    upstream: spec.provenance ? upstream.map((stage) => `${stage}/${inputs[stage]}`) : undefined,
    sources,
    code: code.hash,
  }).slice(0, 16);
  return { spec, key, params, settings, reads, inputs, sources, code };
}
