import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { UserError } from '../errors.js';
import { sha256File } from '../hash.js';
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
  /** The pinned checksum. Without one (only `make pin` downloads so), the file is cached by the checksum it turns out to have. */
  sha256?: string;
  retries?: number;
  /** Seconds without a byte before a try is given up. */
  timeoutS?: number;
  /** First back-off between tries; doubles each time. */
  retryDelayMs?: number;
  /** What the file is for, in messages (e.g. "ingest.source"). */
  field: string;
  /** What to do without network, in the error message. */
  offlineHint: string;
  /** Request headers (credentials), asked for only when the file is not cached yet. */
  headers?: () => Record<string, string>;
  /** What to check when the server refuses the credentials (HTTP 401 or 403). */
  authHint?: string;
  /** A download larger than this is stopped and removed (default 4 GiB). */
  maxBytes?: number;
  /** The config field that sets `maxBytes`, for the message. */
  maxBytesField?: string;
}

export interface Downloaded {
  path: string;
  sha256: string;
}

export async function download(url: string, options: DownloadOptions & { sha256: string }): Promise<string> {
  return (await fetchIntoCache(url, options)).path;
}

/** Downloads a file that has no pin yet and returns where it landed and its checksum (for `make pin`). */
export async function downloadUnpinned(url: string, options: Omit<DownloadOptions, 'sha256'>): Promise<Downloaded> {
  return fetchIntoCache(url, options);
}

/**
 * The cached copy of a pinned file, re-hashed on every use: a cache is shared (CI restores it,
 * people copy it), so a swapped or damaged file is caught here and downloaded again, never used.
 */
async function cached(sha256: string, name: string): Promise<string | undefined> {
  const dir = join(cacheRoot(), 'downloads', sha256);
  // Another name for the same content (a mirror) is the same file.
  const file = existsSync(join(dir, name)) ? name : existsSync(dir) ? readdirSync(dir).find((f) => !f.startsWith('.')) : undefined;
  if (!file) return undefined;
  const path = join(dir, file);
  if ((await sha256File(path)) === sha256) return path;
  info(`download: the cached ${path} does not match its sha256 any more; removing it and downloading again`);
  rmSync(path, { force: true });
  return undefined;
}

