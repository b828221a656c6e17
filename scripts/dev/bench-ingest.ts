/**
 * bench-ingest: times the ingest stage on a large text file (default 100,000 rows, about 70 MB)
 * made by repeating a data set's training rows with fresh ids, and reports wall time, rows/s and
 * peak memory. Writes artifacts/bench/ingest.json.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { repeatedTrainingLines, writeBenchResults } from './bench-data.js';
import { runMain, UserError } from '../../pipeline/errors.js';
import { parseArgs } from '../../pipeline/cli.js';
import { formatBytes, formatCount, info } from '../../pipeline/log.js';

runMain(async () => {
  const args = await parseArgs('bench-ingest', 'Benchmark the ingest stage on a large text file.', (y) =>
    y
      .option('data', { type: 'string', default: existsSync('../shared/data/imdb-genre-sample') ? '../shared/data/imdb-genre-sample' : 'data/demo', describe: 'folder with train_data.txt to repeat' })
      .option('rows', { type: 'number', default: 100_000 }),
  );
  const source = join(args.data, 'train_data.txt');
  if (!existsSync(source)) throw new UserError(`bench-ingest: ${source} not found (run make demo-data, or pass --data)`);
  const work = mkdtempSync(join(tmpdir(), 'bench-ingest-'));
  try {
    const out = repeatedTrainingLines(args.data, args.rows);
    mkdirSync(join(work, 'data'));
    writeFileSync(join(work, 'data', 'train_data.txt'), out.join('\n') + '\n');
    const bytes = statSync(join(work, 'data', 'train_data.txt')).size;
    writeFileSync(join(work, 'config.yaml'), 'ingest:\n  source: data\n');
    info(`bench-ingest: ${formatCount(args.rows)} rows, ${formatBytes(bytes)} from ${source}`);
    const started = performance.now();
    const result = spawnSync(process.execPath, [resolve('dist/stages/ingest.js'), '--config', join(work, 'config.yaml'), '--artifacts', join(work, 'artifacts')], { stdio: 'inherit' });
    const seconds = (performance.now() - started) / 1000;
    if (result.status !== 0) throw new UserError('bench-ingest: the ingest stage failed');
    const manifest = JSON.parse(readFileSync(join(work, 'artifacts', 'runs', 'config', 'ingest', 'manifest.json'), 'utf8'));
    const report = { rows: args.rows, input_bytes: bytes, wall_seconds: Number(seconds.toFixed(2)), rows_per_second: Math.round(args.rows / seconds), peak_rss_mb: manifest.timings.peak_rss_mb, stage_seconds: manifest.timings.seconds };
    const written = writeBenchResults(args.artifacts, 'ingest', report, false);
    info(`bench-ingest: ${report.wall_seconds}s wall (process start to exit), ${formatCount(report.rows_per_second)} rows/s, peak memory ${report.peak_rss_mb} MiB -> ${written}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
