/**
 * embed: descriptions -> one vector per row (Arrow IPC, FixedSizeList<Float32>[dim]), by the
 * featurizer `embed.method` names (pipeline/embed/featurizer.ts)
 *
 *   parse arguments              -> config + overrides; --shard i/n or --merge n (bert)
 *   fit                          -> bert: nothing (a frozen encoder); tfidf: vocabulary and IDF on
 *                                   the training split only, stored as tfidf.json
 *   bert: look up the cache      -> rows whose token ids were embedded before (by any run) are
 *                                   read from the vector cache, not run again
 *   bert: open the model         -> an ONNX Runtime session, provider chosen and logged (only
 *                                   when some row is not cached)
 *   bert: each shard, each batch -> rows of similar length up to a token budget, run, pool; each
 *                                   finished shard is added to the cache (a rerun resumes)
 *   tfidf: transform             -> every row through the fitted vocabulary, l2-normalized
 *   publish                      -> train.arrow, test.arrow in ingest row order; manifest with
 *                                   rows computed and taken from the cache, throughput, provider
 *
 * Several machines can share a BERT corpus: each runs `--shard i/n` (an embed-slice artifact),
 * then one runs `--merge n`, which yields the artifact a single run would have written, byte for byte.
 */
import { runMain, UserError } from '../pipeline/errors.js';
import { parseStageArgs } from '../pipeline/cli.js';
import { runStage } from '../pipeline/runner.js';
import type { StageRun } from '../pipeline/stage-types.js';
import type { BertRun } from '../pipeline/embed/bert.js';

runMain(async () => {
  const args = await parseStageArgs('embed', 'Turn descriptions into vectors with the featurizer embed.method names (BERT or TF-IDF).', (y) =>
    y
      .option('shard', { type: 'string', describe: 'embed only slice i of n (e.g. 0/4), for a later --merge n' })
      .option('merge', { type: 'number', describe: 'join slices 0/n .. n-1/n into the embed artifact' })
      .conflicts('shard', 'merge'),
  );
  if (args.shard === undefined && args.merge === undefined) {
    await runStage('embed', args);
    return;
  }
  const { build, sliceKey } = await import('../pipeline/embed/bert.js');
  // Slices split the work of a frozen encoder; TF-IDF fits on the whole training split in one pass.
  const bertOnly = (run: StageRun<{ embed: { method: string } }>, option: string) => {
    if (run.params.embed.method !== 'bert') throw new UserError(`embed ${option}: slices are for embed.method bert; ${run.params.embed.method} embeds the corpus in one pass (run embed without it)`);
    return run as unknown as BertRun;
  };
  if (args.shard !== undefined) {
    const match = /^(\d+)\/(\d+)$/.exec(args.shard);
    const slice = match ? { index: Number(match[1]), count: Number(match[2]) } : undefined;
    if (!slice || slice.count < 1 || slice.index >= slice.count) throw new UserError(`embed --shard ${args.shard}: expected i/n with 0 <= i < n, e.g. --shard 0/4`);
    await runStage('embed', args, { build: (run) => build(bertOnly(run, '--shard'), { slice }), publishAs: (planned) => ({ stage: 'embed-slice', key: sliceKey(planned.key, slice) }) });
  } else {
    if (!Number.isInteger(args.merge) || args.merge! < 1) throw new UserError(`embed --merge ${args.merge}: expected the number of slices, e.g. --merge 4`);
    await runStage('embed', args, { build: (run) => build(bertOnly(run, '--merge'), { merge: args.merge! }) });
  }
});
