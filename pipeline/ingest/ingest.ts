import { writeFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, relative, resolve as resolvePath } from 'node:path';
import { UserError } from '../errors.js';
import { formatCount, info } from '../log.js';
import type { ManifestBody } from '../artifacts/store.js';
import { formatOf, readRecords, type Reject } from './formats.js';
import { splitValidation, validateRecords, type MovieRow } from './rows.js';
import type { ResolvedSource } from './source.js';
import type { IngestRun } from './signature.js';

import { rejectsPath, writeLabels, writeRows, type LabelsFile } from './artifact.js';

export { ingestSources } from './source.js';
export type { LabelsFile } from './artifact.js';

/**
 * Reads the source's files, validates every row, splits validation off train, and writes
 * train.parquet, test.parquet, labels.json and rejects.jsonl into the artifact folder.
 */
export async function ingest(run: IngestRun): Promise<ManifestBody> {
  const { ingest: settings, seed } = run.params;
  const started = performance.now();
  const source = run.sources.data;
  const { train, test, rejects, rowsSeen } = readSourceRows(source, settings);
  checkRejectFraction(rejects, rowsSeen, settings.max_reject_fraction);
  splitValidation(train, settings.validation_fraction, seed);
  const labels = [...new Set(train.map((r) => r.genre!))].sort();
  const counts: LabelsFile['counts'] = Object.fromEntries(labels.map((l) => [l, { train: 0, validation: 0, test: 0 }]));
  for (const row of [...train, ...test]) if (row.genre) counts[row.genre]![row.split]++;

  await writeRows(run.dir, 'train', train);
  await writeRows(run.dir, 'test', test);
  writeLabels(run.dir, { labels, counts });
  rejects.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line);
  writeFileSync(rejectsPath(run.dir), rejects.map((r) => JSON.stringify(r)).join('\n') + (rejects.length ? '\n' : ''));

  const rows = {
    train: train.filter((r) => r.split === 'train').length,
    validation: train.filter((r) => r.split === 'validation').length,
    test: test.length,
    rejects: rejects.length,
  };
  const seconds = (performance.now() - started) / 1000;
  const testHasGenres = test.some((r) => r.genre !== null);
  if (test.length && !testHasGenres) {
    info(`ingest: the ${rows.test} test rows have no genres (${basename(source.files.test ?? '')} has none and no solution file was found): evaluate and the report show no test metrics`);
  }
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
      test_has_genres: testHasGenres,
    },
  };
}

/**
 * The valid rows of the training file and of the test file (the solution file, the test file
 * with genres, when there is one), every rejected row, and how many rows were seen in all.
 */
function readSourceRows(source: ResolvedSource, settings: IngestRun['params']['ingest']) {
  const rejects: Reject[] = [];
  const textFormat = (path: string) => formatOf(path, settings.format) === 'text';
  const trainFile = source.files.train!;
  const trainRead = readRecords(trainFile, relative(source.root, trainFile), 'train', settings);
  rejects.push(...trainRead.rejects);
  // Every row seen, usable or not: the base of the reject fraction.
  let rowsSeen = trainRead.records.length + trainRead.rejects.length;
  const train = validateRecords(trainRead.records, rejects, { textFormat: textFormat(trainFile), split: 'train', maxDescriptionChars: settings.max_description_chars });
  if (!train.length) throw new UserError(`${trainFile}: no usable training rows (${rejects.length} rejected; first: ${rejects[0]?.reason ?? 'empty file'})`);

  const testFile = source.files.test_solution ?? source.files.test;
  let test: MovieRow[] = [];
  if (testFile) {
    const role = source.files.test_solution ? 'test_solution' : 'test';
    const testRead = readRecords(testFile, relative(source.root, testFile), role, settings);
    rejects.push(...testRead.rejects);
    rowsSeen += testRead.records.length + testRead.rejects.length;
    test = validateRecords(testRead.records, rejects, { textFormat: textFormat(testFile), split: 'test', knownGenres: new Set(train.map((r) => r.genre!)), maxDescriptionChars: settings.max_description_chars });
  }
  // A poster path is relative to its data file; stored absolute so the report finds it from anywhere.
  for (const [rows, file] of [[train, trainFile], [test, testFile]] as const) {
    for (const row of rows) if (row.image && !/^https?:\/\//i.test(row.image) && !isAbsolute(row.image)) row.image = resolvePath(dirname(file!), row.image);
  }
  return { train, test, rejects, rowsSeen };
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
