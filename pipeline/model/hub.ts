import { UserError } from '../errors.js';
import { downloadUnpinned, request } from '../download/index.js';
import type { ModelConfig } from '../config/index.js';

/**
 * The Hugging Face hub's HTTP interface, as far as the pipeline uses it: a file's URL at a
 * revision, the commit a branch or tag points to, and a file's sha256. Private and gated
 * repositories need a token: `HF_TOKEN` is sent as a bearer token when it is set.
 */
export type Hub = NonNullable<ModelConfig['hub']>;

/** What to do when the hub refuses: set a token, or, when one was sent, check that one. */
export function hubAuthHint(): string {
  if (process.env.HF_TOKEN) return 'the hub refused the HF_TOKEN that was sent: check that it is valid and has read access to the repository, and for a gated model that its license is accepted on the model page (https://huggingface.co/settings/tokens)';
  return 'a private or gated repository needs an access token with read access: set HF_TOKEN (https://huggingface.co/settings/tokens)';
}
export const HUB_OFFLINE_HINT = 'download the model folder elsewhere (model.onnx, tokenizer.json, tokenizer_config.json, config.json) and set model.path to it instead of model.hub';
const OFFLINE = `Pinning needs the hub; on an offline machine, ${HUB_OFFLINE_HINT}.`;

const base = (hub: Hub) => hub.base_url.replace(/\/$/, '');

export function hubFileUrl(hub: Hub, revision: string, file: string): string {
  return `${base(hub)}/${hub.repo}/resolve/${revision}/${file}`;
}

export function hubHeaders(): Record<string, string> {
  const token = process.env.HF_TOKEN;
  return token ? { authorization: `Bearer ${token}` } : {};
}

export const isCommitId = (revision: string) => /^[0-9a-f]{40}$/.test(revision);

/** The commit id that a branch, tag or commit names (`/api/models/<repo>/revision/<rev>` answers with `sha`). */
export async function resolveRevision(hub: Hub): Promise<string> {
  const url = `${base(hub)}/api/models/${hub.repo}/revision/${encodeURIComponent(hub.revision)}`;
  const response = await request(url, { field: 'model.hub.revision', headers: hubHeaders(), authHint: hubAuthHint(), offlineHint: OFFLINE });
  const body = (await response.json().catch(() => ({}))) as { sha?: unknown };
  if (typeof body.sha !== 'string' || !isCommitId(body.sha)) throw new UserError(`model.hub.revision: ${url} did not answer with a commit id (got ${JSON.stringify(body.sha)})`);
  return body.sha;
}

/**
 * A file's sha256 at a commit. Large (LFS) files carry it in the `X-Linked-Etag` header of the
 * resolve URL, so a 438 MB model is pinned without downloading it; small files carry a git blob
 * id there instead, so they are downloaded into the cache (where the next run finds them) and hashed.
 */
export async function fileChecksum(hub: Hub, commit: string, file: string): Promise<{ sha256: string; how: 'X-Linked-Etag' | 'downloaded' }> {
  const url = hubFileUrl(hub, commit, file);
  const field = `model.hub.files.${file}`;
  const head = await request(url, { method: 'HEAD', field, headers: hubHeaders(), authHint: hubAuthHint(), offlineHint: OFFLINE, manualRedirect: true });
  const linked = (head.headers.get('x-linked-etag') ?? '').replace(/^W\//, '').replace(/"/g, '');
  if (/^[0-9a-f]{64}$/.test(linked)) return { sha256: linked, how: 'X-Linked-Etag' };
  const { sha256 } = await downloadUnpinned(url, { field, headers: hubHeaders, authHint: hubAuthHint(), offlineHint: HUB_OFFLINE_HINT });
  return { sha256, how: 'downloaded' };
}
