import { writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve as resolvePath } from 'node:path';
import { UserError } from '../errors.js';
import { formatCount, info } from '../log.js';
import { writeParquet } from '../parquet/index.js';
import type { ManifestBody } from '../artifacts/store.js';
import type { StageRun } from '../stage-run.js';
import { formatOf, readRecords, type Reject } from './formats.js';
import { MOVIE_SCHEMA, splitValidation, validateRecords, type MovieRow } from './rows.js';
import { resolveSource } from './source.js';

export { ingestSources } from './source.js';

export interface LabelsFile {
  /** Genres in label-index order (sorted by name). */
  labels: string[];
  counts: Record<string, { train: number; validation: number; test: number }>;
}

/**
 * Reads the source's files, validates every row, splits validation off train, and writes
 * train.parquet, test.parquet, labels.json and rejects.jsonl into the artifact folder.
 */
export async function ingest(run: StageRun): Promise<ManifestBody> {
  const { config } = run.loaded;
  const started = performance.now();
  const source = await resolveSource(run.loaded);
  const rejects: Reject[] = [];

  const trainFile = source.files.train!;
  const trainRead = readRecords(trainFile, relative(source.root, trainFile), 'train', config.ingest);
  rejects.push(...trainRead.rejects);
  // Every row seen, usable or not: the base of the reject fraction.
  let rowsSeen = trainRead.records.length + trainRead.rejects.length;
  const textFormat = (path: string) => formatOf(path, config.ingest.format) === 'text';
  const train = validateRecords(trainRead.records, rejects, { textFormat: textFormat(trainFile), split: 'train' });
  if (!train.length) throw new UserError(`${trainFile}: no usable training rows (${rejects.length} rejected; first: ${rejects[0]?.reason ?? 'empty file'})`);
  const knownGenres = new Set(train.map((r) => r.genre!));

  // The solution file is the test file with genres; when present it is the test split.
  const testFile = source.files.test_solution ?? source.files.test;
  let test: MovieRow[] = [];
  if (testFile) {
    const role = source.files.test_solution ? 'test_solution' : 'test';
    const testRead = readRecords(testFile, relative(source.root, testFile), role, config.ingest);
    rejects.push(...testRead.rejects);
    rowsSeen += testRead.records.length + testRead.rejects.length;
    test = validateRecords(testRead.records, rejects, { textFormat: textFormat(testFile), split: 'test', knownGenres });
  }

  checkRejectFraction(rejects, rowsSeen, config.ingest.max_reject_fraction);
  // A poster path is relative to its data file; stored absolute so the report finds it from anywhere.
  for (const [rows, file] of [[train, trainFile], [test, testFile]] as const) {
    for (const row of rows) if (row.image && !/^https?:\/\//i.test(row.image) && !isAbsolute(row.image)) row.image = resolvePath(dirname(file!), row.image);
  }
  splitValidation(train, config.ingest.validation_fraction, config.seed);

  const labels = [...knownGenres].sort();
  const counts: LabelsFile['counts'] = Object.fromEntries(labels.map((l) => [l, { train: 0, validation: 0, test: 0 }]));
  for (const row of [...train, ...test]) if (row.genre) counts[row.genre]![row.split]++;

  await writeParquet(join(run.dir, 'train.parquet'), MOVIE_SCHEMA, train as never);
  await writeParquet(join(run.dir, 'test.parquet'), MOVIE_SCHEMA, test as never);
  writeFileSync(join(run.dir, 'labels.json'), `${JSON.stringify({ labels, counts } satisfies LabelsFile, null, 2)}\n`);
  rejects.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line);
  writeFileSync(join(run.dir, 'rejects.jsonl'), rejects.map((r) => JSON.stringify(r)).join('\n') + (rejects.length ? '\n' : ''));

  const rows = {
    train: train.filter((r) => r.split === 'train').length,
    validation: train.filter((r) => r.split === 'validation').length,
    test: test.length,
    rejects: rejects.length,
  };
  const seconds = (performance.now() - started) / 1000;
  info(
    `ingest: ${formatCount(rows.train)} train, ${formatCount(rows.validation)} validation, ${formatCount(rows.test)} test rows, ` +
      `${labels.length} genres, ${rows.rejects} rejected, ${formatCount((train.length + test.length) / seconds)} rows/s`,
  );
  return {
    rows,
    details: {
      source: source.origin,
      // Posters named by the data are read only from inside this folder (the report checks).
      data_root: source.root,
      files: Object.fromEntries(Object.entries(source.files).map(([role, path]) => [role, path])),
      labels: labels.length,
      test_has_genres: test.some((r) => r.genre !== null),
    },
  };
}

function checkRejectFraction(rejects: Reject[], total: number, maxFraction: number): void {
  const fraction = total ? rejects.length / total : 0;
  if (fraction <= maxFraction) return;
  const examples = rejects
    .slice(0, 5)
    .map((r) => `\n  ${r.file}:${r.line}: ${r.reason}`)
    .join('');
  throw new UserError(
    `ingest: ${rejects.length} of ${total} rows rejected (${(fraction * 100).toFixed(2)}%), more than ingest.max_reject_fraction ` +
      `(${(maxFraction * 100).toFixed(2)}%). Nothing was published. First rejects:${examples}`,
  );
}
