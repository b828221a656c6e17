import { closeSync, openSync, readFileSync, readSync, realpathSync } from 'node:fs';
import { UserError } from '../errors.js';
import YAML, { isScalar } from 'yaml';
import { loadConfig } from '../config/index.js';
import { isRemoteSource, PIN_PLACEHOLDER } from '../config/schema.js';
import { downloadUnpinned } from '../download/index.js';
import { fileChecksum, isCommitId, resolveRevision } from '../model/hub.js';
import { remoteSource } from '../ingest/source.js';
import { writeFileAtomically } from '../artifacts/store.js';

export interface PinChange {
  field: string;
  from: string | undefined;
  to: string;
  /** How the value was found (the hub's X-Linked-Etag header, a download, the revision API). */
  how: string;
}

/**
 * `make pin`: replaces a config's moving references with fixed ones. The hub revision (a branch
 * or tag) becomes the commit id it points to now, and every listed hub file and a remote ingest
 * source get their sha256, so that a retrain next month runs on the same bytes or stops. The
 * values are written into the config file itself with the `yaml` Document API, so its comments
 * and layout stay; nothing is written when nothing changed. A pin is never invented: every value
 * comes from the server, and a server that cannot be reached is an error.
 */
export async function pinConfig(path: string, overrides: string[]): Promise<PinChange[]> {
  // The pins are written into the file: computed from anything but the file, they would not be its pins.
  if (overrides.length) throw new UserError(`pin: --set (SET=) does not apply: make pin writes the pins of ${path} as the file is; put ${overrides.join(' ')} in the file (or in a config that extends it) and pin that`);
  const { config } = loadConfig(path, [], { allowUnpinned: true });
  const changes: PinChange[] = [];
  const hub = config.model?.hub;
  if (hub) {
    const commit = await resolveRevision(hub);
    if (commit !== hub.revision) changes.push({ field: 'model.hub.revision', from: hub.revision, to: commit, how: `the hub's commit for ${hub.revision}` });
    for (const [file, current] of Object.entries(hub.files)) {
      const { sha256, how } = await fileChecksum(hub, commit, file);
      if (sha256 !== current) changes.push({ field: `model.hub.files.${file}`, from: current, to: sha256, how });
    }
  }
  const { ingest } = config;
  if (isRemoteSource(ingest.source) && (!ingest.sha256 || ingest.sha256 === PIN_PLACEHOLDER)) {
    const { url, headers, authHint } = remoteSource(ingest);
    const { sha256, path: downloaded } = await downloadUnpinned(url, {
      field: 'ingest.source',
      headers,
      authHint,
      retries: ingest.download.retries,
      timeoutS: ingest.download.timeout_s,
      maxBytes: ingest.download.max_bytes,
      offlineHint: 'run make pin where the source can be reached',
    });
    checkDataDownload(downloaded, ingest.source);
    changes.push({ field: 'ingest.sha256', from: ingest.sha256, to: sha256, how: 'downloaded into the cache and hashed' });
  }
  if (changes.length) writePins(path, changes);
  return changes;
}

/**
 * What is pinned must be the data: a login page or an error page answered with 200 (Kaggle does
 * that for a dataset whose rules are not accepted) would be pinned as the data set forever.
 */
function checkDataDownload(path: string, source: string): void {
  const head = Buffer.alloc(512);
  const fd = openSync(path, 'r');
  const bytes = readSync(fd, head, 0, head.length, 0);
  closeSync(fd);
  const start = head.subarray(0, bytes);
  const text = start.toString('utf8').trimStart().toLowerCase();
  if (text.startsWith('<!doctype html') || text.startsWith('<html')) throw new UserError(`pin: ${source} answered with a web page, not data (a login or error page?): nothing was pinned; open the URL in a browser to see why`);
  const isZip = start[0] === 0x50 && start[1] === 0x4b;
  if (/^kaggle:/i.test(source) && !isZip) throw new UserError(`pin: ${source} answered with something that is not a zip archive (${bytes} bytes starting ${JSON.stringify(start.subarray(0, 16).toString('latin1'))}): nothing was pinned`);
}

function writePins(path: string, changes: PinChange[]): void {
  // Through a symbolic link to the file it names: a link would otherwise be replaced by a copy and the real config left unpinned.
  const target = realpathSync(path);
  const doc = YAML.parseDocument(readFileSync(target, 'utf8'));
  const date = new Date().toISOString().slice(0, 10);
  for (const change of changes) {
    const keyPath = change.field.startsWith('model.hub.files.') ? ['model', 'hub', 'files', change.field.slice('model.hub.files.'.length)] : change.field.split('.');
    const node = doc.getIn(keyPath, true);
    // The node's value, not the node: its comment stays.
    if (isScalar(node)) node.value = change.to;
    else doc.setIn(keyPath, change.to);
    if (change.field === 'model.hub.revision' && change.from && !isCommitId(change.from)) {
      const pinned = doc.getIn(keyPath, true);
      const note = `${change.from} on ${date} (make pin); set a branch or tag again and rerun make pin to move`;
      if (isScalar(pinned)) pinned.comment = pinned.comment ? `${pinned.comment.trimEnd()}; was ${note}` : ` ${note}`;
    }
  }
  writeFileAtomically(target, doc.toString());
}
