import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import YAML from 'yaml';
import { writeFileAtomically, type ArtifactStore } from './store.js';
import { UserError } from '../errors.js';
import { readYamlFile } from '../config/yaml.js';
import { RUN_NAME } from '../config/schema.js';
import { info } from '../log.js';
import { writeRecord, type RunRecord } from './records.js';

/**
 * `artifacts/runs/<run>/` is what a person opens: one link per stage to the artifact that the
 * run's config used last (`ingest -> ../../ingest/<key>`), and the resolved config.
 *
 * A run folder never mixes configs: it is re-pointed as a whole. Recording a stage links every
 * stage of the config's plan that is published and removes the links of stages that are not
 * (they belonged to another config), so `make tokenize SET=seed=7` leaves a run of seed 7 with
 * train, evaluate and report not built, rather than seed 42's model beside seed 7's tokens.
 */
export function runDir(store: ArtifactStore, run: string): string {
  // A run is named, never a path: `--run ../runs/default` must not reach outside runs/.
  if (!RUN_NAME.test(run)) throw new UserError(`"${run}" is not a run name (letters, digits, ".", "_" or "-", starting with a letter or digit; runs are folders under ${join(store.root, 'runs')})`);
  return join(store.root, 'runs', run);
}

export function recordRun(store: ArtifactStore, run: string, plan: Record<string, string>, resolvedConfig: unknown, configPath: string, needed: readonly string[] = Object.keys(plan)): RunRecord {
  const dir = runDir(store, run);
  mkdirSync(dir, { recursive: true });
  const current = runPointers(store, run);
  // A stage the plan cannot key (it waits for an upstream build) or does not use has no artifact of this config.
  for (const stage of Object.keys(current)) if (!(stage in plan)) rmSync(join(dir, stage), { force: true });
  for (const [stage, key] of Object.entries(plan)) {
    if (!store.readManifest(stage, key)) {
      rmSync(join(dir, stage), { force: true });
      continue;
    }
    if (current[stage] === key) continue;
    // Links and config are replaced by rename so that parallel stages (make -j2) never see half a file.
    const tmp = join(dir, `.${stage}.${process.pid}.tmp`);
    rmSync(tmp, { force: true });
    symlinkSync(join('..', '..', stage, key), tmp);
    renameSync(tmp, join(dir, stage));
  }
  writeFileAtomically(join(dir, 'config.yaml'), YAML.stringify(resolvedConfig));
  // Relative paths in the config (model.path, report.images) start at the config file's folder.
  writeFileAtomically(join(dir, 'run.json'), `${JSON.stringify({ config: resolve(configPath) }, null, 2)}\n`);
  const published = runPointers(store, run);
  const notBuilt = needed.filter((stage) => !(stage in published));
  const { record, replaced } = writeRecord(store, run, published, notBuilt, resolvedConfig as Record<string, unknown>, resolve(configPath));
  if (replaced && replaced.id !== record.id) {
    info(`run ${run}: now ${record.id}; the build it replaced is kept as ${replaced.id} (make runs ALL=1; make diff A=${replaced.id} B=${run})`);
  }
  return record;
}

/** The resolved config a run last used, and the config file it came from (null for runs recorded before run.json existed). */
export function readRun(store: ArtifactStore, run: string): { config: unknown; configPath: string | null } | null {
  const dir = runDir(store, run);
  if (!existsSync(join(dir, 'config.yaml'))) return null;
  const fix = `rebuild the run (\`make all\` with its config rewrites it) or forget it (\`make clean\` with its config, or remove ${dir})`;
  const source = join(dir, 'run.json');
  let configPath: string | null = null;
  if (existsSync(source)) {
    try {
      configPath = (JSON.parse(readFileSync(source, 'utf8')) as { config?: unknown }).config as string;
    } catch {
      throw new UserError(`${source}: damaged (not valid JSON): ${fix}`);
    }
    if (typeof configPath !== 'string') throw new UserError(`${source}: damaged (no "config" path): ${fix}`);
  }
  let config: unknown;
  try {
    config = readYamlFile(join(dir, 'config.yaml'), 'run config');
  } catch (error) {
    throw new UserError(`${(error as Error).message.replace(/\.$/, '')}: the run's config.yaml is damaged; ${fix}`);
  }
  if (!config || typeof config !== 'object') throw new UserError(`${join(dir, 'config.yaml')}: damaged (not a mapping of config keys): ${fix}`);
  return { config, configPath };
}

/** Stage -> key that the run points at. */
export function runPointers(store: ArtifactStore, run: string): Record<string, string> {
  const dir = runDir(store, run);
  const pointers: Record<string, string> = {};
  if (!existsSync(dir)) return pointers;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    // `.<stage>.<pid>.tmp` is another process's link on its way in (recordRun): not a pointer, and
    // not to be removed as one (its rename would fail and that build exit 1).
    if (entry.isSymbolicLink() && !entry.name.startsWith('.')) pointers[entry.name] = basename(readlinkSync(join(dir, entry.name)));
  }
  return pointers;
}

export function listRuns(store: ArtifactStore): string[] {
  const dir = join(store.root, 'runs');
  return existsSync(dir) ? readdirSync(dir).filter((name) => RUN_NAME.test(name)) : [];
}
