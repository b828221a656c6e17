/**
 * test: `make test`'s runner. Each test file runs in its own `node --test` process, two at a
 * time (the machine's cores); the console gets one line per file as it finishes, the failing
 * tests' names and errors, and a summary; the full TAP of every file is kept in
 * test-results/<file>.tap. The longest files (by the last run's times) start first, so that the
 * two lanes end together.
 *
 *   node dist/scripts/dev/test.js [--jobs 2] [files...]
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { formatSeconds } from '../../pipeline/log.js';

interface FileResult {
  file: string;
  code: number | null;
  pass: number;
  fail: number;
  skip: number;
  seconds: number;
  failures: string[];
}

const args = process.argv.slice(2);
const jobsAt = args.indexOf('--jobs');
const jobs = jobsAt >= 0 ? Number(args.splice(jobsAt, 2)[1]) : 2;
const results = 'test-results';
mkdirSync(results, { recursive: true });
const timesFile = join(results, 'durations.json');
const lastTimes: Record<string, number> = existsSync(timesFile) ? JSON.parse(readFileSync(timesFile, 'utf8')) : {};
const files = (args.length ? args : readdirSync('dist/test').filter((f) => f.endsWith('.test.js')).map((f) => join('dist/test', f))).sort(
  (a, b) => (lastTimes[basename(b)] ?? 1e9) - (lastTimes[basename(a)] ?? 1e9),
);

function runFile(file: string): Promise<FileResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--test', '--test-reporter=tap', file], { stdio: ['ignore', 'pipe', 'pipe'], env: process.env });
    let tap = '';
    child.stdout.on('data', (d) => (tap += d));
    child.stderr.on('data', (d) => (tap += d));
    child.on('close', (code) => {
      writeFileSync(join(results, `${basename(file, '.js')}.tap`), tap);
      const count = (name: string) => Number(new RegExp(`^# ${name} (\\d+)$`, 'm').exec(tap)?.[1] ?? 0);
      resolve({ file, code, pass: count('pass'), fail: count('fail'), skip: count('skipped'), seconds: (performance.now() - started) / 1000, failures: failuresOf(tap) });
    });
  });
}

/** Each failing test's name and the first lines of its error, from the TAP. */
function failuresOf(tap: string): string[] {
  const out: string[] = [];
  const lines = tap.split('\n');
  lines.forEach((line, i) => {
    const failed = /^\s*not ok \d+ - (.*)$/.exec(line);
    if (!failed) return;
    const yaml = lines.slice(i + 1, i + 40);
    const end = yaml.findIndex((l) => /^\s*\.\.\.$/.test(l));
    const error = yaml.slice(0, end < 0 ? 12 : end).filter((l) => !/^\s*(---|duration_ms|location|failureType|code|name|operator|stack):?/.test(l)).slice(0, 10);
    out.push(`  not ok: ${failed[1]}\n${error.map((l) => `    ${l.trim()}`).join('\n')}`);
  });
  return out;
}

const started = performance.now();
const done: FileResult[] = [];
let next = 0;
async function lane(): Promise<void> {
  while (next < files.length) {
    const result = await runFile(files[next++]!);
    done.push(result);
    const ok = result.code === 0 && result.fail === 0;
    const counts = `${result.pass} passed${result.fail ? `, ${result.fail} failed` : ''}${result.skip ? `, ${result.skip} skipped` : ''}`;
    process.stdout.write(`${ok ? 'ok  ' : 'FAIL'}  ${basename(result.file).padEnd(28)} ${counts.padEnd(28)} ${formatSeconds(result.seconds).padStart(6)}  [${done.length}/${files.length}]\n`);
    if (!ok) process.stdout.write(`${result.failures.join('\n') || `  exit ${result.code}: see ${join(results, `${basename(result.file, '.js')}.tap`)}`}\n`);
  }
}
await Promise.all(Array.from({ length: Math.max(1, jobs) }, lane));
writeFileSync(timesFile, `${JSON.stringify({ ...lastTimes, ...Object.fromEntries(done.map((r) => [basename(r.file), Math.round(r.seconds)])) }, null, 2)}\n`);
const total = (key: 'pass' | 'fail' | 'skip') => done.reduce((a, r) => a + r[key], 0);
const failedFiles = done.filter((r) => r.code !== 0 || r.fail > 0);
process.stdout.write(
  `tests: ${total('pass')} passed, ${total('fail')} failed, ${total('skip')} skipped in ${done.length} files, ${formatSeconds((performance.now() - started) / 1000)}; full TAP in ${results}/\n`,
);
if (failedFiles.length) {
  process.stdout.write(`failed: ${failedFiles.map((r) => basename(r.file)).join(', ')}\n`);
  process.exit(1);
}
