/**
 * pin: resolves a config's hub revision to a commit id and fills in the sha256 of every hub file
 * and of a remote ingest source (URL or kaggle://), in the config file itself (comments kept).
 *
 *   make pin CONFIG=configs/imdb-bert-base.yaml        (HF_TOKEN for private or gated repositories)
 */
import { runMain } from '../pipeline/errors.js';
import { parseArgs } from '../pipeline/cli.js';
import { info } from '../pipeline/log.js';
import { pinConfig } from '../pipeline/pin/index.js';

runMain(async () => {
  const args = await parseArgs('pin', 'Pin the hub revision and the checksums of the model files and data source into the config file.');
  const changes = await pinConfig(args.config, args.set);
  if (!changes.length) {
    info(`pin: ${args.config} is pinned already; nothing changed`);
    return;
  }
  for (const change of changes) info(`  ${change.field}: ${change.from ?? '(unset)'} -> ${change.to}  (${change.how})`);
  info(`pin: wrote ${changes.length} pin${changes.length > 1 ? 's' : ''} into ${args.config}; review the diff and commit it`);
});
