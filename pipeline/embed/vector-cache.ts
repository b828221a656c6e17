import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { basename, join } from 'node:path';
import { warn } from '../log.js';
import { writeFileAtomically } from '../artifacts/store.js';

/**
 * Every vector a frozen encoder has computed, by what it was computed from: a content-addressed,
 * append-only cache inside the artifact store (`.cache/vectors/<encoder>/`), so that a grown data
 * set embeds only its new rows, an interrupted embed resumes where it stopped, slices embedded on
 * other machines merge by importing their vectors, and predict reuses the vectors of texts
 * already embedded.
 *
 * `<encoder>` is the encoder's identity (model file checksums, what the pipeline derived from it,
 * precision, pooling, the code): one folder per way of making vectors. A row's key is the sha256
 * of exactly what the encoder reads (its token ids, or its text). Each write adds one segment:
 *
 *   <name>.f32    the vectors, float32 little-endian, `dim` per row
 *   <name>.keys   the rows' keys, 32 bytes each, in the same order (written last: its presence
 *                 says the segment is whole)
 *
 * where <name> is the sha256 of the two files' contents: a segment is checked against its own name
 * before its vectors are used, and one that fails is removed and its rows computed again.
 */
export const KEY_BYTES = 32;

interface Segment {
  name: string;
  rows: number;
}

export class VectorCache {
  private readonly index = new Map<string, { segment: string; row: number }>();
  private readonly segments = new Map<string, Segment>();
  /** Vectors of segments checked against their names in this process. */
  private readonly verified = new Map<string, Float32Array>();

  private constructor(
    readonly dir: string,
    readonly dim: number,
  ) {}

  /** Opens (and creates) the cache of one encoder; `identity` is written beside it for people and `make verify`. */
  static open(dir: string, dim: number, identity: Record<string, unknown> = {}): VectorCache {
    mkdirSync(dir, { recursive: true });
    const cache = new VectorCache(dir, dim);
    cache.remember('encoder', { dim, ...identity });
    cache.load();
    return cache;
  }

  private load(): void {
    for (const file of readdirSync(this.dir).filter((f) => f.endsWith('.keys')).sort()) {
      const name = basename(file, '.keys');
      if (this.segments.has(name)) continue;
      const keys = readFileSync(join(this.dir, file));
      const rows = keys.length / KEY_BYTES;
      const vectors = join(this.dir, `${name}.f32`);
      // A segment whose sizes disagree is debris; it is left for `verify` and `gc` to report.
      if (!Number.isInteger(rows) || !existsSync(vectors) || statSync(vectors).size !== rows * this.dim * 4) continue;
      this.segments.set(name, { name, rows });
      for (let row = 0; row < rows; row++) {
        const key = keys.toString('hex', row * KEY_BYTES, (row + 1) * KEY_BYTES);
        if (!this.index.has(key)) this.index.set(key, { segment: name, row });
      }
    }
  }

  /** Keeps a fact about the encoder beside its vectors (how the model file was adapted), for runs that never open the model. */
  remember(name: string, value: unknown): void {
    const path = join(this.dir, `${name}.json`);
    if (!existsSync(path)) writeFileAtomically(path, `${JSON.stringify(value, null, 2)}\n`);
  }

  recall<T>(name: string): T | undefined {
    const path = join(this.dir, `${name}.json`);
    try {
      return existsSync(path) ? (JSON.parse(readFileSync(path, 'utf8')) as T) : undefined;
    } catch {
      return undefined;
    }
  }

  has(key: string): boolean {
    return this.index.has(key);
  }

  get size(): number {
    return this.index.size;
  }

  /**
   * Copies the cached vector of each key into `out` at its position (`dim` floats per position),
   * for the keys the cache holds; returns which positions were filled. Every segment read from
   * is first checked against its name, once per process.
   */
  read(keys: readonly string[], out: Float32Array): Uint8Array {
    const filled = new Uint8Array(keys.length);
    const bySegment = new Map<string, { position: number; row: number }[]>();
    keys.forEach((key, position) => {
      const hit = this.index.get(key);
      if (!hit) return;
      const list = bySegment.get(hit.segment);
      if (list) list.push({ position, row: hit.row });
      else bySegment.set(hit.segment, [{ position, row: hit.row }]);
    });
    for (const [segment, wanted] of bySegment) {
      const vectors = this.segmentVectors(segment);
      if (!vectors) continue;
      for (const { position, row } of wanted) {
        out.set(vectors.subarray(row * this.dim, (row + 1) * this.dim), position * this.dim);
        filled[position] = 1;
      }
    }
    return filled;
  }

  /**
   * Checks every segment that holds one of `keys` against its name, before anything is decided
   * from `has`: a damaged segment is removed, so its rows count as missing and are computed again.
   */
  checkSegmentsOf(keys: readonly string[]): void {
    const segments = new Set(keys.flatMap((key) => this.index.get(key)?.segment ?? []));
    for (const segment of segments) this.segmentVectors(segment);
  }

