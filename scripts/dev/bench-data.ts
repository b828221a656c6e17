import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UserError } from '../../pipeline/errors.js';

/**
 * What the benchmarks share: large inputs made of a real data set's text, and one place for
 * their results (artifacts/bench/<name>.json).
 */

/** The training lines of a Kaggle-format folder (`ID ::: TITLE ::: GENRE ::: DESCRIPTION`), split into their four fields. */
export function trainingFields(dataDir: string): string[][] {
  return readFileSync(join(dataDir, 'train_data.txt'), 'utf8')
    .split('\n')
    .map((line) => line.split(' ::: '))
    .filter((fields) => fields.length === 4);
}

/** `rows` training lines, the data's own repeated, with fresh ids 1..rows so that none is a duplicate. */
export function repeatedTrainingLines(dataDir: string, rows: number): string[] {
  const fields = trainingFields(dataDir);
  return Array.from({ length: rows }, (_, i) => [String(i + 1), ...fields[i % fields.length]!.slice(1)].join(' ::: '));
}

/** Writes a benchmark's figures to <artifacts>/bench/<name>.json (and prints them as JSON unless `print` is false); returns the path. */
export function writeBenchResults(artifacts: string, name: string, results: unknown, print = true): string {
  const path = join(artifacts, 'bench', `${name}.json`);
  mkdirSync(join(artifacts, 'bench'), { recursive: true });
  writeFileSync(path, `${JSON.stringify(results, null, 2)}\n`);
  if (print) process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);
  return path;
}

/**
 * Runs one stage program as a user would (its own process), shows its log, and returns that log
 * for the figures a benchmark reads from it (e.g. the time a model took to derive).
 */
export function runStageProgram(stage: string, args: string[], env: NodeJS.ProcessEnv): { stderr: string; seconds: number } {
  const started = performance.now();
  const result = spawnSync(process.execPath, [resolve(`dist/stages/${stage}.js`), ...args], { stdio: ['ignore', 'inherit', 'pipe'], encoding: 'utf8', env });
  process.stderr.write(result.stderr);
  if (result.status !== 0) throw new UserError(`benchmark: the ${stage} stage failed (${args.join(' ')})`);
  return { stderr: result.stderr, seconds: (performance.now() - started) / 1000 };
}
