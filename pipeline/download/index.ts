import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { UserError } from '../errors.js';
import { formatBytes, info, progress } from '../log.js';

/**
 * Every download of the project (data sets, model files) goes through here: streamed to a
 * partial file with progress, checked against a pinned sha256, then moved into a cache keyed by
 * that checksum, so a file is fetched once per machine and a CI cache can keep it.
 */
export function cacheRoot(): string {
  const root = process.env.PIPELINE_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'genre-pipeline');
  mkdirSync(root, { recursive: true });
  return root;
}

export interface DownloadOptions {
  sha256: string;
  retries?: number;
  /** Seconds without a byte before a try is given up. */
  timeoutS?: number;
  /** First back-off between tries; doubles each time. */
  retryDelayMs?: number;
  /** What the file is for, in messages (e.g. "ingest.source"). */
  field: string;
  /** What to do without network, in the error message. */
  offlineHint: string;
}

export async function download(url: string, options: DownloadOptions): Promise<string> {
  const { sha256, retries = 3, timeoutS = 60, retryDelayMs = 1000, field, offlineHint } = options;
  const dir = join(cacheRoot(), 'downloads', sha256);
  const name = basename(new URL(url).pathname) || 'download';
  const target = join(dir, name);
  if (existsSync(target)) return target;
  // Another name for the same content (a mirror) is the same file.
  if (existsSync(dir)) {
    const cached = readdirSync(dir).find((f) => !f.startsWith('.'));
    if (cached) return join(dir, cached);
  }
  mkdirSync(dir, { recursive: true });
  const partial = join(dir, `.partial-${process.pid}`);
  let lastError = '';
  for (let attempt = 0; attempt <= retries; attempt++) {
    if (attempt > 0) {
      const delay = retryDelayMs * 2 ** (attempt - 1);
      info(`download: ${lastError}; retrying in ${(delay / 1000).toFixed(1)}s (${attempt}/${retries})`);
      await sleep(delay);
    }
    try {
      const got = await fetchOnce(url, partial, timeoutS);
      if (got !== sha256) {
        rmSync(partial, { force: true });
        throw new UserError(
          `${field}: checksum mismatch for ${url}: expected sha256 ${sha256}, got ${got}. ` +
            `Nothing was published. If the file changed on purpose, check it and pin the new checksum.`,
        );
      }
      renameSync(partial, target);
      return target;
    } catch (error) {
      rmSync(partial, { force: true });
      if (error instanceof UserError) throw error;
      const retryable = error instanceof RetryableError || isNetworkError(error);
      lastError = describeError(error);
      if (!retryable) break;
    }
  }
  throw new UserError(
    `${field}: cannot download ${url}: ${lastError}. If this machine is offline, ${offlineHint}.`,
  );
}

class RetryableError extends Error {}

async function fetchOnce(url: string, path: string, timeoutS: number): Promise<string> {
  const controller = new AbortController();
  let timer = setTimeout(() => controller.abort(), timeoutS * 1000);
  const resetTimer = () => {
    clearTimeout(timer);
    timer = setTimeout(() => controller.abort(), timeoutS * 1000);
  };
  try {
    const response = await fetch(url, { signal: controller.signal, redirect: 'follow' });
    if (!response.ok || !response.body) {
      const message = `HTTP ${response.status} ${response.statusText}`.trim();
      if (response.status >= 500 || response.status === 429) throw new RetryableError(message);
      throw new Error(message);
    }
    const total = Number(response.headers.get('content-length')) || undefined;
    const bar = progress(`download ${basename(new URL(url).pathname)}`, total, 'B');
    const hash = createHash('sha256');
    const file = await open(path, 'w');
    let bytes = 0;
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        resetTimer();
        hash.update(chunk);
        await file.write(chunk);
        bytes += chunk.length;
        bar.tick(chunk.length);
      }
    } finally {
      await file.close();
    }
    if (total !== undefined && bytes !== total) throw new RetryableError(`connection closed after ${formatBytes(bytes)} of ${formatBytes(total)}`);
    bar.done(formatBytes(bytes));
    return hash.digest('hex');
  } catch (error) {
    if (controller.signal.aborted) throw new RetryableError(`no data for ${timeoutS}s`);
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

function isNetworkError(error: unknown): boolean {
  // fetch wraps socket errors (ECONNREFUSED, ENOTFOUND, ECONNRESET) in a TypeError with a cause.
  return error instanceof TypeError && (error as { cause?: unknown }).cause !== undefined;
}

function describeError(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  if (cause?.code) return `${cause.code}${cause.code === 'ENOTFOUND' || cause.code === 'EAI_AGAIN' ? ' (no network or unknown host)' : ''}`;
  return (error as Error).message ?? String(error);
}
