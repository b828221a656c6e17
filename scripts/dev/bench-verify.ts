/**
 * bench-verify: what checking a stage's inputs against their manifests (size and sha256 of every
 * file, before the stage reads them) costs, next to the stage's own time.
 *
 *   1. the train stage of --config (default configs/imdb-sample.yaml), rebuilt with --force: its
 *      manifest's verify_inputs_seconds against its wall time;
 *   2. --rows x --dim vectors (default 100,000 x 768, bert-base's width: 307 MB), published as an
 *      embed artifact in a scratch store and checked as a stage would check it, next to one epoch
 *      of training on that many rows with the configured network (a training run has at least one).
 *
 *   make bench-verify
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { writeBenchResults } from './bench-data.js';
import { runMain, UserError } from '../../pipeline/errors.js';
import { parseArgs } from '../../pipeline/cli.js';
import { formatBytes, info } from '../../pipeline/log.js';
import { loadConfig } from '../../pipeline/config/index.js';
import { ArtifactStore, type Manifest } from '../../pipeline/artifacts/store.js';
import { writeEmbeddings } from '../../pipeline/arrow/index.js';
import { selectBackend, tf } from '../../pipeline/mlp/backend.js';
import { buildModel } from '../../pipeline/mlp/model.js';
import { Rng } from '../../pipeline/random.js';
import { runPointers } from '../../pipeline/artifacts/runs.js';

runMain(async () => {
  const args = await parseArgs('bench-verify', 'Cost of verifying inputs against their manifests.', (y) =>
    y.option('rows', { type: 'number', default: 100_000 }).option('dim', { type: 'number', default: 768 }).option('labels', { type: 'number', default: 27 }),
  );
  // 1. A real stage: train on --config, rebuilt.
  const trained = spawnSync(process.execPath, [resolve('dist/stages/train.js'), '--config', args.config, '--artifacts', args.artifacts, ...args.set.flatMap((s) => ['--set', s]), '--force'], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (trained.status !== 0) throw new UserError(`bench-verify: the train stage of ${args.config} failed (build its upstream first: make embed CONFIG=${args.config})`);
  const { config } = loadConfig(args.config, args.set);
  const store = new ArtifactStore(resolve(args.artifacts));
  const train = store.readManifest('train', runPointers(store, config.run).train!)!;
  const inputBytes = Object.values(train.inputs).length
    ? Object.entries(train.inputs).reduce((n, [stage, key]) => n + Object.values(store.readManifest(stage, key)!.files).reduce((a, f) => a + f.bytes, 0), 0)
    : 0;
  const stage = { config: args.config, input_bytes: inputBytes, verify_seconds: train.timings.verify_inputs_seconds!, stage_seconds: train.timings.seconds! };
  info(`bench-verify: ${args.config} train: verified ${formatBytes(inputBytes)} in ${stage.verify_seconds}s of a ${stage.stage_seconds}s stage (${((100 * stage.verify_seconds) / stage.stage_seconds).toFixed(2)}%)`);

  // 2. A large embed artifact, checked as a stage checks its inputs, next to one epoch on it.
  const scratch = new ArtifactStore(mkdtempSync(join(tmpdir(), 'bench-verify-')));
  const rng = new Rng(1, 'bench-verify');
  const vectors = Float32Array.from({ length: args.rows * args.dim }, () => rng.next() * 2 - 1);
  try {
    await scratch.ensure({ stage: 'embed', key: 'bench', stage_version: 1, params: {}, inputs: {}, sources: {} }, async ({ dir }) => {
      writeEmbeddings(join(dir, 'train.arrow'), { vectors, hidden: args.dim });
      return { rows: { train: args.rows } };
    });
    const t0 = performance.now();
    const problem = await scratch.check('embed', 'bench');
    const verifySeconds = (performance.now() - t0) / 1000;
    if (problem) throw new Error(`bench-verify: the scratch artifact does not verify: ${problem}`);
    const bytes = (JSON.parse(readFileSync(join(scratch.keyDir('embed', 'bench'), 'manifest.json'), 'utf8')) as Manifest).files['train.arrow']!.bytes;

    await selectBackend(config.train.backend);
    const model = buildModel(args.dim, args.labels, config.train, 1);
    model.compile({ optimizer: tf.train.adam(config.train.optimizer.lr), loss: 'categoricalCrossentropy' });
    const xs = tf.tensor2d(vectors, [args.rows, args.dim]);
    const ys = tf.oneHot(tf.tensor1d(Int32Array.from({ length: args.rows }, () => rng.int(args.labels)), 'int32'), args.labels);
    const t1 = performance.now();
    await model.fit(xs, ys, { epochs: 1, batchSize: config.train.batch_size, verbose: 0 });
    const epochSeconds = (performance.now() - t1) / 1000;
    const large = { rows: args.rows, dim: args.dim, bytes, verify_seconds: Number(verifySeconds.toFixed(3)), one_epoch_seconds: Number(epochSeconds.toFixed(1)) };
    info(`bench-verify: ${args.rows} x ${args.dim} vectors (${formatBytes(bytes)}) verified in ${verifySeconds.toFixed(2)}s; one training epoch on them ${epochSeconds.toFixed(1)}s (${((100 * verifySeconds) / epochSeconds).toFixed(2)}% of one epoch)`);
    writeBenchResults(args.artifacts, 'verify', {
      stage,
      stage_share: Number((stage.verify_seconds / stage.stage_seconds).toFixed(4)),
      large,
      large_share_of_one_epoch: Number((verifySeconds / epochSeconds).toFixed(4)),
    });
  } finally {
    rmSync(scratch.root, { recursive: true, force: true });
  }
});
