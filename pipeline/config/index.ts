import { existsSync, statSync } from 'node:fs';
import { basename, dirname, extname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { UserError } from '../errors.js';
import { configSchema, isRemoteSource, PIN_PLACEHOLDER, RUN_NAME, type Config } from './schema.js';
import { parseYaml, readYamlFile } from './yaml.js';

export { parseYaml, readYamlFile } from './yaml.js';
export { configSchema, type Config, type IngestConfig, type ModelConfig, type EmbedConfig, type TrainConfig } from './schema.js';

/** A loaded config: the validated values, where they came from, and the folder relative paths start from. */
export interface LoadedConfig {
  config: Config;
  /** The config file as given. */
  path: string;
  /** Relative paths in the config (data sources, models) are resolved against this folder. */
  baseDir: string;
  /** The `--set` overrides it was loaded with, so that a hint can repeat them. */
  overrides: string[];
}

/** The make command that runs `target` on this config with the same overrides, for hints in messages. */
export function makeCommand(target: string, loaded: Pick<LoadedConfig, 'path' | 'overrides'>): string {
  const set = loaded.overrides.length ? ` SET="${loaded.overrides.join(' ')}"` : '';
  return `make ${target} CONFIG=${loaded.path}${set}`;
}

/**
 * Loads a YAML config: follows `extends:` (objects merge, lists replace, `null` removes an
 * inherited key), applies `--set` overrides, then validates. Any mistake is one UserError naming
 * the file and field. A config with `PIN-ME` placeholders is refused unless `allowUnpinned`
 * (what `make pin` loads it with).
 */
export function loadConfig(path: string, overrides: string[] = [], options: { allowUnpinned?: boolean } = {}): LoadedConfig {
  const raw = readWithExtends(resolve(path), []);
  dropRemovedKeys(raw, configSchema);
  // When the file is valid alone, overrides apply to its values with defaults filled in, so that
  // train.layers[0].units=256 changes the first default layer instead of making a one-layer list.
  const filled = overrides.length ? configSchema.safeParse(raw) : undefined;
  const target = filled?.success ? (structuredClone(filled.data) as Record<string, unknown>) : raw;
  for (const override of overrides) applyOverride(target, override);
  dropRemovedKeys(target, configSchema);
  const result = configSchema.safeParse(target, { reportInput: true });
  if (!result.success) throw new UserError(`${path}: ${formatIssues(result.error.issues)}`);
  const config = { ...result.data, run: result.data.run ?? basename(path, extname(path)) };
  if (!RUN_NAME.test(config.run)) throw new UserError(`${path}: the run is named after the file, "${config.run}", which is not a run name (letters, digits, ".", "_" or "-"): set run: to one`);
  const unpinned = placeholders(config);
  if (unpinned.length && !options.allowUnpinned) {
    const reaches = [unpinned.some((f) => f.startsWith('model.hub')) && 'the hub', unpinned.includes('ingest.sha256') && (isRemoteSource(config.ingest.source) && /^kaggle:/i.test(config.ingest.source) ? 'Kaggle' : 'the data source')].filter(Boolean).join(' and ');
    throw new UserError(`${path}: not pinned yet (${unpinned.join(', ')} ${unpinned.length > 1 ? 'are' : 'is'} ${PIN_PLACEHOLDER}): run \`make pin CONFIG=${path}\` on a machine that reaches ${reaches}`);
  }
  return { config, path, baseDir: dirname(resolve(path)), overrides };
}

/** The fields that still hold the PIN-ME placeholder. */
export function placeholders(config: Config): string[] {
  const fields: string[] = [];
  if (config.ingest.sha256 === PIN_PLACEHOLDER) fields.push('ingest.sha256');
  for (const [file, sum] of Object.entries(config.model?.hub?.files ?? {})) if (sum === PIN_PLACEHOLDER) fields.push(`model.hub.files.${file}`);
  return fields;
}

/**
 * `null` on a field that cannot be null means "remove the inherited key" (`model.path: null` in a
 * config that switches to `model.hub`); on a field where null is a value (`train.early_stopping:
 * null` turns early stopping off) it stays. The schema says which is which.
 */
function dropRemovedKeys(value: unknown, schema: z.ZodType): void {
  const object = unwrapSchema(schema);
  if (!(object instanceof z.ZodObject) || !isPlainObject(value)) return;
  for (const [key, field] of Object.entries(value)) {
    const fieldSchema = (object.shape as Record<string, z.ZodType>)[key];
    if (!fieldSchema) continue;
    if (field === null) {
      if (!fieldSchema.safeParse(null).success) delete value[key];
    } else {
      dropRemovedKeys(field, fieldSchema);
    }
  }
}

/** The object schema inside optional, nullable, default and prefault wrappers. */
function unwrapSchema(schema: z.ZodType): z.ZodType {
  let inner = schema;
  for (let def = inner.def as { innerType?: z.ZodType }; def.innerType; def = inner.def as { innerType?: z.ZodType }) inner = def.innerType;
  return inner;
}

/** Resolves a path written in a config file. URLs are returned as they are. */
export function resolveConfigPath(loaded: LoadedConfig, path: string): string {
  return anchored(path, loaded.baseDir);
}

function readWithExtends(path: string, chain: string[]): Record<string, unknown> {
  if (chain.includes(path)) throw new UserError(`${chain[0]}: "extends" forms a cycle through ${path}`);
  if (existsSync(path) && !statSync(path).isFile()) throw new UserError(`${path}: is a folder, not a config file (e.g. --config configs/default.yaml)`);
  const value = readYamlFile(path, 'config file', chain.length ? ` (extended by ${chain[chain.length - 1]})` : '') ?? {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new UserError(`${path}: expected a mapping of config keys at the top level`);
  const { extends: parent, ...own } = value as Record<string, unknown>;
  anchorPaths(own, dirname(path));
  if (parent === undefined) return own;
  if (typeof parent !== 'string') throw new UserError(`${path}: extends: expected a file path, got ${JSON.stringify(parent)}`);
  const base = readWithExtends(resolve(dirname(path), parent), [...chain, path]);
  return deepMerge(base, own);
}

/** Config fields that hold a path. */
const PATH_FIELDS = [['ingest', 'source'], ['model', 'path'], ['report', 'images']] as const;

/**
 * A relative path means "from the folder of the file that wrote it": made absolute while each
 * file is read, so that a config extending `configs/base.yaml` from another folder still finds
 * base.yaml's data and model.
 */
function anchorPaths(values: Record<string, unknown>, dir: string): void {
  for (const [section, field] of PATH_FIELDS) {
    const holder = values[section];
    if (!isPlainObject(holder)) continue;
    const value = holder[field];
    if (typeof value === 'string' && value) holder[field] = anchored(value, dir);
  }
}

/** A path relative to `dir` made absolute; URLs (https://, kaggle://) and absolute paths as they are. */
function anchored(path: string, dir: string): string {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(path) || isAbsolute(path) ? path : resolve(dir, path);
}

function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    const prev = out[key];
    out[key] = isPlainObject(prev) && isPlainObject(value) ? deepMerge(prev, value) : value;
  }
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** `train.layers[1].units=256`: the value is read as YAML, so numbers, booleans and lists work. */
export function applyOverride(target: Record<string, unknown>, override: string): void {
  const eq = override.indexOf('=');
  if (eq <= 0) throw new UserError(`--set ${override}: expected key=value, e.g. --set train.optimizer.lr=0.0003`);
  const keyPath = parseKeyPath(override.slice(0, eq), `--set ${override}`);
  let value: unknown;
  try {
    value = parseYaml(override.slice(eq + 1), `--set ${override}`);
  } catch (error) {
    // Text that is not YAML is taken as a string; a forbidden key or an alias bomb is not.
    if (/is not a key this project reads|cannot be read/.test((error as Error).message)) throw error;
    value = override.slice(eq + 1);
  }
  setPath(target, keyPath, value);
}

/** Parses `a.b[2].c` into ['a', 'b', 2, 'c']. */
export function parseKeyPath(text: string, where: string): (string | number)[] {
  const parts: (string | number)[] = [];
  const re = /([^.[\]]+)|\[(\d+)\]/g;
  // A key path writes into plain objects: these names would reach Object.prototype instead.
  const forbidden = text.split(/[.[\]]/).find((part) => ['__proto__', 'prototype', 'constructor'].includes(part));
  if (forbidden) throw new UserError(`${where}: "${forbidden}" is not a config key`);
  let consumed = '';
  for (const m of text.matchAll(re)) {
    parts.push(m[1] !== undefined ? m[1] : Number(m[2]));
    consumed += m[0];
  }
  if (!/^[^.[\]]+(\[\d+\])*(\.[^.[\]]+(\[\d+\])*)*$/.test(text) || !parts.length || consumed.length !== text.replace(/\./g, '').length) {
    throw new UserError(`${where}: cannot read the key path "${text}" (expected e.g. train.layers[0].units)`);
  }
  return parts;
}

export function setPath(target: Record<string, unknown>, path: (string | number)[], value: unknown): void {
  let node: any = target;
  for (let i = 0; i < path.length - 1; i++) {
    const key = path[i]!;
    if (node[key] === undefined || node[key] === null || typeof node[key] !== 'object') {
      node[key] = typeof path[i + 1] === 'number' ? [] : {};
    }
    node = node[key];
  }
  node[path[path.length - 1]!] = value;
}

export function getPath(target: unknown, path: (string | number)[]): unknown {
  let node: any = target;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = node[key];
  }
  return node;
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) out += typeof part === 'number' ? `[${part}]` : `${out ? '.' : ''}${String(part)}`;
  return out || '(top level)';
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** One line per problem: `train.layers[1].units: expected positive integer, got "big"`. */
export function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  const lines = issues.map((issue) => {
    const path = formatPath(issue.path);
    switch (issue.code) {
      case 'unrecognized_keys':
        return issue.keys.map((k) => `${formatPath([...issue.path, k])}: unknown key`).join('\n  ');
      case 'invalid_type':
        if (issue.input === undefined) return `${path}: required (expected ${issue.expected})`;
        return `${path}: expected ${expectedOf(issue)}, got ${describe(issue.input)}`;
      case 'too_small':
      case 'too_big': {
        const op = issue.code === 'too_small' ? (issue.inclusive ? '>=' : '>') : issue.inclusive ? '<=' : '<';
        const bound = String(issue.code === 'too_small' ? issue.minimum : issue.maximum);
        const what = issue.origin === 'number' ? 'number' : `${issue.origin} length`;
        return `${path}: expected ${what} ${op}${bound}, got ${describe(issue.input)}`;
      }
      case 'invalid_value':
        return `${path}: expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${describe(issue.input)}`;
      default:
        return `${path}: ${issue.message}${issue.input !== undefined && issue.code !== 'custom' ? `, got ${describe(issue.input)}` : ''}`;
    }
  });
  return lines.length === 1 ? lines[0]! : `${lines.length} problems:\n  ${lines.join('\n  ')}`;
}

function expectedOf(issue: z.core.$ZodIssueInvalidType): string {
  return issue.expected === 'int' ? 'integer' : issue.expected;
}
