import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { sha256 } from '../hash.js';
import { UserError } from '../errors.js';
import { info } from '../log.js';
import { writeFileAtomically, type ArtifactStore } from './store.js';
import { codeProvenance } from './provenance.js';

/**
 * Run records: every build of a config leaves one, kept until it is removed (`make runs
 * REMOVE=<id>`, `make gc KEEP=...`, `make clean`), as DVC keeps an experiment until `exp remove`.
 * `runs/<name>/` is only an alias to the latest record of that name, like a branch to a commit:
 * `make all SET=train.epochs=5` moves the alias `default` and the build it replaced stays
 * listed (`make runs --all`), comparable (`make diff A=<id>`) and kept by `make gc`.
 *
 * A record is `<artifacts>/records/<id>.json`, id = time + a short hash (`20261204-011530-3f9a2c1e`).
 * The same config building further through the pipeline (`make ingest`, then `make train`)
 * extends its record rather than adding one; a changed config, code or input content gives a new
 * record; a build that changes nothing writes nothing.
 */
export interface RunRecord {
  id: string;
  /** The run name (the alias `runs/<name>` points at the latest record of it). */
  name: string;
  created_at: string;
  updated_at: string;
  /** The config file, absolute (relative paths in it start at its folder). */
  config_path: string;
  /** The resolved config the run was built with. */
  config: Record<string, unknown>;
  /** Stage -> the key of its published artifact, for every stage of the config's plan that is built. */
  keys: Record<string, string>;
  /** Stages the config's pipeline has that this record has no artifact of (a `make tokenize` stops before train). */
  not_built: string[];
  commit: string;
  git_dirty: string;
  /** Headline metrics of the evaluate artifact, per split, when the run is evaluated (with their 95% intervals). */
  metrics: Record<string, { accuracy: number; macro_f1: number; log_loss: number; intervals?: Record<string, [number, number]> }> | null;
}

export const RECORD_ID = /^\d{8}-\d{6}-[0-9a-f]{8}$/;
const recordsDir = (store: ArtifactStore) => join(store.root, 'records');
const recordPath = (store: ArtifactStore, id: string) => join(recordsDir(store), `${id}.json`);

/** Every readable record, oldest first; a damaged one is reported once and skipped (it keeps nothing). */
export function listRecords(store: ArtifactStore): RunRecord[] {
  const dir = recordsDir(store);
  if (!existsSync(dir)) return [];
  const records: RunRecord[] = [];
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.json') && RECORD_ID.test(n.slice(0, -5)))) {
    try {
      const record = JSON.parse(readFileSync(join(dir, name), 'utf8')) as RunRecord;
      if (typeof record.name === 'string' && record.keys && typeof record.keys === 'object') records.push(record);
      else info(`runs: ${join(dir, name)} is not a run record (no name or keys); skipped`);
    } catch {
      info(`runs: ${join(dir, name)} is damaged (not valid JSON); skipped; remove it with make runs REMOVE=${name.slice(0, -5)}`);
    }
  }
  return records.sort((a, b) => a.id.localeCompare(b.id));
}

/** The latest record of each name, by name. */
export function latestRecords(store: ArtifactStore): Map<string, RunRecord> {
  const latest = new Map<string, RunRecord>();
  for (const record of listRecords(store)) latest.set(record.name, record);
  return latest;
}

/**
 * A record by its id, or by a unique part of it (the hash, or `20261204-0115`): what a person
 * copies from `make runs --all`. Null when nothing matches; an error when several do.
 */
export function findRecord(store: ArtifactStore, ref: string): RunRecord | null {
  const records = listRecords(store);
  const exact = records.find((r) => r.id === ref);
  if (exact) return exact;
  if (ref.length < 4) return null;
  const matches = records.filter((r) => r.id.includes(ref));
  if (matches.length > 1) throw new UserError(`"${ref}" matches ${matches.length} run records (${matches.slice(0, 4).map((r) => r.id).join(', ')}${matches.length > 4 ? ', ...' : ''}): give more of the id`);
  return matches[0] ?? null;
}

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/**
 * Records the build of `name` with `keys` (its published stages). Returns the record and the one it
 * superseded as the alias's target (when the alias moved to a new record).
 */
