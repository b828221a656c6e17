import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { sha256File } from '../hash.js';
import { acquireLock } from './lock.js';
import { UserError } from '../errors.js';
import type { CodeFingerprint } from './code.js';
import { codeProvenance } from './provenance.js';

export { writeFileAtomically } from '../files.js';
import { digestViews, filesOf, type Contract } from './contract.js';
import type { PlannedRead } from './plan.js';

export const MANIFEST = 'manifest.json';

export interface FileEntry {
  bytes: number;
  sha256: string;
}

/** What a stage records about one artifact. A folder without this file does not exist. */
export interface Manifest {
  stage: string;
  key: string;
  stage_version: number;
  created_at: string;
  /** The stage's slice of the config, as it went into the key. */
  params: unknown;
  /** How it ran: the settings that change speed and never the result (threads, providers, batch sizes). Not in the key. */
  settings?: unknown;
  /** Each port it read: from which artifact, and the digest of that content (what the key holds). */
  reads?: Record<string, PlannedRead>;
  /** Upstream stage -> the key of the artifact it read. */
  inputs: Record<string, string>;
  /** Port -> digest of what this artifact's view of it opens (what a reading stage's key holds). */
  ports?: Record<string, string>;
  /** Source files (data, models) -> sha256, as they went into the key. */
  sources: Record<string, string>;
  /** The code the stage ran, as it went into the key (absent in artifacts made before it was recorded). */
  code?: CodeFingerprint;
  files: Record<string, FileEntry>;
  rows: Record<string, number>;
  timings: Record<string, number>;
  versions: Record<string, string>;
  /** Anything else the stage wants to say (backend, execution provider, statistics). */
  details: Record<string, unknown>;
}

export type ManifestBody = Pick<Manifest, 'rows'> & Partial<Pick<Manifest, 'timings' | 'versions' | 'details'>>;

export interface BuildContext {
  /** The folder to write into; it becomes the artifact when `build` returns. */
  dir: string;
}

/** A published artifact whose files no longer match its manifest. */
export class CorruptArtifact extends UserError {
  constructor(
    readonly stage: string,
    readonly key: string,
    readonly dir: string,
    readonly problem: string,
  ) {
    super(`${dir}: ${problem}: the ${stage} artifact changed after it was published, and nothing will read it. Rebuild it with \`make ${stage} FORCE=${stage}\` (same CONFIG and SET), or check every artifact with \`make verify\``);
  }
}

/** A manifest that cannot be read: the artifact's record of itself is gone, so nothing reads the artifact. */
export class DamagedManifest extends UserError {
  constructor(
    readonly stage: string,
    readonly key: string,
    readonly path: string,
    readonly problem: string,
  ) {
    super(`${path}: the manifest is damaged (${problem}), so the ${stage} artifact ${key} cannot be trusted: rebuild it with \`make ${stage} FORCE=${stage}\` (same CONFIG and SET), or remove ${dirname(path)}; \`make verify\` lists every damaged artifact`);
  }
}

/** What is missing from a parsed manifest for the store to use it, or nothing. */
function manifestProblem(value: unknown): string | undefined {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return 'not a JSON object';
  const m = value as Record<string, unknown>;
  for (const field of ['stage', 'key', 'created_at'] as const) if (typeof m[field] !== 'string') return `no ${field}`;
  for (const field of ['files', 'rows', 'timings', 'versions', 'details', 'inputs', 'sources'] as const) {
    if (!m[field] || typeof m[field] !== 'object' || Array.isArray(m[field])) return `no ${field}`;
  }
  for (const [file, entry] of Object.entries(m.files as Record<string, unknown>)) {
    const e = entry as Record<string, unknown> | null;
    if (!e || typeof e.bytes !== 'number' || typeof e.sha256 !== 'string') return `files.${file} has no size or sha256`;
  }
  return undefined;
}