async function fetchIntoCache(url: string, options: DownloadOptions): Promise<Downloaded> {
  const { sha256, retries = 3, timeoutS = 60, retryDelayMs = 1000, field, offlineHint, authHint, maxBytes = 4 * 1024 ** 3, maxBytesField = 'ingest.download.max_bytes' } = options;
  const name = basename(new URL(url).pathname) || 'download';
  const hit = sha256 ? await cached(sha256, name) : undefined;
  if (hit) return { path: hit, sha256: sha256! };
  const incoming = join(cacheRoot(), 'downloads', '.incoming');
  mkdirSync(incoming, { recursive: true });
  const partial = join(incoming, `${process.pid}-${Date.now()}`);
  const headers = options.headers?.() ?? {};
  let lastError = '';
  for (let attempt = 0; attempt <= retries; attempt++) {
    if (attempt > 0) {
      const delay = retryDelayMs * 2 ** (attempt - 1);
      info(`download: ${lastError}; retrying in ${(delay / 1000).toFixed(1)}s (${attempt}/${retries})`);
      await sleep(delay);
    }
    try {
      const got = await fetchOnce(url, partial, timeoutS, headers, maxBytes);
      if (sha256 && got !== sha256) {
        rmSync(partial, { force: true });
        throw new UserError(
          `${field}: checksum mismatch for ${url}: expected sha256 ${sha256}, got ${got}. ` +
            `Nothing was published. If the file changed on purpose, check it and pin the new checksum (make pin).`,
        );
      }
      const dir = join(cacheRoot(), 'downloads', got);
      mkdirSync(dir, { recursive: true });
      renameSync(partial, join(dir, name));
      return { path: join(dir, name), sha256: got };
    } catch (error) {
      rmSync(partial, { force: true });
      if (error instanceof UserError) throw error;
      if (error instanceof TooLargeError) throw new UserError(`${field}: ${url}: ${error.message}; nothing was kept (raise ${maxBytesField} if the file really is that large)`);
      if (error instanceof RefusedError) {
        throw new UserError(`${field}: ${url} was refused (${error.message})${authHint ? `: ${authHint}` : ''}`);
      }
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
/** More bytes than the caller allows: not retried, and nothing is kept. */
class TooLargeError extends Error {}
/** The server said no to the credentials (or their absence): trying again cannot help. */
class RefusedError extends Error {}

async function fetchOnce(url: string, path: string, timeoutS: number, headers: Record<string, string>, maxBytes: number): Promise<string> {
  const controller = new AbortController();
  let timer = setTimeout(() => controller.abort(), timeoutS * 1000);
  const resetTimer = () => {
    clearTimeout(timer);
    timer = setTimeout(() => controller.abort(), timeoutS * 1000);
  };
  try {
    // fetch drops the Authorization header when a redirect leaves the origin (a hub's CDN).
    const response = await fetch(url, { signal: controller.signal, redirect: 'follow', headers });
    if (!response.ok || !response.body) {
      const message = `HTTP ${response.status} ${response.statusText}`.trim();
      if (response.status === 401 || response.status === 403) throw new RefusedError(message);
      if (response.status >= 500 || response.status === 429) throw new RetryableError(message);
      throw new Error(message);
    }
    const total = Number(response.headers.get('content-length')) || undefined;
    if (total !== undefined && total > maxBytes) throw new TooLargeError(`the server announces ${formatBytes(total)}, more than the limit of ${formatBytes(maxBytes)}`);
    const bar = progress(`download ${basename(new URL(url).pathname)}`, total, 'B');
    const hash = createHash('sha256');
    const file = await open(path, 'w');
    let bytes = 0;
    try {
      for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
        resetTimer();
        bytes += chunk.length;
        // Without a Content-Length the limit is the only thing between a wrong URL and a full disk.
        if (bytes > maxBytes) throw new TooLargeError(`more than the limit of ${formatBytes(maxBytes)} arrived`);
        hash.update(chunk);
        await file.write(chunk);
        bar.tick(chunk.length);
      }
    } catch (error) {
      if (error instanceof TooLargeError || controller.signal.aborted) throw error;
      throw new RetryableError(`the connection closed after ${formatBytes(bytes)}${total ? ` of ${formatBytes(total)}` : ''} (${describeError(error)})`);
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

export interface RequestOptions {
  method?: 'GET' | 'HEAD';
  headers?: Record<string, string>;
  /** What the request is for, in messages. */
  field: string;
  /** What to check when the server refuses the credentials. */
  authHint?: string;
  /** What the user can do when the server cannot be reached. */
  offlineHint: string;
  timeoutS?: number;
  /** Return redirects as they are (their headers can carry what is asked), instead of following them. */
  manualRedirect?: boolean;
}

/**
 * One small request to a server's API (a hub's revision lookup, a file's headers), with the same
 * error policy as downloads: no answer, a refused credential and a missing file each end in one
 * UserError naming the URL.
 */
export async function request(url: string, options: RequestOptions): Promise<Response> {
  const { method = 'GET', headers = {}, field, authHint, offlineHint, timeoutS = 30, manualRedirect = false } = options;
  let response: Response;
  try {
    response = await fetch(url, { method, headers, redirect: manualRedirect ? 'manual' : 'follow', signal: AbortSignal.timeout(timeoutS * 1000) });
  } catch (error) {
    const reason = (error as Error).name === 'TimeoutError' ? `no answer in ${timeoutS}s` : describeError(error);
    throw new UserError(`${field}: cannot reach ${new URL(url).origin} (${reason}) for ${url}. ${offlineHint}`);
  }
  const status = `HTTP ${response.status} ${response.statusText}`.trim();
  if (response.status === 401 || response.status === 403) throw new UserError(`${field}: ${url} was refused (${status})${authHint ? `: ${authHint}` : ''}`);
  if (response.status === 404) throw new UserError(`${field}: ${url} does not exist (${status})`);
  if (response.status >= 400) throw new UserError(`${field}: ${url} failed (${status})`);
  return response;
}