export function writeRecord(
  store: ArtifactStore,
  name: string,
  keys: Record<string, string>,
  notBuilt: string[],
  config: Record<string, unknown>,
  configPath: string,
): { record: RunRecord; replaced?: RunRecord } {
  const latest = latestRecords(store).get(name);
  const now = new Date().toISOString();
  const sameBuild = latest && same(latest.config, config) && Object.entries(latest.keys).every(([stage, key]) => keys[stage] === key);
  // A build that changed nothing (every no-op `make all`) reads and writes nothing more.
  if (sameBuild && same(latest.keys, keys) && same(latest.not_built, notBuilt)) return { record: latest };
  const metrics = keys.evaluate ? headlineMetrics(join(store.keyDir('evaluate', keys.evaluate), 'metrics.json')) : null;
  if (sameBuild) {
    // The same build, as far as it went, and further now: one record, extended.
    const record: RunRecord = { ...latest, updated_at: now, keys, not_built: notBuilt, metrics };
    writeFileAtomically(recordPath(store, record.id), `${JSON.stringify(record, null, 2)}\n`);
    return { record };
  }
  const { git_commit, git_dirty } = codeProvenance();
  const stamp = now.slice(0, 19).replace(/[-:]/g, '').replace('T', '-');
  const id = `${stamp}-${sha256(JSON.stringify({ name, keys, config, now, pid: process.pid })).slice(0, 8)}`;
  const record: RunRecord = { id, name, created_at: now, updated_at: now, config_path: configPath, config, keys, not_built: notBuilt, commit: git_commit, git_dirty, metrics };
  mkdirSync(recordsDir(store), { recursive: true });
  writeFileAtomically(recordPath(store, id), `${JSON.stringify(record, null, 2)}\n`);
  return { record, replaced: latest };
}

export function removeRecord(store: ArtifactStore, id: string): void {
  rmSync(recordPath(store, id), { force: true });
}

/**
 * Retention for `make gc KEEP=...`: `KEEP=5` keeps the 5 latest records of each run name,
 * `KEEP=30d` those of the last 30 days; the latest record of a name is always kept (its alias
 * points at it). Returns the records that the policy drops.
 */
export function recordsBeyond(records: RunRecord[], keep: string, now = Date.now()): RunRecord[] {
  const policy = /^(\d+)(d?)$/.exec(keep.trim());
  if (!policy || (!policy[2] && Number(policy[1]) < 1)) throw new UserError(`KEEP=${keep}: expected a count of records per run (KEEP=5) or an age in days (KEEP=30d)`);
  const byName = new Map<string, RunRecord[]>();
  for (const r of records) byName.set(r.name, [...(byName.get(r.name) ?? []), r]);
  const dropped: RunRecord[] = [];
  for (const list of byName.values()) {
    const newestFirst = [...list].sort((a, b) => b.id.localeCompare(a.id));
    newestFirst.forEach((record, index) => {
      if (index === 0) return;
      const old = policy[2] ? now - Date.parse(record.updated_at) > Number(policy[1]) * 86_400_000 : index >= Number(policy[1]);
      if (old) dropped.push(record);
    });
  }
  return dropped;
}

/** The figures `make runs --all` shows, read from the evaluate artifact's metrics.json when the record is written. */
function headlineMetrics(path: string): RunRecord['metrics'] {
  if (!existsSync(path)) return null;
  try {
    const all = JSON.parse(readFileSync(path, 'utf8')) as Record<string, { accuracy?: number; macro?: { f1?: number }; log_loss?: number; intervals?: Record<string, [number, number]> } | null>;
    const out: NonNullable<RunRecord['metrics']> = {};
    for (const split of ['validation', 'test']) {
      const m = all[split];
      if (m && typeof m.accuracy === 'number') out[split] = { accuracy: m.accuracy, macro_f1: m.macro?.f1 ?? NaN, log_loss: m.log_loss ?? NaN, intervals: m.intervals };
    }
    return out;
  } catch {
    return null;
  }
}