/**
 * The content-addressed artifact store: `<root>/<stage>/<key>/` with a manifest. Writers build
 * into `<root>/<stage>/.partial-<key>/` under a lock, then publish with one rename.
 */
export class ArtifactStore {
  constructor(readonly root: string) {}

  keyDir(stage: string, key: string): string {
    return join(this.root, stage, key);
  }

  /** The manifest of a published artifact, or undefined when there is none; a damaged one is a DamagedManifest. */
  readManifest(stage: string, key: string): Manifest | undefined {
    const path = join(this.keyDir(stage, key), MANIFEST);
    if (!existsSync(path)) return undefined;
    let value: unknown;
    try {
      value = JSON.parse(readFileSync(path, 'utf8'));
    } catch (error) {
      throw new DamagedManifest(stage, key, path, `not valid JSON (${(error as Error).message})`);
    }
    const problem = manifestProblem(value);
    if (problem) throw new DamagedManifest(stage, key, path, problem);
    return value as Manifest;
  }

  /** Keys of a stage that are published (have a manifest). */
  listKeys(stage: string): string[] {
    const dir = join(this.root, stage);
    if (!existsSync(dir)) return [];
    return readdirSync(dir).filter((name) => !name.startsWith('.') && !name.endsWith('.lock') && existsSync(join(dir, name, MANIFEST)));
  }

  /**
   * Checks a published artifact's files against its manifest, sizes and sha256. Returns what is wrong, or nothing: an artifact edited, truncated or
   * partly overwritten after it was published must never be read as if it were the real one.
   */
  async check(stage: string, key: string, only?: readonly string[]): Promise<string | undefined> {
    const sizes = this.checkSizes(stage, key);
    if (sizes) return sizes;
    const dir = this.keyDir(stage, key);
    const files = this.readManifest(stage, key)!.files;
    for (const [file, entry] of Object.entries(only ? filesOf(files, only) : files)) {
      if ((await sha256File(join(dir, file))) !== entry.sha256) return `${file} does not match the sha256 in its manifest`;
    }
    return undefined;
  }

  /** The cheap half of `check`: every file there, with its size (a stat per file; for status and reuse). */
  checkSizes(stage: string, key: string): string | undefined {
    const manifest = this.readManifest(stage, key);
    if (!manifest) return 'not built';
    const dir = this.keyDir(stage, key);
    for (const [file, entry] of Object.entries(manifest.files)) {
      const path = join(dir, file);
      if (!existsSync(path)) return `${file} is missing`;
      const bytes = statSync(path).size;
      if (bytes !== entry.bytes) return `${file} has ${bytes} bytes, the manifest says ${entry.bytes}`;
    }
    return undefined;
  }

  /**
   * The artifact's folder, after checking every file (or the `only` ones a reader reads) against
   * the manifest; a mismatch is a CorruptArtifact.
   */
  async verified(stage: string, key: string, only?: readonly string[]): Promise<{ dir: string; manifest: Manifest }> {
    const problem = await this.check(stage, key, only);
    if (problem) throw new CorruptArtifact(stage, key, this.keyDir(stage, key), problem);
    return { dir: this.keyDir(stage, key), manifest: this.readManifest(stage, key)! };
  }

  cacheDir(name: string): string {
    const dir = join(this.root, '.cache', name);
    mkdirSync(dir, { recursive: true });
    return dir;
  }

