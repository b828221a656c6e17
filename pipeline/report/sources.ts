import { existsSync, readdirSync } from 'node:fs';
import { extname, join } from 'node:path';
import { UserError } from '../errors.js';
import { hashValue } from '../hash.js';
import { fingerprintFile } from '../artifacts/fingerprint.js';
import { resolveConfigPath, type LoadedConfig } from '../config/index.js';
import type { ArtifactStore } from '../artifacts/store.js';

// Kept apart from the report builder so that planning a run does not load Vega and sharp.

/** Poster files the report embeds, by extension (in the order a movie's poster is looked for). */
export const POSTER_EXTENSIONS = ['jpg', 'jpeg', 'png', 'webp'] as const;

/** The posters folder enters the key as one hash of its image files, so new posters rebuild the report. */
export async function imageSources(loaded: LoadedConfig, store: ArtifactStore): Promise<Record<string, string>> {
  const images = loaded.config.report.images;
  if (!images) return {};
  const dir = resolveConfigPath(loaded, images);
  if (!existsSync(dir)) throw new UserError(`report.images: folder ${dir} does not exist (set it to a folder of <id>.jpg/.png/.webp posters, or null)`);
  const files = readdirSync(dir).filter((f) => (POSTER_EXTENSIONS as readonly string[]).includes(extname(f).slice(1).toLowerCase())).sort();
  const hashes = [];
  for (const file of files) hashes.push([file, await fingerprintFile(store, join(dir, file))]);
  return { images: hashValue(hashes) };
}

