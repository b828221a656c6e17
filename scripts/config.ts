/** config: prints the resolved config (extends followed, overrides applied, defaults filled in), or one field of it. */
import { runMain, UserError } from '../pipeline/errors.js';
import { parseArgs } from '../pipeline/cli.js';
import { getPath, loadConfig, parseKeyPath } from '../pipeline/config/index.js';
import YAML from 'yaml';

runMain(async () => {
  const args = await parseArgs('config', 'Print the resolved config.', (y) =>
    y
      .option('get', { type: 'string', describe: 'print one field only, e.g. --get run (the run folder a CI job reads the report from)' })
      .option('check', { type: 'boolean', default: false, describe: 'print nothing; exit 1 with the error when the config cannot run (pins included)' }),
  );
  if (args.check) {
    loadConfig(args.config, args.set);
    return;
  }
  // Showing a config is fine before it is pinned (only running it is not).
  const loaded = loadConfig(args.config, args.set, { allowUnpinned: true });
  if (args.get === undefined) {
    process.stdout.write(YAML.stringify(loaded.config));
    return;
  }
  const value = getPath(loaded.config, parseKeyPath(args.get, '--get'));
  if (value === undefined) throw new UserError(`config --get ${args.get}: no such field in ${args.config}`);
  process.stdout.write(`${typeof value === 'object' ? JSON.stringify(value) : String(value)}\n`);
});