  /**
   * Returns the published artifact for (stage, key), building it first if needed. Two processes
   * asking for the same key never both build it: the second waits, then finds it published.
   * A failed build leaves nothing (embed's finished shards live in the vector cache, not here).
   */
  async ensure(
    header: Pick<Manifest, 'stage' | 'key' | 'stage_version' | 'params' | 'settings' | 'reads' | 'inputs' | 'sources' | 'code'>,
    build: (ctx: BuildContext) => Promise<ManifestBody>,
    options: { force?: boolean; contract?: Contract } = {},
  ): Promise<{ manifest: Manifest; dir: string; built: boolean }> {
    const { stage, key } = header;
    const dir = this.keyDir(stage, key);
    // --force rebuilds over a damaged manifest; anything else is told how to.
    const readOrForced = () => {
      try {
        return this.readManifest(stage, key);
      } catch (error) {
        if (error instanceof DamagedManifest && options.force) return undefined;
        throw error;
      }
    };
    const existing = readOrForced();
    if (existing && !options.force) {
      const problem = this.checkSizes(stage, key);
      if (problem) throw new CorruptArtifact(stage, key, dir, problem);
      return { manifest: existing, dir, built: false };
    }

    mkdirSync(join(this.root, stage), { recursive: true });
    const lock = await acquireLock(join(this.root, stage, `${key}.lock`), `${stage} ${key}`);
    try {
      const published = readOrForced();
      if (published && !options.force) return { manifest: published, dir, built: false };
      // A folder without a manifest at the key path is debris from a foreign tool; it is not ours.
      if (!published && existsSync(dir) && !existsSync(join(dir, MANIFEST))) rmSync(dir, { recursive: true, force: true });

      const partial = join(this.root, stage, `.partial-${key}`);
      rmSync(partial, { recursive: true, force: true });
      mkdirSync(partial, { recursive: true });

      const started = performance.now();
      const body = await this.buildOrCleanUp(header, partial, build);
      const files = await describeFiles(partial);
      const details = body.details ?? {};
      const manifest: Manifest = {
        ...header,
        created_at: new Date().toISOString(),
        files,
        ports: options.contract ? await digestViews(options.contract, partial, { files, details }) : undefined,
        rows: body.rows,
        timings: { seconds: round((performance.now() - started) / 1000), peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024), ...body.timings },
        versions: { node: process.version, ...codeProvenance(), ...body.versions },
        details,
      };
      writeDurably(join(partial, MANIFEST), `${JSON.stringify(manifest, null, 2)}\n`);
      this.publish(stage, key, partial, existsSync(dir));
      return { manifest, dir, built: true };
    } finally {
      lock.release();
    }
  }

  /** Runs the build; on failure leaves nothing behind. */
  private async buildOrCleanUp(header: Pick<Manifest, 'stage' | 'key'>, partial: string, build: (ctx: BuildContext) => Promise<ManifestBody>): Promise<ManifestBody> {
    try {
      return await build({ dir: partial });
    } catch (error) {
      rmSync(partial, { recursive: true, force: true });
      if ((error as NodeJS.ErrnoException).code === 'ENOSPC') {
        throw new UserError(
          `${header.stage}: no space left on the device while building ${header.key} in ${this.root}: free some space (df -h ${this.root}), or point --artifacts (ARTIFACTS=) at a larger disk; nothing was published`,
        );
      }
      throw error;
    }
  }

  /** Moves a complete partial folder into place; with --force, the old artifact steps aside only then. */
  private publish(stage: string, key: string, partial: string, replacing: boolean): void {
    const dir = this.keyDir(stage, key);
    if (!replacing) {
      renameSync(partial, dir);
      return;
    }
    const replaced = join(this.root, stage, `.replaced-${key}-${process.pid}`);
    renameSync(dir, replaced);
    renameSync(partial, dir);
    rmSync(replaced, { recursive: true, force: true });
  }
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

async function describeFiles(root: string): Promise<Record<string, FileEntry>> {
  const files: Record<string, FileEntry> = {};
  const walk = async (dir: string): Promise<void> => {
    for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) await walk(path);
      else if (entry.name !== MANIFEST) files[relative(root, path)] = { bytes: statSync(path).size, sha256: await sha256File(path) };
    }
  };
  await walk(root);
  return files;
}

/** Writes a file and flushes it to disk, so that a published manifest is never empty after a crash. */
export function writeDurably(path: string, text: string | Uint8Array): void {
  writeFileSync(path, text);
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
