import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { cpus, totalmem } from 'node:os';
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

/** The machine a figure was measured on: CPU model, cores and the SIMD flags that decide kernel speed (int8 gains differ with them). */
export function machine(): { cpu: string; cores: number; flags: string[]; memory_gb: number } {
  let info = '';
  try {
    info = readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    // Not Linux: the model name from Node alone.
  }
  const flags = new Set((/^flags\s*:\s*(.*)$/m.exec(info)?.[1] ?? '').split(/\s+/));
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    flags: ['sse4_2', 'avx', 'avx2', 'fma', 'f16c', 'avx512f', 'avx512bw', 'avx512_vnni', 'avx_vnni', 'avx512_bf16', 'amx_tile'].filter((f) => flags.has(f)),
    memory_gb: Math.round((totalmem() / 1024 ** 3) * 10) / 10,
  };
}
