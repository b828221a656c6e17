import type { Config, LoadedConfig } from '../config/index.js';
import type { ArtifactStore } from './store.js';
import type { Contract, Port } from './contract.js';
import type { CodeEntry } from './code.js';

/**
 * A stage's signature, as Kedro binds a node to its inputs and DVC a stage to its deps, params
 * and outs: what it reads, the config slice it depends on, the files outside the store it reads,
 * and its code. The key hashes exactly these; the build is given exactly these, so a setting
 * that is not in the key cannot change what the stage writes.
 */
export interface Signature<R = Record<string, Port<unknown>>, P = unknown, S = unknown, Src = Record<string, Source<unknown>>> {
  name: string;
  /** Bump when the stage's output format changes in a way its code key cannot see. */
  version: number;
  /** The artifact it publishes, and the views later stages read (its `artifact.ts`). */
  output: Contract;
  /** The ports it reads, by the name the build uses; each comes from the nearest earlier stage whose artifact offers it. */
  reads(config: Config): R;
  /** The config slice that can change its output: its key, and all of the config the build sees. */
  params(config: Config): P;
  /** Settings that change how fast, never what (threads, batch sizes for inference, providers): not in the key, recorded as how it ran. */
  settings(config: Config): S;
  /** Files outside the store (data, models, posters): hashed by content for the key, opened for the build. */
  sources(config: Config): Src;
  /** The code the key hashes: `module.js#export` entries, relative to dist/. */
  code(config: Config): readonly CodeEntry[];
  /** Reads the manifests of every stage it depends on (the report's timings and provenance): keyed by their keys. */
  provenance?: boolean;
}

export interface Source<T> {
  /**
   * Content hashes for the key (`model/tokenizer.json` -> sha256); nothing is downloaded to compute
   * them. `upstream` is the planned key of each stage before this one (stage -> key): what this
   * build reads, never the run folder's links, which the build itself moves.
   */
  hash(loaded: LoadedConfig, store: ArtifactStore, upstream: Readonly<Record<string, string>>): Promise<Record<string, string>>;
  /** What the build reads, once it builds (pinned downloads fetched and checked). */
  open(loaded: LoadedConfig, store: ArtifactStore, upstream: Readonly<Record<string, string>>): Promise<T>;
}

