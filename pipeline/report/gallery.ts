import { existsSync, mkdirSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { cacheRoot } from '../download/index.js';
import { fetchPublic } from '../download/http.js';
import { sha256 } from '../hash.js';
import { writeFileAtomically } from '../artifacts/store.js';
import { POSTER_EXTENSIONS } from './sources.js';
import sharp from 'sharp';
import { UserError } from '../errors.js';
import { Rng } from '../random.js';
import { escapeHtml, pct } from './html.js';

/**
 * The gallery of predictions (the reference notebook's `print_pred`): cards for a seeded random
 * sample of test movies, then the most confident mistakes, each with its poster when the data
 * has one and a drawn tile when it does not.
 */

export interface GalleryMovie {
  id: string;
  title: string;
  year: number | null;
  description: string;
  true_genre: string | null;
  predicted_genre: string;
  correct: boolean | null;
  top: { genre: string; prob: number }[];
  image: string | null;
}

/**
 * A seeded sample of `count` movies, the `mistakes` wrong ones the model was surest of, and the
 * `unsure` right ones it was least sure of (none shown twice).
 */
export function pickGallery(movies: GalleryMovie[], count: number, mistakes: number, seed: number, unsure = 0): { sample: GalleryMovie[]; mistakes: GalleryMovie[]; unsure: GalleryMovie[] } {
  const sample = new Rng(seed, 'report.gallery').shuffle([...movies]).slice(0, count);
  const shown = new Set(sample.map((m) => m.id));
  const worst = movies
    .filter((m) => m.correct === false && !shown.has(m.id))
    .sort((a, b) => b.top[0]!.prob - a.top[0]!.prob || a.id.localeCompare(b.id))
    .slice(0, mistakes);
  const leastSure = movies
    .filter((m) => m.correct === true && !shown.has(m.id))
    .sort((a, b) => a.top[0]!.prob - b.top[0]!.prob || a.id.localeCompare(b.id))
    .slice(0, unsure);
  return { sample, mistakes: worst, unsure: leastSure };
}

async function inline(bytes: Buffer, width: number): Promise<string> {
  const webp = await sharp(bytes).resize({ width, withoutEnlargement: true }).webp({ quality: 78 }).toBuffer();
  return `data:image/webp;base64,${webp.toString('base64')}`;
}

/** Each URL is asked for once per process, whether it answers or fails (one dead host, one warning's worth of waiting). */
const fetches = new Map<string, Promise<Buffer>>();

/** A poster URL's bytes, fetched once and kept in the download cache (by URL: posters are shown, not trusted). */
function fetchPoster(url: string, sources: PosterSources): Promise<Buffer> {
  let pending = fetches.get(url);
  if (!pending) {
    pending = fetchPosterOnce(url, sources);
    fetches.set(url, pending);
  }
  return pending;
}

async function fetchPosterOnce(url: string, sources: PosterSources): Promise<Buffer> {
  // Cached by URL and by the address policy it was fetched under: a poster fetched from a private
  // address (allowed then) is never served to a run that does not allow them.
  const path = join(cacheRoot(), 'posters', sha256(`${sources.allowPrivateUrls ? 'any address' : 'public addresses'} ${url}`));
  if (existsSync(path)) return readFileSync(path);
  // Every hop's address is checked, not the name (download/http.ts).
  const data = await fetchPublic(url, { maxBytes: sources.maxBytes, timeoutMs: 15_000, allowPrivate: sources.allowPrivateUrls });
  mkdirSync(dirname(path), { recursive: true });
  writeFileAtomically(path, data);
  return data;
}

/** Whether `path` (links followed) lies inside `root`. */
function inside(path: string, root: string | null): boolean {
  if (!root || !existsSync(root)) return false;
  const real = existsSync(path) ? realpathSync(path) : resolve(path);
  const rel = relative(realpathSync(root), real);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
}

export interface PosterSources {
  /** report.images: a folder of `<id>.<ext>` files the user curated. */
  imagesDir: string | null;
  /** The data's folder (from the ingest manifest): the only place a path in the data may point. */
  dataRoot: string | null;
  width: number;
  /** URLs larger than this are not shown. */
  maxBytes: number;
  allowPrivateUrls: boolean;
  /** Called for a poster the data names but that cannot be shown; the card gets a tile. */
  onMissing: (id: string, reason: string) => void;
}

/**
 * The movie's poster, scaled to `width` pixels and inlined as WebP, or null: first the data's
 * `image` column (a path resolved at ingest, or a URL), then `<imagesDir>/<id>.<ext>`. A poster
 * the data names but that is gone or unreachable gets a tile and a warning; a broken file in
 * report.images is an error, since someone put it there for the report.
 */
export async function posterDataUri(movie: { id: string; image?: string | null }, sources: PosterSources): Promise<string | null> {
  if (movie.image) {
    try {
      const isUrl = /^https?:\/\//i.test(movie.image);
      if (!isUrl && /^[a-z][a-z0-9+.-]*:/i.test(movie.image)) throw new Error('only http(s) URLs and paths are read');
      if (!isUrl && !inside(movie.image, sources.dataRoot) && !inside(movie.image, sources.imagesDir)) throw new Error('outside the data folder and report.images: not read');
      const bytes = isUrl ? await fetchPoster(movie.image, sources) : readFileSync(movie.image);
      return await inline(bytes, sources.width);
    } catch (error) {
      sources.onMissing(movie.id, `${movie.image}: ${(error as Error).message.split('\n')[0]}`);
    }
  }
  if (!sources.imagesDir) return null;
  const path = POSTER_EXTENSIONS.map((ext) => join(sources.imagesDir!, `${movie.id}.${ext}`)).find((p) => existsSync(p));
  if (!path) return null;
  try {
    return await inline(readFileSync(path), sources.width);
  } catch (error) {
    throw new UserError(`${path}: not a readable JPEG, PNG or WebP image (${(error as Error).message}); fix or remove it (report.images)`);
  }
}

/** A poster-shaped tile in a colour of the true genre (the colour only hints; no genre is written), with the title's initials. */
export function placeholderTile(id: string, title: string, genre: string | null): string {
  let hash = 0;
  for (const c of genre ?? title) hash = (Math.imul(hash, 31) + c.charCodeAt(0)) >>> 0;
  const hue = hash % 360;
  const gradient = `tile-${id.replace(/[^\w-]/g, '_')}`;
  const initials = title.split(/\s+/).filter((w) => /^[\p{L}\p{N}]/u.test(w)).slice(0, 2).map((w) => w[0]!.toUpperCase()).join('') || '?';
  return (
    `<svg class="placeholder" viewBox="0 0 84 120" role="img" aria-label="no poster for ${escapeHtml(title)}">` +
    `<defs><linearGradient id="${gradient}" x1="0" y1="0" x2="1" y2="1"><stop offset="0" stop-color="hsl(${hue},55%,62%)"/><stop offset="1" stop-color="hsl(${(hue + 40) % 360},55%,38%)"/></linearGradient></defs>` +
    `<rect width="84" height="120" fill="url(#${gradient})"/>` +
    // Initials only: a genre written on the tile of a wrong prediction would read as a third label.
    `<text x="42" y="66" text-anchor="middle" font-size="28" font-family="system-ui,sans-serif" font-weight="700" fill="white" fill-opacity="0.92">${escapeHtml(initials)}</text></svg>`
  );
}

function excerpt(text: string, chars: number): string {
  if (text.length <= chars) return text;
  const cut = text.lastIndexOf(' ', chars);
  return `${text.slice(0, cut > chars * 0.6 ? cut : chars)}…`;
}

export function card(movie: GalleryMovie, poster: string | null, excerptChars: number): string {
  const verdict =
    movie.correct === null
      ? `predicted <b>${escapeHtml(movie.predicted_genre)}</b>`
      : movie.correct
        ? `<span class="ok">✓ right</span> · ${escapeHtml(movie.true_genre)}`
        : `<span class="miss">✗ wrong</span> · true <b>${escapeHtml(movie.true_genre)}</b>, predicted <b>${escapeHtml(movie.predicted_genre)}</b>`;
  const bars = movie.top
    .map(
      ({ genre, prob }) =>
        `<span>${escapeHtml(genre)}</span><span class="track"><span class="fill${genre === movie.true_genre ? ' truth' : ''}" style="width:${(100 * prob).toFixed(1)}%;display:block"></span></span><span class="p">${pct(prob, 0)}</span>`,
    )
    .join('');
  const image = poster ? `<img src="${poster}" alt="poster of ${escapeHtml(movie.title)}">` : placeholderTile(movie.id, movie.title, movie.true_genre ?? movie.predicted_genre);
  return (
    `<article class="card${movie.correct === false ? ' wrong' : ''}" data-id="${escapeHtml(movie.id)}" data-correct="${movie.correct}">` +
    `<div class="poster">${image}</div>` +
    `<div><h4>${escapeHtml(movie.title)} ${movie.year ? `<span class="year">(${movie.year})</span>` : ''}</h4>` +
    `<div class="verdict">${verdict}</div>` +
    `<p class="excerpt">${escapeHtml(excerpt(movie.description, excerptChars))}</p>` +
    `<div class="topk">${bars}</div></div></article>`
  );
}
