import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { UserError } from './errors.js';
import { setLogLevel } from './log.js';

/** The options every stage and command shares. */
export interface CommonArgs {
  config: string;
  set: string[];
  artifacts: string;
  /** Stages only: rebuild even when the artifact is published (`make FORCE=stage`). */
  force?: boolean;
  /** Stages only: write the outcome ({ stage, key, built, dir }) as JSON here, for programs that drive stages. */
  resultJson?: string;
}

/**
 * Parses a command line with the shared options plus the command's own. Unknown options are
 * errors, as unknown config keys are.
 */
export async function parseArgs<T>(command: string, describe: string, extend: (y: Argv<CommonArgs>) => Argv<T> = (y) => y as unknown as Argv<T>): Promise<T & CommonArgs> {
  const base = yargs(hideBin(process.argv))
    .scriptName(command)
    .usage(`$0 [options]\n\n${describe}`)
    .option('config', { type: 'string', default: 'configs/default.yaml', describe: 'YAML config file' })
    .option('set', { type: 'string', array: true, default: [] as string[], describe: 'override a config value: --set train.optimizer.lr=0.0003' })
    .option('artifacts', { type: 'string', default: process.env.PIPELINE_ARTIFACTS ?? 'artifacts', describe: 'artifact store folder' })
    .option('quiet', { type: 'boolean', describe: 'only warnings, errors and the answer (make QUIET=1)' })
    .option('verbose', { type: 'boolean', describe: 'also how it ran: providers tried, backends, model inputs (make VERBOSE=1)' })
    .conflicts('quiet', 'verbose')
    .strict()
    .help()
    .fail((message, error) => {
      if (error) throw error;
      throw new UserError(`${command}: ${message} (see --help)`);
    }) as unknown as Argv<CommonArgs>;
  const argv = (await extend(base).parseAsync()) as T & CommonArgs & { quiet?: boolean; verbose?: boolean };
  if (argv.quiet) setLogLevel('quiet');
  if (argv.verbose) setLogLevel('verbose');
  // `make ... SET="a=1 b=2"` arrives as one --set per word; an empty SET arrives as "".
  argv.set = (argv.set ?? []).flatMap((s) => String(s).split(/\s+/)).filter(Boolean);
  return argv;
}

/** A stage's command line: the shared options, `--force`, and the stage's own. */
export function parseStageArgs<T>(command: string, describe: string, extend: (y: Argv<CommonArgs>) => Argv<T> = (y) => y as unknown as Argv<T>): Promise<T & CommonArgs> {
  return parseArgs(command, describe, (y) =>
    extend(
      y
        .option('force', { type: 'boolean', default: false, describe: 'rebuild this stage even when its artifact is published, and replace it' })
        .option('result-json', { type: 'string', describe: 'write what the run did ({ stage, key, built, dir }) as JSON to this file' }) as unknown as Argv<CommonArgs>,
    ),
  );
}
