/**
 * prefetch: the model files a config names, downloaded (pinned by sha256) into $PIPELINE_CACHE,
 * so that the machines or pods that share that cache (deploy/k8s) download nothing each.
 * `make prefetch` runs ingest first, which fetches the data archive the same way.
 */
import { runMain } from '../pipeline/errors.js';
import { parseArgs } from '../pipeline/cli.js';
import { info } from '../pipeline/log.js';
import { loadConfig } from '../pipeline/config/index.js';
import { modelConfig, resolveModel } from '../pipeline/model/index.js';
import { cacheRoot } from '../pipeline/download/index.js';

runMain(async () => {
  const args = await parseArgs('prefetch', "Download the config's model files into the cache.");
  const loaded = loadConfig(args.config, args.set);
  if (!loaded.config.model) return info(`prefetch: ${args.config} names no model (embed.method ${loaded.config.embed.method}): nothing to download`);
  const { hub } = modelConfig(loaded);
  if (!hub) return info(`prefetch: ${args.config} reads its model from a folder (model.path): nothing to download`);
  const files = await resolveModel(loaded);
  info(`prefetch: ${Object.keys(hub.files).length} model file(s) of ${hub.repo}@${hub.revision.slice(0, 12)} in ${cacheRoot()} (${files.onnx})`);
});
