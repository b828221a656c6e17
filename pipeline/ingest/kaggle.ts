import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../errors.js';

/**
 * Kaggle datasets as an ingest source: `kaggle://owner/dataset` is downloaded as one zip through
 * Kaggle's public API with the user's API token, the same credentials the `kaggle` CLI reads.
 */
const KAGGLE_SOURCE = /^kaggle:\/\/([\w.-]+)\/([\w.-]+)\/?$/i;

export const isKaggleSource = (source: string) => /^kaggle:\/\//i.test(source);

export const KAGGLE_AUTH_HINT = 'check KAGGLE_USERNAME and KAGGLE_KEY (or ~/.kaggle/kaggle.json), and accept the dataset\'s rules on its Kaggle page if it has any';

export function kaggleDownloadUrl(source: string, api: string): string {
  const match = KAGGLE_SOURCE.exec(source);
  if (!match) throw new UserError(`ingest.source: ${source} is not a Kaggle dataset (expected kaggle://owner/dataset, e.g. kaggle://hijest/genre-classification-dataset-imdb)`);
  return `${api.replace(/\/$/, '')}/datasets/download/${match[1]}/${match[2]}`;
}

/** Basic auth from KAGGLE_USERNAME/KAGGLE_KEY, else from kaggle.json; asked for only when a download is due. */
export function kaggleHeaders(): Record<string, string> {
  const { username, key } = kaggleCredentials();
  return { authorization: `Basic ${Buffer.from(`${username}:${key}`).toString('base64')}` };
}

function kaggleCredentials(): { username: string; key: string } {
  const { KAGGLE_USERNAME: username, KAGGLE_KEY: key } = process.env;
  if (username && key) return { username, key };
  const file = join(process.env.KAGGLE_CONFIG_DIR ?? join(homedir(), '.kaggle'), 'kaggle.json');
  if (existsSync(file)) {
    let parsed: { username?: unknown; key?: unknown } = {};
    try {
      parsed = JSON.parse(readFileSync(file, 'utf8'));
    } catch {
      throw new UserError(`${file}: not valid JSON (expected {"username": "...", "key": "..."} as Kaggle's "Create New API Token" writes it)`);
    }
    if (typeof parsed.username === 'string' && typeof parsed.key === 'string') return { username: parsed.username, key: parsed.key };
    throw new UserError(`${file}: expected {"username": "...", "key": "..."} as Kaggle's "Create New API Token" writes it`);
  }
  throw new UserError(
    `ingest.source: downloading from Kaggle needs your API token: set KAGGLE_USERNAME and KAGGLE_KEY, or save kaggle.json ` +
      `(kaggle.com > Settings > API > Create New Token) as ${file}. Or download the archive yourself and point ingest.source at it.`,
  );
}
