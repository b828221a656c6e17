import { createWriteStream, existsSync, mkdirSync, openSync, readSync, closeSync, renameSync, rmSync } from 'node:fs';
import { dirname, resolve, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';
import { crc32 } from 'node:zlib';
import * as tar from 'tar';
import yauzl from 'yauzl';
import { UserError } from '../errors.js';
import { formatBytes, info } from '../log.js';
import { checkFolder, forgetFolder, recordFolder } from '../download/ledger.js';
import { cacheDebris } from '../download/index.js';

export type ArchiveKind = 'zip' | 'tar' | 'tar.gz';

/** Recognizes an archive by its first bytes, so that a download without a file extension works too. */
export function archiveKind(path: string): ArchiveKind | undefined {
  const header = Buffer.alloc(512);
  const fd = openSync(path, 'r');
  let n = 0;
  try {
    n = readSync(fd, header, 0, 512, 0);
  } finally {
    closeSync(fd);
  }
  if (n >= 4 && header.readUInt32LE(0) === 0x04034b50) return 'zip';
  if (n >= 2 && header[0] === 0x1f && header[1] === 0x8b) return 'tar.gz';
  if (n >= 262 && header.toString('latin1', 257, 262) === 'ustar') return 'tar';
  return undefined;
}

interface EntryCheck {
  name: string;
  isFile: boolean;
  isDirectory: boolean;
  size: number;
}

/**
 * Refuses, before anything is written, an archive with an entry that would land outside the
 * extraction folder (`../`, an absolute path, a link) or whose unpacked size passes the limit.
 */
function checkEntries(archive: string, entries: EntryCheck[], maxBytes: number): void {
  let total = 0;
  for (const entry of entries) {
    const name = entry.name.replace(/\\/g, '/');
    if (name.startsWith('/') || /^[a-zA-Z]:/.test(name) || name.split('/').includes('..')) {
      throw new UserError(`${archive}: refusing entry "${entry.name}": it would be written outside the extraction folder`);
    }
    if (!entry.isFile && !entry.isDirectory) {
      throw new UserError(`${archive}: refusing entry "${entry.name}": links and special files are not extracted`);
    }
    total += entry.size;
    if (total > maxBytes) {
      throw new UserError(`${archive}: unpacks to more than ingest.max_unpacked_bytes (${formatBytes(maxBytes)}); raise the limit if the archive is trusted`);
    }
  }
}

/**
 * Extracts once into `dest` (atomically: a partial folder, then rename), recorded in the cache's
 * ledger (every file's size and sha256, kept outside the folder). A later run reuses the folder
 * only when every file still matches it; an edited or damaged extraction is extracted again
 * rather than read. What killed extractions left in the cache is removed first (cacheDebris).
 */
export async function extractArchive(archive: string, kind: ArchiveKind, dest: string, maxBytes: number): Promise<string> {
  if (existsSync(dest)) {
    const problem = await checkFolder(dest);
    if (!problem) return dest;
    info(`ingest: the extracted copy in ${dest} changed (${problem}); extracting again`);
    forgetFolder(dest);
  }
  cacheDebris();
  const partial = `${dest}.partial-${process.pid}`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  info(`ingest: extracting ${archive}`);
  try {
    if (kind === 'zip') await extractZip(archive, partial, maxBytes);
    else await extractTar(archive, partial, maxBytes);
    mkdirSync(dirname(dest), { recursive: true });
    renameSync(partial, dest);
    await recordFolder(dest);
  } finally {
    rmSync(partial, { recursive: true, force: true });
  }
  return dest;
}

async function extractTar(archive: string, dest: string, maxBytes: number): Promise<void> {
  const entries: EntryCheck[] = [];
  await tar.list({
    file: archive,
    onReadEntry: (entry) => {
      entries.push({
        name: entry.path,
        isFile: entry.type === 'File' || entry.type === 'OldFile' || entry.type === 'ContiguousFile',
        isDirectory: entry.type === 'Directory',
        size: entry.size ?? 0,
      });
    },
  });
  checkEntries(archive, entries, maxBytes);
  // The check above already refused anything unsafe; strict makes any tar warning an error too.
  await tar.extract({ file: archive, cwd: dest, strict: true, preservePaths: false });
}

function openZip(path: string): Promise<yauzl.ZipFile> {
  return new Promise((ok, fail) =>
    yauzl.open(path, { lazyEntries: true, autoClose: false, decodeStrings: true, validateEntrySizes: true, strictFileNames: false }, (error, zip) =>
      error ? fail(new UserError(`${path}: not a readable zip archive (${error.message})`)) : ok(zip!),
    ),
  );
}

function readZipEntries(zip: yauzl.ZipFile, archivePath: string): Promise<yauzl.Entry[]> {
  return new Promise((ok, fail) => {
    const entries: yauzl.Entry[] = [];
    zip.on('entry', (entry: yauzl.Entry) => {
      entries.push(entry);
      zip.readEntry();
    });
    zip.on('end', () => ok(entries));
    // yauzl itself stops at an entry named with `..` or an absolute path: that is a refusal too.
    zip.on('error', (error: Error) =>
      fail(
        /relative path|absolute path|invalid characters/.test(error.message)
          ? new UserError(`${archivePath}: refusing entry: ${error.message}`)
          : new UserError(`${archivePath}: not a valid zip archive (${error.message}); download it again`),
      ),
    );
    zip.readEntry();
  });
}

async function extractZip(archive: string, dest: string, maxBytes: number): Promise<void> {
  const zip = await openZip(archive);
  try {
    const entries = await readZipEntries(zip, archive);
    const checks = entries.map((entry) => {
      const mode = (entry.externalFileAttributes >>> 16) & 0o170000;
      const isDirectory = entry.fileName.endsWith('/');
      // Unix symlinks keep S_IFLNK in the upper bits of the external attributes.
      const isLink = mode === 0o120000;
      return { name: entry.fileName, isFile: !isDirectory && !isLink, isDirectory, size: entry.uncompressedSize };
    });
    checkEntries(archive, checks, maxBytes);
    const root = resolve(dest) + sep;
    for (const entry of entries) {
      const target = resolve(dest, entry.fileName);
      if (!target.startsWith(root)) throw new UserError(`${archive}: refusing entry "${entry.fileName}"`);
      if (entry.fileName.endsWith('/')) {
        mkdirSync(target, { recursive: true });
        continue;
      }
      mkdirSync(dirname(target), { recursive: true });
      try {
        const stream = await new Promise<NodeJS.ReadableStream>((ok, fail) => zip.openReadStream(entry, (e, s) => (e ? fail(e) : ok(s!))));
        // Sizes in the headers can lie consistently; the CRC of what came out cannot.
        let crc = 0;
        const checked = new Transform({
          transform(chunk: Buffer, _encoding, done) {
            crc = crc32(chunk, crc);
            done(null, chunk);
          },
        });
        await pipeline(stream, checked, createWriteStream(target));
        if (crc !== entry.crc32) throw new Error(`CRC-32 ${crc.toString(16)} where the header says ${entry.crc32.toString(16)}`);
      } catch (error) {
        // yauzl checks each entry against its header (sizes, CRC): a mismatch is a damaged or forged archive.
        if ((error as NodeJS.ErrnoException).code === 'ENOSPC') throw error;
        throw new UserError(`${archive}: entry "${entry.fileName}" is damaged or does not match its header (${(error as Error).message}); download the archive again`);
      }
    }
  } finally {
    zip.close();
  }
}