  /** A segment's vectors, after checking its content against its name; a damaged segment is removed (its rows are computed again). */
  private segmentVectors(name: string): Float32Array | undefined {
    const checked = this.verified.get(name);
    if (checked) return checked;
    const keysPath = join(this.dir, `${name}.keys`);
    const vectorsPath = join(this.dir, `${name}.f32`);
    const vectorBytes = readFileSync(vectorsPath);
    if (segmentName(readFileSync(keysPath), vectorBytes) !== name) {
      warn(`embed: warning: the cached segment ${vectorsPath} does not match its checksum (edited or damaged); removed, its rows are computed again`);
      rmSync(keysPath, { force: true });
      rmSync(vectorsPath, { force: true });
      for (const [key, hit] of this.index) if (hit.segment === name) this.index.delete(key);
      this.segments.delete(name);
      return undefined;
    }
    const vectors = new Float32Array(vectorBytes.buffer, vectorBytes.byteOffset, vectorBytes.length / 4);
    this.verified.set(name, vectors);
    return vectors;
  }

  /** Adds rows as one new segment (written whole, then named by its content); returns its name. */
  append(keys: readonly string[], vectors: Float32Array): string {
    if (vectors.length !== keys.length * this.dim) throw new Error(`vector cache: ${keys.length} keys but ${vectors.length / this.dim} vectors`);
    const keyBytes = Buffer.concat(keys.map((k) => Buffer.from(k, 'hex')));
    const vectorBytes = Buffer.from(vectors.buffer, vectors.byteOffset, vectors.byteLength);
    const name = segmentName(keyBytes, vectorBytes);
    if (!this.segments.has(name)) {
      const tmp = join(this.dir, `.${process.pid}-${randomBytes(4).toString('hex')}`);
      writeFileSync(`${tmp}.f32`, vectorBytes);
      writeFileSync(`${tmp}.keys`, keyBytes);
      renameSync(`${tmp}.f32`, join(this.dir, `${name}.f32`));
      renameSync(`${tmp}.keys`, join(this.dir, `${name}.keys`));
    }
    this.segments.set(name, { name, rows: keys.length });
    this.verified.set(name, vectors);
    keys.forEach((key, row) => this.index.has(key) || this.index.set(key, { segment: name, row }));
    return name;
  }

  /** Writes the vectors of `keys` (all of which the cache must hold) as one segment in `dir`: a slice for another store to import. */
  exportSegment(keys: readonly string[], dir: string): string {
    const vectors = new Float32Array(keys.length * this.dim);
    const filled = this.read(keys, vectors);
    if (filled.includes(0)) throw new Error('vector cache: exporting rows it does not hold');
    mkdirSync(dir, { recursive: true });
    const keyBytes = Buffer.concat(keys.map((k) => Buffer.from(k, 'hex')));
    const vectorBytes = Buffer.from(vectors.buffer);
    const name = segmentName(keyBytes, vectorBytes);
    writeFileSync(join(dir, `${name}.f32`), vectorBytes);
    writeFileSync(join(dir, `${name}.keys`), keyBytes);
    return name;
  }

  /** Adds the segments of a folder written by `exportSegment` (checked against their names); returns how many rows were new. */
  importSegments(dir: string): number {
    const before = this.index.size;
    for (const file of readdirSync(dir).filter((f) => f.endsWith('.keys'))) {
      const name = basename(file, '.keys');
      if (segmentName(readFileSync(join(dir, file)), readFileSync(join(dir, `${name}.f32`))) !== name) throw new Error(`${join(dir, file)}: the slice's vectors do not match their checksum`);
      if (!existsSync(join(this.dir, `${name}.keys`))) {
        const tmp = join(this.dir, `.${process.pid}-${randomBytes(4).toString('hex')}`);
        copyFileSync(join(dir, `${name}.f32`), `${tmp}.f32`);
        copyFileSync(join(dir, file), `${tmp}.keys`);
        renameSync(`${tmp}.f32`, join(this.dir, `${name}.f32`));
        renameSync(`${tmp}.keys`, join(this.dir, `${name}.keys`));
      }
    }
    this.load();
    return this.index.size - before;
  }
}

function segmentName(keys: Buffer, vectors: Buffer): string {
  return createHash('sha256').update(keys).update(vectors).digest('hex').slice(0, 32);
}

/** The key of a row the encoder reads as token ids: the sha256 of the ids (int32 little-endian). */
export function tokenRowKey(ids: Int32Array): string {
  return createHash('sha256').update(Buffer.from(ids.buffer, ids.byteOffset, ids.byteLength)).digest('hex');
}

/** What `make verify` says of each encoder's cache: segments that do not match their names, or whose files disagree. */
export function verifyCacheFolder(dir: string): { segments: number; bytes: number; problems: string[] } {
  const problems: string[] = [];
  let segments = 0;
  let bytes = 0;
  if (!existsSync(dir)) return { segments, bytes, problems };
  for (const encoder of readdirSync(dir)) {
    const folder = join(dir, encoder);
    if (!statSync(folder).isDirectory()) continue;
    for (const file of readdirSync(folder).filter((f) => f.endsWith('.keys'))) {
      const name = basename(file, '.keys');
      const vectorsPath = join(folder, `${name}.f32`);
      segments++;
      if (!existsSync(vectorsPath)) {
        problems.push(`${vectorsPath} is missing`);
        continue;
      }
      const keyBytes = readFileSync(join(folder, file));
      const vectorBytes = readFileSync(vectorsPath);
      bytes += keyBytes.length + vectorBytes.length;
      if (segmentName(keyBytes, vectorBytes) !== name) problems.push(`${join(folder, name)}.{keys,f32} do not match their checksum`);
    }
  }
  return { segments, bytes, problems };
}
