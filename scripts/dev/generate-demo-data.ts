import { runMain } from '../../pipeline/errors.js';
import { info } from '../../pipeline/log.js';
import { parseArgs } from '../../pipeline/cli.js';
import { writeDemoData } from '../../pipeline/testing/demo-data.js';

// Writes the offline demo data set (generated, not real) that configs/default.yaml reads.
runMain(async () => {
  const args = await parseArgs('generate-demo-data', 'Write the generated demo data set.', (y) =>
    y.option('out', { type: 'string', default: 'data/demo' }).option('seed', { type: 'number', default: 7 }),
  );
  const summary = writeDemoData(args.out, args.seed);
  info(`demo data (generated, not real): ${summary.train} train and ${summary.test} test movies in ${summary.genres} genres, ${summary.malformed} malformed lines -> ${args.out}`);
});
