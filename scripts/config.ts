/** config: prints the resolved config (extends followed, overrides applied, defaults filled in). */
import { runMain } from '../pipeline/errors.js';
import { parseArgs } from '../pipeline/cli.js';
import { loadConfig } from '../pipeline/config/index.js';
import { printConfig } from '../pipeline/stage.js';

runMain(async () => {
  const args = await parseArgs('config', 'Print the resolved config.');
  process.stdout.write(printConfig(loadConfig(args.config, args.set)));
});
