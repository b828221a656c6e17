import type { Config } from './config/index.js';
import type { ArtifactStore, BuildContext, Manifest, ManifestBody } from './artifacts/store.js';
import type { Port } from './artifacts/contract.js';
import type { CodeEntry } from './artifacts/code.js';
import type { Signature, Source } from './artifacts/signature.js';

export type { Signature, Source } from './artifacts/signature.js';

export type Opened<R> = { [K in keyof R]: NonNullable<R[K]> extends Port<infer T> ? T : never };
export type OpenedSources<S> = { [K in keyof S]: S[K] extends Source<infer T> ? T : never };

/** What a build is given: its slice of the config, its settings, its opened inputs and sources. */
export interface StageRun<P = unknown, S = unknown, I = Record<string, unknown>, Src = Record<string, unknown>> extends BuildContext {
  key: string;
  params: P;
  settings: S;
  inputs: I;
  sources: Src;
  /** The sources' content hashes as they went into the key (a model file's sha256, say). */
  sourceHashes: Record<string, string>;
  /** With `provenance`: the manifest of every stage it depends on, by stage. */
  upstream: Record<string, Manifest>;
  /** The store: for its caches (the vector cache) and embed's slices, never for another stage's artifact. */
  store: ArtifactStore;
  /** For messages only: the config file, and the make command that reruns a target with the same overrides. */
  hints: { config: string; command(target: string): string };
}

export type RunOf<Sig> = Sig extends Signature<infer R, infer P, infer S, infer Src> ? StageRun<P, S, Opened<R>, OpenedSources<Src>> : never;

/** A stage's build: reads its inputs, writes its files into `run.dir`, returns its manifest's body. */
export type StageBuild<Run = StageRun> = (run: Run) => Promise<ManifestBody> | ManifestBody;

/** A signature with its defaults filled in, as the typed fields would have it. */
export function signature<R, P, S = Record<string, never>, Src = Record<string, never>>(
  spec: Omit<Signature<R, P, S, Src>, 'settings' | 'sources' | 'code'> & Partial<Pick<Signature<R, P, S, Src>, 'settings' | 'sources'>> & { code: readonly CodeEntry[] | ((config: Config) => readonly CodeEntry[]) },
): Signature<R, P, S, Src> {
  const { code } = spec;
  return {
    settings: () => ({}) as S,
    sources: () => ({}) as Src,
    ...spec,
    code: typeof code === 'function' ? code : () => code,
  };
}

/** What a stage run did, as `--result-json` writes it for the programs that drive stages (the sweep). */
export interface StageOutcome {
  stage: string;
  key: string;
  built: boolean;
  dir: string;
}
