/**
 * bench: the tokenize and embed stages on a data folder and a model folder, run as a user runs
 * them (separate processes, real artifacts in a temporary store). Prints and writes
 * artifacts/bench/tokenize-embed.json: rows/s, tokens/s, padded-token fraction (and the same
 * for padding every row to max_length), time inside session.run versus the stage's wall time,
 * GFLOP/s, peak memory, and a bare ONNX Runtime loop at batch 32 x 128 for scale.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { repeatedTrainingLines, writeBenchResults } from './bench-data.js';
import { runMain, UserError } from '../../pipeline/errors.js';
import { parseArgs } from '../../pipeline/cli.js';
import { formatCount, info } from '../../pipeline/log.js';
import { readTokens } from '../../pipeline/arrow/index.js';
import { bertFlops } from '../../pipeline/onnx/pooling.js';
import { readModelInfo } from '../../pipeline/model/index.js';
import { encoderFeeds, openEncoder } from '../../pipeline/onnx/encoder.js';
import { encoderOptions, type BertParams, type BertSettings } from '../../pipeline/embed/bert.js';
import { featurizerOf } from '../../pipeline/embed/featurizer.js';
import { loadConfig } from '../../pipeline/config/index.js';
import { sha256 } from '../../pipeline/hash.js';

runMain(async () => {
  const args = await parseArgs('bench', 'Benchmark the tokenize and embed stages.', (y) =>
    y
      .option('data', { type: 'string', default: 'data/demo', describe: 'folder with the Kaggle-format files' })
      .option('model', { type: 'string', default: 'models/demo-bert-random' })
      .option('tokenize-rows', { type: 'number', default: 50_000, describe: 'descriptions for the tokenize run (the data repeated)' })
      .option('max-length', { type: 'number', default: 128 })
      .option('threads', { type: 'number', default: 2 })
      .option('providers', { type: 'string', default: 'cuda,webgpu,cpu', describe: 'execution providers to try, in order (e.g. webgpu)' })
      .option('precision', { choices: ['fp32', 'int8', 'fp16'] as const, default: 'fp32' as const, describe: 'model.precision for the embed run and the bare loop' })
      .option('only', { choices: ['tokenize', 'embed'] as const, describe: 'run one half of the benchmark' }),
  );
  for (const f of ['train_data.txt']) if (!existsSync(join(args.data, f))) throw new UserError(`bench: ${join(args.data, f)} not found`);
  if (!existsSync(join(args.model, 'model.onnx'))) throw new UserError(`bench: ${args.model}/model.onnx not found (make model-bert-base builds a bert-base-sized one)`);
  const work = mkdtempSync(join(tmpdir(), 'bench-'));
  const stage = (name: string, config: string) => {
    const result = spawnSync(process.execPath, [resolve(`dist/stages/${name}.js`), '--config', config, '--artifacts', join(work, 'artifacts')], { stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, CI: '1' } });
    if (result.status !== 0) throw new UserError(`bench: the ${name} stage failed`);
    return JSON.parse(readFileSync(join(work, 'artifacts', 'runs', config.endsWith('big.yaml') ? 'big' : 'real', name, 'manifest.json'), 'utf8'));
  };
  const yaml = (source: string) =>
    `ingest:\n  source: ${resolve(source)}\n  max_reject_fraction: 0.05\nmodel:\n  path: ${resolve(args.model)}\n  precision: ${args.precision}\ntokenize:\n  max_length: ${args['max-length']}\n` +
    `embed:\n  providers: [${args.providers}]\n  threads: ${args.threads}\n`;
  try {
    const benchTokenize = () => {
    // Tokenize: the data's training rows repeated to --tokenize-rows descriptions.
      const big = repeatedTrainingLines(args.data, args['tokenize-rows']);
      mkdirSync(join(work, 'big'));
      writeFileSync(join(work, 'big', 'train_data.txt'), big.join('\n') + '\n');
      writeFileSync(join(work, 'big.yaml'), yaml(join(work, 'big')));
      info(`bench: tokenize ${formatCount(big.length)} descriptions from ${args.data}`);
      stage('ingest', join(work, 'big.yaml'));
      const t0 = performance.now();
      const tok = stage('tokenize', join(work, 'big.yaml'));
      const tokenizeWall = (performance.now() - t0) / 1000;
      return {
        descriptions: big.length,
        descriptions_per_second_tokenizing: tok.timings.rows_per_second,
        descriptions_per_second_stage_wall: Math.round(big.length / tokenizeWall),
        tokens: tok.rows.tokens,
        workers: tok.details.workers,
        peak_rss_mb: tok.timings.peak_rss_mb,
      };
    };
    const benchEmbed = async () => {
    // Embed: the data set itself, as the pipeline would embed it.
      writeFileSync(join(work, 'real.yaml'), yaml(args.data));
      stage('ingest', join(work, 'real.yaml'));
      stage('tokenize', join(work, 'real.yaml'));
      const e0 = performance.now();
      const emb = stage('embed', join(work, 'real.yaml'));
      const embedWall = (performance.now() - e0) / 1000;
      let rows = 0;
      let real = 0;
      for (const split of ['train', 'test']) {
        const tokens = readTokens(join(work, 'artifacts', 'runs', 'real', 'tokenize', `${split}.arrow`));
        rows += tokens.offsets.length - 1;
        real += tokens.ids.length;
      }
      const padded = real / (1 - emb.details.padded_fraction);
      const fixed = rows * args['max-length'];

      // A bare ONNX Runtime loop at batch 32 x 128, for scale: the model the stage ran (fp16 and
      // int8 converted as the stage converts them), fed and read as the stage feeds and reads it.
      const modelInfo = readModelInfo(join(args.model, 'config.json'));
      const modelFile = join(args.model, 'model.onnx');
      const { config } = loadConfig(join(work, 'real.yaml'));
      const bert = featurizerOf(config);
      const encoder = await openEncoder(modelFile, sha256(readFileSync(modelFile)), encoderOptions(bert.params(config) as unknown as BertParams, bert.settings(config) as unknown as BertSettings, modelInfo, modelFile));
      const open = encoder.open;
      const dims: [number, number] = [32, 128];
      const ids = BigInt64Array.from({ length: 32 * 128 }, (_, i) => BigInt(1 + ((i * 7919) % (modelInfo.vocab - 1))));
      const feeds = encoderFeeds(encoder, ids, new BigInt64Array(32 * 128).fill(1n), dims);
      await open.session.run(feeds, [encoder.output]);
      const loops = modelInfo.layers >= 12 ? 3 : 20;
      const b0 = performance.now();
      for (let i = 0; i < loops; i++) await open.session.run(feeds, [encoder.output]);
      const bareSeconds = (performance.now() - b0) / 1000;
      return {
        provider: emb.details.provider,
        embed: {
          rows,
          rows_per_second: emb.timings.rows_per_second,
          tokens_per_second: emb.timings.tokens_per_second,
          session_run_share_of_stage_wall: Number((emb.timings.session_seconds / embedWall).toFixed(3)),
          session_run_share_of_embed_loop: Number((emb.timings.session_seconds / emb.timings.embed_seconds).toFixed(3)),
          stage_wall_seconds: Number(embedWall.toFixed(2)),
          session_seconds: emb.timings.session_seconds,
          gflops_per_second: emb.timings.gflops_per_second,
          real_tokens: real,
          padded_tokens_bucketed: Math.round(padded),
          padded_tokens_fixed_max_length: fixed,
          padding_tokens_bucketed: Math.round(padded - real),
          padding_tokens_fixed_max_length: fixed - real,
          fewer_tokens_than_fixed_padding: Number((1 - padded / fixed).toFixed(3)),
          peak_rss_mb: emb.timings.peak_rss_mb,
        },
        bare_onnxruntime_batch_32x128: {
          sequences_per_second: Number(((loops * 32) / bareSeconds).toFixed(2)),
          gflops_per_second: Number(((loops * bertFlops(modelInfo, 32, 128)) / bareSeconds / 1e9).toFixed(1)),
        },
      };
    };
    const report = {
      data: args.data,
      model: args.model,
      model_shape: readModelInfo(join(args.model, 'config.json')),
      precision: args.precision,
      threads: args.threads,
      tokenize: args.only === 'embed' ? undefined : benchTokenize(),
      ...(args.only === 'tokenize' ? {} : await benchEmbed()),
    };
    info(`bench: -> ${writeBenchResults(args.artifacts, args.precision === 'fp32' ? 'tokenize-embed' : `tokenize-embed-${args.precision}`, report)}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
