import { existsSync, readFileSync, statSync } from 'node:fs';
import YAML, { isScalar, type Document } from 'yaml';
import { UserError } from '../errors.js';

/**
 * The one reader of every YAML file the project reads (configs and what they extend, sweep
 * files, gate baselines, a run's config.yaml): a missing file, a folder, a syntax error, a key
 * that would reach Object.prototype (`__proto__`, `constructor`, `prototype`) and an alias bomb
 * (billion laughs) are each one error naming the file, and where it can, the line.
 */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);
/** Aliases a file may expand: enough for any config, far too few for an exponential bomb. */
const MAX_ALIASES = 100;

export function readYamlFile(path: string, what: string, hint = ''): unknown {
  if (!existsSync(path)) throw new UserError(`${what} not found: ${path}${hint}`);
  if (!statSync(path).isFile()) throw new UserError(`${path}: is a folder, not a ${what} (name the YAML file itself)`);
  return parseYaml(readFileSync(path, 'utf8'), path);
}

/** Parses YAML text (a file's, or a `--set` value, with `where` naming it), with the checks above. */
export function parseYaml(text: string, where: string): unknown {
  const doc = YAML.parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length) {
    const e = doc.errors[0]!;
    throw new UserError(`${where}${position(e.linePos?.[0])}: invalid YAML: ${e.message.split('\n')[0]}`);
  }
  checkKeys(doc, text, where);
  try {
    return doc.toJS({ maxAliasCount: MAX_ALIASES });
  } catch (error) {
    throw new UserError(`${where}: cannot be read: ${(error as Error).message.split('\n')[0]} (more than ${MAX_ALIASES} alias expansions: write the values out instead of repeating anchors)`);
  }
}

function checkKeys(doc: Document, text: string, where: string): void {
  YAML.visit(doc, {
    Pair(_, pair) {
      if (!isScalar(pair.key) || !FORBIDDEN_KEYS.has(String(pair.key.value))) return undefined;
      const line = pair.key.range ? text.slice(0, pair.key.range[0]).split('\n').length : undefined;
      throw new UserError(`${where}${line ? `:${line}` : ''}: "${String(pair.key.value)}" is not a key this project reads (it would reach every object's prototype)`);
    },
  });
}

function position(pos: { line: number; col: number } | undefined): string {
  return pos ? `:${pos.line}:${pos.col}` : '';
}
