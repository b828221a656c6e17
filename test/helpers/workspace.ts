import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readEmbeddings } from '../../pipeline/arrow/index.js';
import { rowCosines } from '../../pipeline/onnx/pooling.js';

/** The repository root (tests run from dist/test/). */
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** A temporary folder with a data folder, a config and an artifact store, as a user would have. */
export interface Workspace {
  dir: string;
  artifacts: string;
  config: string;
  cache: string;
  write(path: string, content: string | Buffer): string;
}

export function workspace(configYaml = ''): Workspace {
  const dir = mkdtempSync(join(tmpdir(), 'pipeline-test-'));
  const ws: Workspace = {
    dir,
    artifacts: join(dir, 'artifacts'),
    config: join(dir, 'config.yaml'),
    cache: join(dir, 'cache'),
    write(path, content) {
      const full = join(dir, path);
      mkdirSync(dirname(full), { recursive: true });
      writeFileSync(full, content);
      return full;
    },
  };
  if (configYaml) ws.write('config.yaml', configYaml);
  return ws;
}

/** The command line of a program, with the workspace's config and store unless `args` names its own. */
function commandLine(ws: Workspace, program: string, args: string[]): string[] {
  const defaults = [...(args.includes('--config') ? [] : ['--config', ws.config]), ...(args.includes('--artifacts') ? [] : ['--artifacts', ws.artifacts])];
  return [join(REPO, 'dist', `${program}.js`), ...defaults, ...args];
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs one of the project's programs (e.g. 'stages/ingest') the way make does. */
export function runProgram(ws: Workspace, program: string, args: string[] = []): RunResult {
  const result = spawnSync(process.execPath, commandLine(ws, program, args), {
    cwd: ws.dir,
    encoding: 'utf8',
    env: { ...process.env, PIPELINE_CACHE: ws.cache, CI: '1' },
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** As runProgram, without blocking this process (needed when this process also serves HTTP). */
export async function runProgramAsync(ws: Workspace, program: string, args: string[] = []): Promise<RunResult> {
  const child = startProgram(ws, program, args);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const [code] = (await once(child, 'exit')) as [number | null];
  return { code, stdout, stderr };
}

export function startProgram(ws: Workspace, program: string, args: string[] = []) {
  return spawn(process.execPath, commandLine(ws, program, args), {
    cwd: ws.dir,
    env: { ...process.env, PIPELINE_CACHE: ws.cache, CI: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Segments in the workspace store's vector cache: one per shard an embed finished, kept when it is killed. */
export function cachedSegments(ws: Workspace): number {
  const dir = join(ws.artifacts, '.cache', 'vectors');
  if (!existsSync(dir)) return 0;
  return readdirSync(dir).reduce((n, encoder) => n + readdirSync(join(dir, encoder)).filter((f) => f.endsWith('.keys')).length, 0);
}

/**
 * Starts the embed stage, waits until it has added `shards` shards to the vector cache, and kills
 * it (SIGKILL, as a crash or a preempted machine would): the interrupted build a resume test starts from.
 */
export async function killEmbedAfterShards(ws: Workspace, shards: number, args: string[] = [], pollMs = 10): Promise<void> {
  const child = startProgram(ws, 'stages/embed', args);
  while (cachedSegments(ws) < shards) {
    if (child.exitCode !== null) throw new Error('embed finished before it could be killed');
    await new Promise((r) => setTimeout(r, pollMs));
  }
  child.kill('SIGKILL');
  await once(child, 'exit');
}

/** Lines in the Kaggle format: `ID ::: TITLE ::: GENRE ::: DESCRIPTION`. */
export function kaggleLines(rows: { id: number | string; title?: string; genre?: string; text?: string }[], withGenre = true): string {
  return rows.map((r) => [r.id, r.title ?? `Movie ${r.id} (2001)`, ...(withGenre ? [r.genre ?? 'drama'] : []), r.text ?? `A plot about thing ${r.id}.`].join(' ::: ')).join('\n') + '\n';
}

/** A small, valid data set of `n` train rows over a few genres plus a solution file. */
export function smallDataset(n = 60, genres = ['drama', 'comedy', 'horror']) {
  const train = Array.from({ length: n }, (_, i) => ({ id: i + 1, genre: genres[i % genres.length], text: `Plot number ${i} about ${genres[i % genres.length]}.` }));
  const test = Array.from({ length: Math.ceil(n / 3) }, (_, i) => ({ id: i + 1, genre: genres[i % genres.length], text: `Test plot ${i}.` }));
  return { train: kaggleLines(train), test: kaggleLines(test, false), solution: kaggleLines(test) };
}

/**
 * A workspace with the generated demo data set and `model`, embedded once on the CPU (fp32):
 * the ground the precision tests (int8, fp16) compare against.
 */
export function embeddedDemoWorkspace(model: string): { ws: Workspace; fp32Key: string } {
  const ws = workspace(`ingest:\n  source: demo\nmodel:\n  path: ${model}\nembed:\n  providers: [cpu]\n  threads: 1\n`);
  const made = spawnSync(process.execPath, [join(REPO, 'dist', 'scripts', 'dev', 'generate-demo-data.js'), '--out', join(ws.dir, 'demo')], { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(`generate-demo-data: ${made.stderr}`);
  for (const stage of ['ingest', 'tokenize', 'embed']) {
    const result = runProgram(ws, `stages/${stage}`);
    if (result.code !== 0) throw new Error(`${stage}: ${result.stderr}`);
  }
  const manifest = JSON.parse(readFileSync(join(ws.artifacts, 'runs', 'config', 'embed', 'manifest.json'), 'utf8')) as { key: string };
  return { ws, fp32Key: manifest.key };
}

/** The smallest cosine between the rows of two embed artifacts of the same store (train and test files). */
export function minRowCosine(artifacts: string, keyA: string, keyB: string): number {
  let min = 1;
  for (const file of ['train', 'test']) {
    const a = readEmbeddings(join(artifacts, 'embed', keyA, `${file}.arrow`));
    const b = readEmbeddings(join(artifacts, 'embed', keyB, `${file}.arrow`));
    for (const cosine of rowCosines(a.vectors, b.vectors, a.hidden)) min = Math.min(min, cosine);
  }
  return min;
}

/**
 * A copy of the compiled program beside the real node_modules, so that a test can edit the code
 * a stage runs without touching the repository's: `run` starts one of its programs on `ws`.
 */
export function programCopy(ws: Workspace): { dist: string; run(program: string, args?: string[]): RunResult & { output: string } } {
  const copy = join(ws.dir, 'program');
  cpSync(join(REPO, 'dist'), join(copy, 'dist'), { recursive: true });
  symlinkSync(join(REPO, 'node_modules'), join(copy, 'node_modules'));
  return {
    dist: join(copy, 'dist'),
    run(program, args = []) {
      const result = spawnSync(process.execPath, [join(copy, 'dist', `${program}.js`), '--config', ws.config, '--artifacts', ws.artifacts, ...args], { cwd: ws.dir, encoding: 'utf8', env: { ...process.env, PIPELINE_CACHE: ws.cache, CI: '1' } });
      return { code: result.status, stdout: result.stdout, stderr: result.stderr, output: `${result.stdout}${result.stderr}` };
    },
  };
}

/** `make TARGET` on the workspace's config and store. */
export function make(ws: Workspace, args: string[]): RunResult & { output: string } {
  const result = spawnSync('make', ['--no-print-directory', ...args, `CONFIG=${ws.config}`, `ARTIFACTS=${ws.artifacts}`], { cwd: REPO, encoding: 'utf8', env: { ...process.env, PIPELINE_CACHE: ws.cache, CI: '1' } });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr, output: `${result.stdout}${result.stderr}` };
}
