import { createHash } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { once } from 'node:events';
import { pidRuns } from '../processes.js';
import { sizeOf } from '../files.js';
import { homedir } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { UserError } from '../errors.js';
import { sha256File } from '../hash.js';
import { formatBytes, info, progress } from '../log.js';
import { httpGet, RefusedAddress, TimeoutError } from './http.js';
import type { IncomingMessage } from 'node:http';

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
  cacheDebris();
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
      if (error instanceof BadRedirect) throw new UserError(`${field}: ${url}: ${error.message}; the server's redirects cannot be followed (check the URL)`);
      const retryable = error instanceof RetryableError || isNetworkError(error);
      lastError = describeError(error);
      if (!retryable) break;
    }
  }
  throw new UserError(
    `${field}: cannot download ${url}: ${lastError}. If this machine is offline, ${offlineHint}.`,
  );
}

/**
 * What killed processes left in the cache: `downloads/.incoming/<pid>-<time>` files and
 * `extracted/` or `derived/` `<name>.partial-<pid>` folders. They hold disk and no work; each use
 * of the cache, and `make gc`, removes those whose process is gone.
 */
export function cacheDebris(dryRun = false, only?: ReadonlySet<string>): { path: string; bytes: number }[] {
  const root = cacheRoot();
  const found: { path: string; bytes: number }[] = [];
  const sweep = (dir: string, pattern: RegExp) => {
    if (!existsSync(dir)) return;
    for (const name of readdirSync(dir)) {
      const pid = pattern.exec(name)?.[1];
      if (!pid || pidRuns(Number(pid)) || (only && !only.has(join(dir, name)))) continue;
      found.push({ path: join(dir, name), bytes: sizeOf(join(dir, name)) });
      if (!dryRun) rmSync(join(dir, name), { recursive: true, force: true });
    }
  };
  sweep(join(root, 'downloads', '.incoming'), /^(\d+)-\d+$/);
  sweep(join(root, 'extracted'), /\.partial-(\d+)$/);
  sweep(join(root, 'derived'), /\.partial-(\d+)$/);
  return found;
}

class RetryableError extends Error {}
/** A redirect that cannot be followed (a loop, to file: or another scheme): trying again cannot help, and it is not the network. */
class BadRedirect extends Error {}
/** More bytes than the caller allows: not retried, and nothing is kept. */
class TooLargeError extends Error {}
/** The server said no to the credentials (or their absence): trying again cannot help. */
class RefusedError extends Error {}

async function fetchOnce(url: string, path: string, timeoutS: number, headers: Record<string, string>, maxBytes: number): Promise<string> {
  let response: IncomingMessage;
  try {
    response = await httpGet(url, { headers, timeoutMs: timeoutS * 1000 });
  } catch (error) {
    if (error instanceof RefusedAddress) throw new BadRedirect(error.message);
    if (error instanceof TimeoutError) throw new RetryableError(error.message);
    throw error;
  }
  const status = response.statusCode ?? 0;
  if (status !== 200) {
    response.resume();
    const message = `HTTP ${status} ${response.statusMessage ?? ''}`.trim();
    if (status === 401 || status === 403) throw new RefusedError(message);
    if (status >= 500 || status === 429) throw new RetryableError(message);
    throw new Error(message);
  }
  const total = Number(response.headers['content-length']) || undefined;
  if (total !== undefined && total > maxBytes) {
    response.destroy();
    throw new TooLargeError(`the server announces ${formatBytes(total)}, more than the limit of ${formatBytes(maxBytes)}`);
  }
  const bar = progress(`download ${basename(new URL(url).pathname)}`, total, 'B');
  const hash = createHash('sha256');
  let bytes = 0;
  // Counted as each chunk arrives (piped, not iterated: an async iterator drops the chunks that
  // arrived with the close, and the message would say 0 B).
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      bytes += chunk.length;
      // Without a Content-Length the limit is the only thing between a wrong URL and a full disk.
      if (bytes > maxBytes) return done(new TooLargeError(`more than the limit of ${formatBytes(maxBytes)} arrived`));
      hash.update(chunk);
      bar.tick(chunk.length);
      done(null, chunk);
    },
  });
  const out = createWriteStream(path);
  try {
    await pipeline(response, counter, out);
  } catch (error) {
    // The file is closed before the caller removes it, or its late open would leave it behind.
    if (!out.closed) await once(out, 'close').catch(() => {});
    if (error instanceof TooLargeError) throw error;
    if (error instanceof TimeoutError) throw new RetryableError(`${error.message} after ${formatBytes(bytes)}${total ? ` of ${formatBytes(total)}` : ''}`);
    throw new RetryableError(`the connection closed after ${formatBytes(bytes)}${total ? ` of ${formatBytes(total)}` : ''} arrived (${describeError(error)})`);
  }
  if (total !== undefined && bytes !== total) throw new RetryableError(`the connection closed after ${formatBytes(bytes)} of ${formatBytes(total)} arrived`);
  bar.done(formatBytes(bytes));
  return hash.digest('hex');
}

function isNetworkError(error: unknown): boolean {
  // Socket errors (ECONNREFUSED, ENOTFOUND, ECONNRESET) carry a code; fetch (request()) wraps them in a TypeError with a cause.
  return typeof (error as NodeJS.ErrnoException)?.code === 'string' || (error instanceof TypeError && (error as { cause?: unknown }).cause !== undefined);
}

function describeError(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause ?? (error as { code?: string; message?: string });
  if (cause?.code) return `${cause.code}${cause.code === 'ENOTFOUND' || cause.code === 'EAI_AGAIN' ? ' (no network or unknown host)' : ''}`;
  // fetch's words for a redirect it will not follow.
  if (/redirect count exceeded/.test(cause?.message ?? '')) return 'too many redirects (a redirect loop?)';
  if (/URL scheme must be a HTTP/.test(cause?.message ?? '')) return 'a redirect to a URL that is not http(s)';
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
    if (/redirect/.test(reason)) throw new UserError(`${field}: ${url}: ${reason}; the server's redirects cannot be followed (check the URL)`);
    throw new UserError(`${field}: cannot reach ${new URL(url).origin} (${reason}) for ${url}. ${offlineHint}`);
  }
  const status = `HTTP ${response.status} ${response.statusText}`.trim();
  if (response.status === 401 || response.status === 403) throw new UserError(`${field}: ${url} was refused (${status})${authHint ? `: ${authHint}` : ''}`);
  if (response.status === 404) throw new UserError(`${field}: ${url} does not exist (${status})`);
  if (response.status >= 400) throw new UserError(`${field}: ${url} failed (${status})`);
  return response;
}
