import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../errors.js';
import { formatCount, formatSeconds, info, warn, progress } from '../log.js';
import type { TfidfConfig } from '../config/schema.js';
import type { Manifest, ManifestBody } from '../artifacts/store.js';
import type { StageRun } from '../stage-types.js';
import { ROW_FILES, type RowFile, type Splits, type Texts } from '../ingest/artifact.js';
import { denseSlice, type SparseRows } from '../mlp/rows.js';
import { TFIDF_STATE_FILE, writeVectors } from './artifact.js';
import type { Vectorizer } from './featurizer.js';

/**
 * TF-IDF of word n-grams, computed as scikit-learn's TfidfVectorizer does with
 * `token_pattern=r"(?u)\b\w\w+\b"`, `sublinear_tf`, `smooth_idf=True` and `norm="l2"`: a word is a
 * run of two or more letters, digits or underscores; n-grams join adjacent words with a space;
 * idf = ln((1 + n) / (1 + df)) + 1; each row is scaled to unit length.
 *
 * Written here rather than taken from a package: the npm TF-IDF libraries (natural, wink) score
 * documents against queries and have neither min_df, a max_features cap, sublinear tf nor a
 * stored vocabulary to transform new text with, which is all this featurizer is.
 */
const WORD = /[\p{L}\p{N}_]{2,}/gu;

/** What `fit` learned, stored in the embed artifact so that `predict` makes the same vectors. */
export interface TfidfState {
  settings: TfidfConfig;
  /** Training descriptions the vocabulary and IDF were fitted on. */
  documents: number;
  /** N-grams that met min_df, before the max_features cap. */
  candidates: number;
  /** The kept n-grams, in column order (alphabetical, as scikit-learn orders them). */
  vocabulary: string[];
  idf: number[];
}

/** Calls `emit` with every n-gram of `text`, up to `ngram_max` words long, in text order. */
export function ngrams(text: string, settings: Pick<TfidfConfig, 'ngram_max' | 'lowercase'>, emit: (gram: string) => void): void {
  const words = (settings.lowercase ? text.toLowerCase() : text).match(WORD) ?? [];
  for (let n = 1; n <= settings.ngram_max; n++) {
    for (let i = 0; i + n <= words.length; i++) {
      let gram = words[i]!;
      for (let j = 1; j < n; j++) gram += ` ${words[i + j]}`;
      emit(gram);
    }
  }
}

export class TfidfVectorizer {
  private readonly index: Map<string, number>;

  constructor(readonly state: TfidfState) {
    this.index = new Map(state.vocabulary.map((gram, i) => [gram, i]));
  }

  get dim(): number {
    return this.state.vocabulary.length;
  }

  /** Vocabulary and IDF from `texts` (the training descriptions, and only those). */
  static fit(texts: string[], settings: TfidfConfig): TfidfVectorizer {
    // Per n-gram: descriptions it occurs in, occurrences in all (max_features keeps the most
    // frequent), and the last description counted (one lookup per occurrence, no set per description).
    const counts = new Map<string, { df: number; total: number; last: number }>();
    texts.forEach((text, doc) =>
      ngrams(text, settings, (gram) => {
        const count = counts.get(gram);
        if (!count) counts.set(gram, { df: 1, total: 1, last: doc });
        else {
          count.total++;
          if (count.last !== doc) (count.df++, (count.last = doc));
        }
      }),
    );
    const candidates = [...counts.keys()].filter((gram) => counts.get(gram)!.df >= settings.min_df);
    // The most frequent first, ties by the n-gram itself so that the cut is the same on every machine.
    const kept = candidates.sort((a, b) => counts.get(b)!.total - counts.get(a)!.total || (a < b ? -1 : 1)).slice(0, settings.max_features).sort();
    const n = texts.length;
    const idf = kept.map((gram) => Math.log((1 + n) / (1 + counts.get(gram)!.df)) + 1);
    return new TfidfVectorizer({ settings, documents: n, candidates: candidates.length, vocabulary: kept, idf });
  }

  /** Row-major dense vectors of `texts`, `dim` floats each (for tests and small inputs). */
  transformDense(texts: string[]): Float32Array {
    return denseSlice(this.transform(texts), this.dim, 0, texts.length);
  }

  /** Sparse rows of `texts`, columns ascending, every non-empty row of unit length. */
  transform(texts: string[], onRows: (rows: number) => void = () => {}): SparseRows {
    const { dim } = this;
    const { settings, idf } = this.state;
    const indptr = new Int32Array(texts.length + 1);
    let indices: Int32Array = new Int32Array(Math.max(16, texts.length * 64));
    let values: Float32Array = new Float32Array(indices.length);
    const counts = new Map<number, number>();
    texts.forEach((text, row) => {
      counts.clear();
      ngrams(text, settings, (gram) => {
        const column = this.index.get(gram);
        if (column !== undefined) counts.set(column, (counts.get(column) ?? 0) + 1);
      });
      let norm = 0;
      for (const [column, count] of counts) {
        const weight = (settings.sublinear_tf ? 1 + Math.log(count) : count) * idf[column]!;
        counts.set(column, weight);
        norm += weight * weight;
      }
      const scale = norm > 0 ? 1 / Math.sqrt(norm) : 0;
      const at = indptr[row]!;
      if (at + counts.size > indices.length) {
        const grown = Math.max(indices.length * 2, at + counts.size);
        indices = growInt(indices, grown);
        values = growFloat(values, grown);
      }
      const columns = [...counts.keys()].sort((a, b) => a - b);
      columns.forEach((column, k) => ((indices[at + k] = column), (values[at + k] = counts.get(column)! * scale)));
      indptr[row + 1] = at + columns.length;
      if ((row + 1) % 1000 === 0) onRows(1000);
    });
    onRows(texts.length % 1000);
    const nnz = indptr[texts.length]!;
    return { indptr, indices: indices.slice(0, nnz), values: values.slice(0, nnz), width: dim };
  }
}

