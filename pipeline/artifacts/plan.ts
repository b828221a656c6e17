import { hashValue } from '../hash.js';
import { UserError } from '../errors.js';
import type { LoadedConfig } from '../config/index.js';
import type { ArtifactStore } from './store.js';
import { codeFingerprint, type CodeFingerprint } from './code.js';

/** What the store needs to know about a stage to compute its key. */
export interface StageSpec {
  name: string;
  /** Bump when the stage's code changes what it writes: every key of the stage changes. */
  version: number;
  inputs: readonly string[];
  /**
   * The config fields that can change the output, keyed by their config path
   * (`{ ingest: {...}, seed }`); batch sizes for inference, threads and progress display are left out.
   */
  params(loaded: LoadedConfig): unknown;
  /** Content hashes of the files the stage reads from outside the store (data, models). */
  sources?(loaded: LoadedConfig, store: ArtifactStore): Promise<Record<string, string>>;
  /** The compiled modules (relative to dist/) whose code the key hashes, with all they import. */
  code: readonly string[];
}

export interface PlannedStage {
  spec: StageSpec;
  key: string;
  params: unknown;
  inputs: Record<string, string>;
  sources: Record<string, string>;
  /** The code the stage runs (its program's module graph and packages). */
  code: CodeFingerprint;
}

/**
 * Computes the key of `target` and of everything upstream of it. A key hashes the stage's name
 * and version, its params, its source files, its code (`spec.code` and what it
 * imports) and its inputs' keys, so a change anywhere upstream changes every key below it, and a
 * change to `train.*` changes no key above train.
 */
export async function planStages(
  specs: readonly StageSpec[],
  loaded: LoadedConfig,
  store: ArtifactStore,
  target?: string,
): Promise<Map<string, PlannedStage>> {
  const byName = new Map(specs.map((s) => [s.name, s]));
  const planned = new Map<string, PlannedStage>();
  const visit = async (name: string): Promise<PlannedStage> => {
    const done = planned.get(name);
    if (done) return done;
    const spec = byName.get(name);
    if (!spec) throw new Error(`unknown stage ${name}`);
    const inputs: Record<string, string> = {};
    for (const input of spec.inputs) inputs[input] = (await visit(input)).key;
    const params = spec.params(loaded);
    const sources = spec.sources ? await spec.sources(loaded, store) : {};
    const code = codeFingerprint(spec.code);
    const key = hashValue({ stage: spec.name, version: spec.version, params, inputs, sources, code: code.hash }).slice(0, 16);
    const stage = { spec, key, params, inputs, sources, code };
    planned.set(name, stage);
    return stage;
  };
  for (const spec of specs) {
    await visit(spec.name);
    if (spec.name === target) break;
  }
  return planned;
}

/**
 * Plans as far as the config allows: a stage that cannot be planned (its config section or a
 * source file is missing) ends the plan, with the reason, instead of failing the whole status.
 */
export async function planAvailable(specs: readonly StageSpec[], loaded: LoadedConfig, store: ArtifactStore): Promise<{ plan: Map<string, PlannedStage>; blocked?: { stage: string; reason: string } }> {
  // The usual case, every stage plannable, costs one pass; only a failure is narrowed down stage by stage.
  try {
    return { plan: await planStages(specs, loaded, store) };
  } catch (error) {
    if (!(error instanceof UserError)) throw error;
  }
  let plan = new Map<string, PlannedStage>();
  for (const spec of specs) {
    try {
      plan = await planStages(specs, loaded, store, spec.name);
    } catch (error) {
      if (!(error instanceof UserError)) throw error;
      return { plan, blocked: { stage: spec.name, reason: error.message } };
    }
  }
  return { plan };
}
