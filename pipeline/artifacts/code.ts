import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sha256 } from '../hash.js';

/**
 * The code a stage runs, as a dependency of its key (as DVC treats a stage's command and code):
 * the compiled modules reachable from the stage's program through static imports, dynamic
 * imports and worker URLs, each hashed, plus the installed version of every package they import.
 * An edit to the report's code reruns the report and nothing else; a new onnxruntime-node reruns
 * embed. Modules that cannot change what a stage writes (logging, errors, argument parsing, the
 * store's own plumbing) are left out, so that fixing a progress line does not re-embed a corpus.
 */
export interface CodeFingerprint {
  /** One hash over everything below: what goes into the key. */
  hash: string;
  /** Module (relative to dist/) -> sha256 of its compiled text. */
  modules: Record<string, string>;
  /** Package -> installed version. */
  packages: Record<string, string>;
}

const DIST = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const INFRASTRUCTURE = [/^pipeline\/(log|errors|cli|runner|dag)\.js$/, /^pipeline\/artifacts\//];
const SPECIFIERS = [
  /\b(?:import|export)\s[^'";]*?\bfrom\s*['"]([^'"]+)['"]/g,
  /\bimport\s*\(\s*['"`]([^'"`]+)['"`]\s*\)/g,
  /\bimport\s+['"]([^'"]+)['"]/g,
  /\bnew\s+URL\(\s*['"]([^'"]+\.js)['"]\s*,\s*import\.meta\.url\s*\)/g,
];

const cache = new Map<string, CodeFingerprint>();

/** The fingerprint of the code reachable from `entries` (paths relative to dist/, e.g. `stages/report.js`). */
export function codeFingerprint(entries: readonly string[]): CodeFingerprint {
  const id = entries.join('\n');
  const hit = cache.get(id);
  if (hit) return hit;
  const modules: Record<string, string> = {};
  const packages: Record<string, string> = {};
  const pending = entries.map((entry) => normalize(entry));
  while (pending.length) {
    const module = pending.pop()!;
    if (module in modules) continue;
    const path = join(DIST, module);
    if (!existsSync(path)) throw new Error(`code fingerprint: ${path} not found (is dist/ built?)`);
    const text = readFileSync(path, 'utf8');
    modules[module] = sha256(text);
    for (const pattern of SPECIFIERS) {
      for (const match of text.matchAll(pattern)) {
        const specifier = match[1]!;
        if (specifier.startsWith('node:')) continue;
        if (specifier.startsWith('.')) {
          const target = relative(DIST, resolve(dirname(path), specifier));
          if (!INFRASTRUCTURE.some((re) => re.test(target))) pending.push(target);
        } else {
          const name = specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : specifier.split('/')[0]!;
          packages[name] ??= installedVersion(name);
        }
      }
    }
  }
  const sorted = <T>(record: Record<string, T>) => Object.fromEntries(Object.entries(record).sort(([a], [b]) => a.localeCompare(b)));
  const fingerprint = { modules: sorted(modules), packages: sorted(packages) };
  const result = { hash: sha256(JSON.stringify(fingerprint)).slice(0, 16), ...fingerprint };
  cache.set(id, result);
  return result;
}

function installedVersion(name: string): string {
  // dist/ sits beside node_modules/ in the repository (and in a copy of it).
  for (let dir = DIST; ; dir = dirname(dir)) {
    const manifest = join(dir, 'node_modules', name, 'package.json');
    if (existsSync(manifest)) return (JSON.parse(readFileSync(manifest, 'utf8')) as { version?: string }).version ?? 'unknown';
    if (dirname(dir) === dir) return 'not installed';
  }
}