/** What the TF-IDF featurizer's build sees (featurizer.ts). */
export type TfidfRun = StageRun<{ embed: { method: 'tfidf'; tfidf: TfidfConfig } }, Record<string, never>, { texts: Texts; splits: Splits }, Record<string, never>>;

/** The embed stage with TF-IDF: fit on the training split, store the state, transform every row. */
export async function build(run: TfidfRun): Promise<ManifestBody> {
  const settings = run.params.embed.tfidf;
  const files = run.inputs.texts;
  // Validation and test rows never inform the vocabulary or the IDF they are scored with.
  const fitTexts = files.train.filter((_, i) => run.inputs.splits.train[i] === 'train').map((r) => r.description);
  const fitStarted = performance.now();
  const vectorizer = TfidfVectorizer.fit(fitTexts, settings);
  const fitSeconds = (performance.now() - fitStarted) / 1000;
  if (!vectorizer.dim) {
    if (settings.min_df > 1) throw new UserError(`embed.tfidf.min_df: no n-gram occurs in ${settings.min_df} of the ${fitTexts.length} training descriptions; lower it`);
    throw new UserError(`embed: TF-IDF found no word in the ${fitTexts.length} training descriptions (a word is two or more letters, digits or underscores): check that the description column holds the plots`);
  }
  // A handful of n-grams gives every description nearly the same vector: say so, do not train on it quietly.
  const fewNgrams = vectorizer.dim < 100 ? `only ${vectorizer.dim} n-gram${vectorizer.dim === 1 ? '' : 's'} met min_df ${settings.min_df} in ${fitTexts.length} training descriptions: the vectors can tell little apart${settings.min_df > 1 ? ' (lower embed.tfidf.min_df, or give it more text)' : ' (the training text is very short or repetitive)'}` : undefined;
  if (fewNgrams) warn(`embed: warning: ${fewNgrams}`);
  writeFileSync(join(run.dir, TFIDF_STATE_FILE), `${JSON.stringify(vectorizer.state)}\n`);
  info(`embed: TF-IDF fitted on ${formatCount(fitTexts.length)} training descriptions in ${formatSeconds(fitSeconds)}: ${formatCount(vectorizer.state.candidates)} n-grams in >= ${settings.min_df} of them, ${formatCount(vectorizer.dim)} kept`);

  const rows = files.train.length + files.test.length;
  const bar = progress('embed', rows);
  const transformStarted = performance.now();
  const metadata = {
    featurizer: 'tfidf',
    ngram_max: String(settings.ngram_max),
    min_df: String(settings.min_df),
    max_features: String(settings.max_features),
    sublinear_tf: String(settings.sublinear_tf),
    lowercase: String(settings.lowercase),
    fitted_on: `${fitTexts.length} training rows`,
  };
  const nonZeros: Partial<Record<RowFile, number>> = {};
  for (const file of ROW_FILES) {
    const vectors = vectorizer.transform(files[file].map((r) => r.description), (n) => bar.tick(n));
    writeVectors(run.dir, file, vectors, { rowIds: files[file].map((r) => r.id), metadata });
    nonZeros[file] = vectors.indptr[vectors.indptr.length - 1]!;
  }
  const transformSeconds = (performance.now() - transformStarted) / 1000;
  bar.done();
  return {
    rows: { train: files.train.length, test: files.test.length },
    timings: { fit_seconds: round(fitSeconds), transform_seconds: round(transformSeconds), rows_per_second: Math.round(rows / transformSeconds) },
    details: { method: 'tfidf', hidden: vectorizer.dim, sparse: true, mean_non_zeros: round((nonZeros.train! + nonZeros.test!) / Math.max(1, rows)), fitted_on_rows: fitTexts.length, ngrams_meeting_min_df: vectorizer.state.candidates, random_model: false, warnings: fewNgrams ? [fewNgrams] : [] },
  };
}

/** New descriptions through the vocabulary and IDF the embed artifact stored. */
export async function open(_loaded: unknown, embed: { dir: string; manifest: Manifest }): Promise<Vectorizer> {
  const vectorizer = readState(embed.dir);
  return {
    dim: vectorizer.dim,
    async vectorize(texts) {
      const started = performance.now();
      const vectors = vectorizer.transform(texts);
      return { vectors, seconds: { vectorize: (performance.now() - started) / 1000 } };
    },
  };
}

export function readState(embedDir: string): TfidfVectorizer {
  return new TfidfVectorizer(JSON.parse(readFileSync(join(embedDir, TFIDF_STATE_FILE), 'utf8')) as TfidfState);
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

function growInt(a: Int32Array, n: number): Int32Array {
  const out = new Int32Array(n);
  out.set(a);
  return out;
}

function growFloat(a: Float32Array, n: number): Float32Array {
  const out = new Float32Array(n);
  out.set(a);
  return out;
}
