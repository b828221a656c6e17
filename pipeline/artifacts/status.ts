import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { stableStringify } from '../hash.js';
import { describeOwner, holderState } from './lock.js';
import type { Plan } from './plan.js';
import type { ArtifactStore } from './store.js';
import type { CodeFingerprint } from './code.js';

/** True when every stage is built and the run already points at it: `make all` has nothing to do. */
export function allUpToDate(statuses: StageStatus[], pointers: Record<string, string>): boolean {
  return statuses.every((s) => s.built && s.key !== null && pointers[s.stage] === s.key);
}

export interface StageStatus {
  stage: string;
  /** Null while it waits for an upstream build: its key depends on what that build writes. */
  key: string | null;
  built: boolean;
  /** built; would run; waits (for an upstream build, which may leave it up to date); cannot be planned (the config). */
  state: 'built' | 'would run' | 'waits' | 'cannot be planned';
  /** Why the stage would run (empty when it is up to date). */
  reasons: string[];
}

/**
 * Says, per stage the pipeline needs, whether its artifact exists and, if not, what changed
 * since the artifact the run last used (as `dvc status` does): a param, the content of a port it
 * reads, a source file, the code. A stage whose upstream would rebuild cannot be keyed yet: it
 * may well stay up to date (early cutoff), and it says so.
 */
export function explainStatus(plan: Plan, store: ArtifactStore, pointers: Record<string, string>): StageStatus[] {
  const statuses: StageStatus[] = [];
  for (const name of plan.needed) {
    const stage = plan.stages.get(name);
    if (!stage) {
      const waiting = plan.waiting.find((w) => w.stage === name)!;
      statuses.push({ stage: name, key: null, built: false, state: waiting.on ? 'waits' : 'cannot be planned', reasons: [waiting.on ? `${waiting.reason}; it stays up to date if what it reads comes out the same` : waiting.reason] });
      continue;
    }
    const published = store.readManifest(name, stage.key) !== undefined;
    const damage = published ? store.checkSizes(name, stage.key) : undefined;
    const built = published && !damage;
    const reasons: string[] = [];
    if (damage) reasons.push(`published, but ${damage}: it changed after publishing; rebuild it with FORCE=${name}`);
    else if (!built) {
      const previousKey = pointers[name];
      const previous = previousKey ? store.readManifest(name, previousKey) : undefined;
      if (!previousKey) reasons.push('never built for this run');
      else if (!previous) reasons.push(`the artifact it used (${previousKey}) is gone`);
      else {
        if (previous.stage_version !== stage.spec.version) reasons.push(`stage code changed (version ${previous.stage_version} -> ${stage.spec.version})`);
        reasons.push(...codeChanges(previous.code, stage.code));
        for (const change of diffValues(previous.params, stage.params)) reasons.push(change);
        for (const [alias, read] of Object.entries(stage.reads)) {
          const before = previous.reads?.[alias];
          if (before?.digest !== read.digest) reasons.push(`its input ${read.port} (from ${read.stage}) changed`);
        }
        if (stage.spec.provenance) {
          for (const [input, key] of Object.entries(stage.inputs)) if (previous.inputs[input] !== key) reasons.push(`upstream ${input} is another artifact (${previous.inputs[input] ?? 'none'} -> ${key})`);
        }
        for (const [source, hash] of Object.entries(stage.sources)) {
          if (previous.sources[source] !== hash) reasons.push(`source ${source} changed`);
        }
        if (!reasons.length) reasons.push('key changed');
      }
      reasons.push(...lockNote(store, name, stage.key));
    }
    statuses.push({ stage: name, key: stage.key, built, state: built ? 'built' : 'would run', reasons });
  }
  return statuses;
}

/** Whether someone is building the key now, or left a lock that a build would take over. */
function lockNote(store: ArtifactStore, stage: string, key: string): string[] {
  const path = join(store.root, stage, `${key}.lock`);
  if (!existsSync(path)) return [];
  const state = holderState(path);
  return [state.alive ? `being built now by ${describeOwner(state.owner)} (${state.why})` : `a stale lock of ${describeOwner(state.owner)} is left (${state.why}): a build takes it over, \`make gc\` removes it`];
}

/** Which modules and packages differ from the code an artifact was built with. */
function codeChanges(before: CodeFingerprint | undefined, after: CodeFingerprint): string[] {
  if (!before) return ['code not recorded in the artifact it used (built before code fingerprints)'];
  if (before.hash === after.hash) return [];
  const changed = (a: Record<string, string>, b: Record<string, string>) => [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => a[k] !== b[k]).sort();
  const modules = changed(before.modules, after.modules);
  const packages = changed(before.packages, after.packages).map((p) => `${p} ${before.packages[p] ?? '(none)'} -> ${after.packages[p] ?? '(none)'}`);
  const list = (items: string[]) => (items.length > 4 ? `${items.slice(0, 4).join(', ')} and ${items.length - 4} more` : items.join(', '));
  return [
    ...(modules.length ? [`code changed: ${list(modules)}`] : []),
    ...(packages.length ? [`packages changed: ${list(packages)}`] : []),
  ];
}

/** Lists `a.b: old -> new` for every leaf that differs between two config sections. */
export function diffValues(before: unknown, after: unknown, prefix = ''): string[] {
  const changes: string[] = [];
  const walk = (a: unknown, b: unknown, path: string): void => {
    if (isObject(a) && isObject(b)) {
      for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) walk(a[key], b[key], path ? `${path}.${key}` : key);
    } else if (stableStringify(a) !== stableStringify(b)) {
      changes.push(`${path}: ${show(a)} -> ${show(b)}`);
    }
  };
  walk(before, after, prefix);
  return changes;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function show(value: unknown): string {
  return value === undefined ? '(unset)' : JSON.stringify(value);
}
