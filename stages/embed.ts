/**
 * embed: token ids -> one frozen BERT vector per row (Arrow IPC, FixedSizeList<Float32>[hidden])
 *
 *   parse arguments              -> config + overrides; --shard i/n or --merge n
 *   open the upstream artifact   -> token ids (Arrow)
 *   open the model               -> an ONNX Runtime session, provider chosen and logged
 *   for each shard, each batch   -> rows of similar length up to a token budget, run, pool;
 *                                   a shard file per finished shard (a rerun resumes after a crash)
 *   publish                      -> train.arrow, test.arrow in ingest row order; manifest with
 *                                   throughput, time inside session.run, provider, versions
 *
 * Several machines can share a corpus: each runs `--shard i/n` (an embed-slice artifact), then
 * one runs `--merge n`, which yields the artifact a single run would have written, byte for byte.
 */
import { runMain, UserError } from '../pipeline/errors.js';
import { parseStageArgs } from '../pipeline/cli.js';
import { runStage } from '../pipeline/runner.js';

runMain(async () => {
  const args = await parseStageArgs('embed', 'Embed token ids with a BERT ONNX model.', (y) =>
    y
      .option('shard', { type: 'string', describe: 'embed only slice i of n (e.g. 0/4), for a later --merge n' })
      .option('merge', { type: 'number', describe: 'join slices 0/n .. n-1/n into the embed artifact' })
      .conflicts('shard', 'merge'),
  );
  const { embed, mergeSlices, sliceKey } = await import('../pipeline/embed/embed.js');
  if (args.shard !== undefined) {
    const match = /^(\d+)\/(\d+)$/.exec(args.shard);
    const slice = match ? { index: Number(match[1]), count: Number(match[2]) } : undefined;
    if (!slice || slice.count < 1 || slice.index >= slice.count) throw new UserError(`embed --shard ${args.shard}: expected i/n with 0 <= i < n, e.g. --shard 0/4`);
    await runStage('embed', args, { build: (run) => embed(run, slice), resumable: true, publishAs: (planned) => ({ stage: 'embed-slice', key: sliceKey(planned.key, slice) }) });
  } else if (args.merge !== undefined) {
    if (!Number.isInteger(args.merge) || args.merge < 1) throw new UserError(`embed --merge ${args.merge}: expected the number of slices, e.g. --merge 4`);
    await runStage('embed', args, { build: (run) => mergeSlices(run, run.store, args.merge!) });
  } else {
    await runStage('embed', args);
  }
});
