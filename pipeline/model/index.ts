import { existsSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { resolveConfigPath, type LoadedConfig, type ModelConfig } from '../config/index.js';
import { UserError } from '../errors.js';
import { download } from '../download/index.js';
import { fingerprintFile } from '../artifacts/fingerprint.js';
import type { ArtifactStore } from '../artifacts/store.js';
import { info } from '../log.js';
import { HUB_OFFLINE_HINT, hubAuthHint, hubFileUrl, hubHeaders, isCommitId } from './hub.js';

/** The files of a model folder, found on disk (downloaded first for hub models). */
export interface ModelFiles {
  onnx: string;
  tokenizer: string;
  tokenizerConfig: string;
  config: string;
}

/** What the pipeline needs from the model's `config.json`. */
export interface ModelInfo {
  hidden: number;
  layers: number;
  intermediate: number;
  vocab: number;
  maxPositions: number;
  /** True for the project's own random-weight models: every report says so. */
  random: boolean;
}

/** The config's model section; tokenize and embed cannot run without one. */
export function modelConfig(loaded: LoadedConfig): ModelConfig {
  const model = loaded.config.model;
  if (!model) throw new UserError(`${loaded.path}: model: required from tokenize on (set model.path to a model folder, or model.hub)`);
  return model;
}

/**
 * The ONNX file embed runs: model.onnx, or for int8 the published model_quantized.onnx when the
 * folder (or the hub's file list) has one and `model.quantize` is off. Otherwise int8 is made
 * from model.onnx by the pipeline (`quantizeInPipeline`).
 */
const onnxName = (loaded: LoadedConfig) => (modelConfig(loaded).precision === 'int8' && !modelConfig(loaded).quantize && hasPublishedInt8(loaded) ? 'model_quantized.onnx' : 'model.onnx');

function hasPublishedInt8(loaded: LoadedConfig): boolean {
  const { hub } = modelConfig(loaded);
  if (hub) return Object.keys(hub.files).some((file) => basename(file) === 'model_quantized.onnx');
  return existsSync(join(localFolder(loaded), 'model_quantized.onnx'));
}

/** True when int8 is asked for and the pipeline quantizes model.onnx itself. */
export const quantizeInPipeline = (loaded: LoadedConfig) => modelConfig(loaded).precision === 'int8' && onnxName(loaded) === 'model.onnx';

/** Which files each stage reads: tokenize needs the tokenizer, embed the network. */
export const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer_config.json', 'config.json'] as const;
export const NETWORK_FILES = (loaded: LoadedConfig) => [onnxName(loaded), 'config.json'];

/**
 * The checksums of the named model files, for a stage's key. Hub files are identified by their
 * pinned checksums, so nothing is downloaded to plan a run.
 */
export async function modelSources(loaded: LoadedConfig, store: ArtifactStore, names: readonly string[]): Promise<Record<string, string>> {
  const { hub } = modelConfig(loaded);
  const sources: Record<string, string> = {};
  if (hub) {
    const byName = new Map(Object.entries(hub.files).map(([file, sum]) => [basename(file), sum]));
    for (const name of names) {
      const sum = byName.get(name);
      if (!sum) throw new UserError(`model.hub.files: no file named ${name} (the folder needs ${names.join(', ')})`);
      sources[`model/${name}`] = sum;
    }
    return sources;
  }
  const dir = localFolder(loaded);
  for (const name of names) sources[`model/${name}`] = await fingerprintFile(store, requireFile(dir, name, 'model.path'));
  return sources;
}

/** The model files `names` asks for, on disk: pinned hub files are downloaded (or taken from the cache, re-hashed) first. */
export async function resolveModel(loaded: LoadedConfig, names: readonly string[] = [...TOKENIZER_FILES, ...NETWORK_FILES(loaded)]): Promise<ModelFiles> {
  const { hub } = modelConfig(loaded);
  let find: (name: string) => string;
  if (hub) {
    if (!isCommitId(hub.revision)) info(`model.hub.revision: ${hub.revision} is a branch or tag, which can move; \`make pin\` replaces it with its commit id`);
    const paths = new Map<string, string>();
    for (const [file, sha256] of Object.entries(hub.files)) {
      // Only what the caller reads is fetched (and, when cached, re-hashed): tokenize never touches the 400 MB model.
      if (!names.includes(basename(file))) continue;
      const path = await download(hubFileUrl(hub, hub.revision, file), {
        sha256,
        retries: hub.download.retries,
        timeoutS: hub.download.timeout_s,
        maxBytes: hub.download.max_bytes,
        maxBytesField: 'model.hub.download.max_bytes',
        field: 'model.hub',
        offlineHint: HUB_OFFLINE_HINT,
        headers: hubHeaders,
        authHint: hubAuthHint(),
      });
      paths.set(basename(file), path);
    }
    find = (name) => {
      const path = paths.get(name);
      if (!path) throw new UserError(`model.hub.files: no file named ${name}`);
      return path;
    };
  } else {
    const dir = localFolder(loaded);
    find = (name) => requireFile(dir, name, 'model.path');
  }
  for (const name of names) find(name);
  return {
    get onnx() {
      return found(onnxName(loaded));
    },
    get tokenizer() {
      return found('tokenizer.json');
    },
    get tokenizerConfig() {
      return found('tokenizer_config.json');
    },
    get config() {
      return found('config.json');
    },
  };
  function found(name: string): string {
    if (!names.includes(name)) throw new Error(`resolveModel: ${name} was not asked for (asked: ${names.join(', ')})`);
    return find(name);
  }
}

export function readModelInfo(configPath: string): ModelInfo {
  const raw = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
  const number = (key: string, fallback?: number): number => {
    const value = raw[key] ?? fallback;
    if (typeof value !== 'number') throw new UserError(`${configPath}: ${key} missing or not a number`);
    return value;
  };
  return {
    hidden: number('hidden_size'),
    layers: number('num_hidden_layers'),
    intermediate: number('intermediate_size', 4 * number('hidden_size')),
    vocab: number('vocab_size'),
    maxPositions: number('max_position_embeddings', 512),
    random: raw.random_weights === true,
  };
}

function localFolder(loaded: LoadedConfig): string {
  const dir = resolveConfigPath(loaded, modelConfig(loaded).path!);
  if (!existsSync(dir)) throw new UserError(`model.path: no such folder: ${dir} (relative paths start at the config file's folder)`);
  return dir;
}

function requireFile(dir: string, name: string, field: string): string {
  const path = join(dir, name);
  if (!existsSync(path)) {
    const hint = name === 'model_quantized.onnx' ? ' (model.precision int8 needs it; use fp32 or add a quantized export)' : '';
    throw new UserError(`${field}: ${path} not found${hint}`);
  }
  return path;
}
