/** clean: forgets the current run (its folder of links); artifacts stay until `gc`. */
import { rmSync, existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { runMain } from '../pipeline/errors.js';
import { parseArgs } from '../pipeline/cli.js';
import { loadConfig } from '../pipeline/config/index.js';
import { info } from '../pipeline/log.js';
import { ArtifactStore } from '../pipeline/artifacts/store.js';
import { runDir } from '../pipeline/artifacts/runs.js';

runMain(async () => {
  const args = await parseArgs('clean', "Forget the current config's run.");
  const { config } = loadConfig(args.config, args.set);
  const dir = runDir(new ArtifactStore(resolve(args.artifacts)), config.run);
  if (!existsSync(dir)) return info(`clean: no run ${config.run}`);
  rmSync(dir, { recursive: true, force: true });
  info(`clean: forgot run ${config.run} (${dir}); \`make gc\` removes the artifacts no run points to`);
});
