import { readFileSync } from 'node:fs';
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
  const { config } = loadConfig(path, overrides, { allowUnpinned: true });
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
    const { sha256 } = await downloadUnpinned(url, {
      field: 'ingest.source',
      headers,
      authHint,
      retries: ingest.download.retries,
      timeoutS: ingest.download.timeout_s,
      maxBytes: ingest.download.max_bytes,
      offlineHint: 'run make pin where the source can be reached',
    });
    changes.push({ field: 'ingest.sha256', from: ingest.sha256, to: sha256, how: 'downloaded into the cache and hashed' });
  }
  if (changes.length) writePins(path, changes);
  return changes;
}

function writePins(path: string, changes: PinChange[]): void {
  const doc = YAML.parseDocument(readFileSync(path, 'utf8'));
  const date = new Date().toISOString().slice(0, 10);
  for (const change of changes) {
    const keyPath = change.field.startsWith('model.hub.files.') ? ['model', 'hub', 'files', change.field.slice('model.hub.files.'.length)] : change.field.split('.');
    doc.setIn(keyPath, change.to);
    if (change.field === 'model.hub.revision' && change.from && !isCommitId(change.from)) {
      const node = doc.getIn(keyPath, true);
      if (isScalar(node)) node.comment = ` ${change.from} on ${date} (make pin); set a branch or tag again and rerun make pin to move`;
    }
  }
  writeFileAtomically(path, doc.toString());
}
