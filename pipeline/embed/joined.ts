import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { info } from '../log.js';
import { ROW_FILES, type RowFile } from '../ingest/artifact.js';
import type { ArtifactStore, Manifest, ManifestBody } from '../artifacts/store.js';
import type { LoadedConfig } from '../config/index.js';
import { featureRows, readVectors, vectorsPath, widthOf, writeVectors, type VectorTable } from './artifact.js';
import { isSparse, rowCount, sparseFromDense, type FeatureRows } from '../mlp/rows.js';
import { readRowIds } from '../arrow/index.js';
import { FEATURIZERS, memberConfig, methodsOf, type FeaturizerName, type Vectorizer } from './featurizer.js';
import type { EmbedRun } from './signature.js';

/**
 * A joined featurizer (`embed.method: [use-lite, tfidf]`): each member builds in its own folder
 * of the artifact, `parts/<member>/`, exactly as it would alone (BERT and USE-lite from their
 * own vector caches), then the vectors are put side by side, in the order the list gives. What
 * a member keeps for predict (tfidf.json) stays in its folder, with the part of the manifest it
 * opens with (`part.json`); its vector files are removed once joined.
 */
const partDir = (dir: string, member: FeaturizerName) => join(dir, 'parts', member);

interface Part {
  params: unknown;
  details: Record<string, unknown>;
  sources: Record<string, string>;
}

export async function build(run: EmbedRun): Promise<ManifestBody> {
  const methods = methodsOf(run.params.embed.method);
  const parts = (run.params.embed as unknown as { parts: Record<FeaturizerName, Record<string, unknown>> }).parts;
  const built: Record<string, { body: ManifestBody; dims: number }> = {};
  const vectors: Record<RowFile, VectorTable[]> = { train: [], test: [] };
  const rowIds: Partial<Record<RowFile, string[]>> = {};
  for (const method of methods) {
    const dir = partDir(run.dir, method);
    mkdirSync(dir, { recursive: true });
    info(`embed: ${method}, part ${methods.indexOf(method) + 1} of ${methods.length}`);
    const module = await FEATURIZERS[method].load();
    // The member sees what it would alone: its params; the inputs, settings and sources are the members' together.
    const body = await module.build({ ...run, dir, params: parts[method] as EmbedRun['params'] });
    for (const file of ROW_FILES) {
      vectors[file].push(readVectors(dir, file));
      rowIds[file] ??= readRowIds(vectorsPath(dir, file));
    }
    built[method] = { body, dims: widthOf(vectors.train.at(-1)!) };
    const part: Part = { params: parts[method], details: body.details ?? {}, sources: run.sourceHashes };
    writeFileSync(join(dir, 'part.json'), `${JSON.stringify(part, null, 2)}\n`);
    for (const file of ROW_FILES) rmSync(join(dir, `${file}.arrow`));
  }
  const hidden = Object.values(built).reduce((n, b) => n + b.dims, 0);
  for (const file of ROW_FILES) {
    writeVectors(run.dir, file, sideBySide(vectors[file].map((t) => ({ rows: featureRows(t), dim: widthOf(t) }))), { rowIds: rowIds[file], metadata: { featurizer: methods.join('+'), widths: methods.map((m) => `${m}:${built[m]!.dims}`).join(',') } });
  }
  info(`embed: joined ${methods.map((m) => `${m} (${built[m]!.dims})`).join(' + ')} = ${hidden} dimensions`);
  return {
    rows: built[methods[0]!]!.body.rows,
    timings: Object.fromEntries(methods.flatMap((m) => Object.entries(built[m]!.body.timings ?? {}).map(([k, v]) => [`${m}.${k}`, v]))),
    versions: Object.assign({}, ...methods.map((m) => built[m]!.body.versions ?? {})),
    details: { method: methods, hidden, widths: Object.fromEntries(methods.map((m) => [m, built[m]!.dims])), parts: Object.fromEntries(methods.map((m) => [m, built[m]!.body.details])), random_model: methods.some((m) => built[m]!.body.details?.random_model) },
  };
}

/**
 * Rows of several featurizers joined: row i is row i of each, one after the other. Dense when
 * every part is; sparse when one is (a dense part's values become explicit entries), so joining
 * TF-IDF never densifies it.
 */
function sideBySide(parts: { rows: FeatureRows; dim: number }[]): VectorTable {
  const rows = rowCount(parts[0]!.rows, parts[0]!.dim);
  const width = parts.reduce((n, p) => n + p.dim, 0);
  if (!parts.some((p) => isSparse(p.rows))) {
    const out = new Float32Array(rows * width);
    for (let row = 0; row < rows; row++) {
      let at = row * width;
      for (const { rows: x, dim } of parts) {
        out.set((x as Float32Array).subarray(row * dim, (row + 1) * dim), at);
        at += dim;
      }
    }
    return { vectors: out, hidden: width };
  }
  const sparse = parts.map((p) => (isSparse(p.rows) ? p.rows : sparseFromDense(p.rows, p.dim)));
  const indptr = new Int32Array(rows + 1);
  for (let row = 0; row < rows; row++) indptr[row + 1] = indptr[row]! + sparse.reduce((n, p) => n + p.indptr[row + 1]! - p.indptr[row]!, 0);
  const indices = new Int32Array(indptr[rows]!);
  const values = new Float32Array(indptr[rows]!);
  for (let row = 0; row < rows; row++) {
    let at = indptr[row]!;
    let offset = 0;
    sparse.forEach((p, i) => {
      for (let k = p.indptr[row]!; k < p.indptr[row + 1]!; k++) (indices[at] = offset + p.indices[k]!), (values[at++] = p.values[k]!);
      offset += parts[i]!.dim;
    });
  }
  return { indptr, indices, values, width };
}

/** predict: each member opened from its folder as it would be alone, its vectors joined. */
export async function open(loaded: LoadedConfig, embed: { dir: string; manifest: Manifest }, store: ArtifactStore): Promise<Vectorizer> {
  const methods = methodsOf(loaded.config.embed.method);
  const members = await Promise.all(
    methods.map(async (method) => {
      const dir = partDir(embed.dir, method);
      const part = JSON.parse(readFileSync(join(dir, 'part.json'), 'utf8')) as Part;
      const manifest = { ...embed.manifest, params: part.params, details: part.details, sources: part.sources };
      const module = await FEATURIZERS[method].load();
      return module.open({ ...loaded, config: memberConfig(loaded.config, method) }, { dir, manifest }, store);
    }),
  );
  return {
    dim: members.reduce((n, m) => n + m.dim, 0),
    async vectorize(texts) {
      const outputs = await Promise.all(members.map((m) => m.vectorize(texts)));
      const seconds = Object.assign({}, ...outputs.map((o, i) => Object.fromEntries(Object.entries(o.seconds).map(([k, v]) => [`${methods[i]}.${k}`, v]))));
      return { vectors: featureRows(sideBySide(outputs.map((o, i) => ({ rows: o.vectors, dim: members[i]!.dim })))), seconds };
    },
  };
}
