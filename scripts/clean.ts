/** clean: forgets the current run (its folder of links and its run records); artifacts stay until `gc`. */
import { rmSync, existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { runMain } from '../pipeline/errors.js';
import { parseArgs } from '../pipeline/cli.js';
import { loadConfig } from '../pipeline/config/index.js';
import { info } from '../pipeline/log.js';
import { ArtifactStore } from '../pipeline/artifacts/store.js';
import { runDir } from '../pipeline/artifacts/runs.js';
import { listRecords, removeRecord } from '../pipeline/artifacts/records.js';

runMain(async () => {
  const args = await parseArgs('clean', "Forget the current config's run.");
  const { config } = loadConfig(args.config, args.set);
  const store = new ArtifactStore(resolve(args.artifacts));
  const dir = runDir(store, config.run);
  const records = listRecords(store).filter((r) => r.name === config.run);
  if (!existsSync(dir) && !records.length) return info(`clean: no run ${config.run}`);
  rmSync(dir, { recursive: true, force: true });
  for (const record of records) removeRecord(store, record.id);
  info(`clean: forgot run ${config.run} (${dir}) and its ${records.length} run record(s); \`make gc\` removes the artifacts nothing else keeps`);
});
