/**
 * bench-gpu: the one prepared check of the GPU path (`make bench-gpu`), in one JSON
 * (artifacts/bench/gpu.json), within a time budget (8 minutes on one GPU, no network):
 *
 *   the machine              -> CPU flags, GPUs (nvidia-smi), Vulkan loader and adapters, ONNX
 *                               Runtime's version and whether its CUDA provider files are installed
 *   the embed stage          -> on a bert-base-sized model, once per provider and precision
 *                               (cpu fp32; webgpu fp32, fp16; cuda fp32, fp16), each in a store of
 *                               its own, run as a user runs it; rows/s, and each row's vector
 *                               against the CPU's (cosine)
 *   a bare loop              -> ONNX Runtime at batch 32 x 128 on each provider that ran
 *   PyTorch                  -> a 12-layer, 768-wide encoder at the same batch and length, on the
 *                               CPU and on CUDA (fp32, fp16), when `import torch` works
 *
 * A provider that cannot run is listed with the reason the stage gave, so the same command
 * finishes on a machine without a GPU with the CPU's figures and every skip explained.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { machine, trainingFields, writeBenchResults } from './bench-data.js';
import { runMain, UserError } from '../../pipeline/errors.js';
import { parseArgs } from '../../pipeline/cli.js';
import { formatSeconds, info } from '../../pipeline/log.js';
import { readEmbeddings } from '../../pipeline/arrow/index.js';
import { bertFlops, rowCosines } from '../../pipeline/onnx/pooling.js';
import { readModelInfo } from '../../pipeline/model/index.js';
import { encoderFeeds, openEncoder } from '../../pipeline/onnx/encoder.js';
import { onnxRuntimeVersion } from '../../pipeline/onnx/session.js';
import { encoderOptions, type BertParams, type BertSettings } from '../../pipeline/embed/bert.js';
import { featurizerOf } from '../../pipeline/embed/featurizer.js';
import { loadConfig } from '../../pipeline/config/index.js';
import { sha256 } from '../../pipeline/hash.js';

type Precision = 'fp32' | 'fp16';
const VARIANTS: { provider: 'cpu' | 'webgpu' | 'cuda'; precision: Precision }[] = [
  { provider: 'cpu', precision: 'fp32' },
  { provider: 'cuda', precision: 'fp32' },
  { provider: 'cuda', precision: 'fp16' },
  { provider: 'webgpu', precision: 'fp32' },
  { provider: 'webgpu', precision: 'fp16' },
];

interface VariantResult {
  provider: string;
  precision: Precision;
  status: 'ran' | 'skipped';
  reason?: string;
  rows?: number;
  rows_per_second?: number;
  stage_seconds?: number;
  cosine_to_cpu?: { min: number; mean: number };
  bare_batch_32x128?: { sequences_per_second: number; gflops_per_second: number };
}

runMain(async () => {
  const args = await parseArgs('bench-gpu', 'The GPU path, proven as far as this machine allows, in one JSON.', (y) =>
    y
      .option('data', { type: 'string', default: 'data/demo', describe: 'folder with train_data.txt' })
      .option('model', { type: 'string', default: 'models/bert-base-random', describe: 'a bert-base-sized model folder (make model-bert-base)' })
      .option('rows', { type: 'number', default: 512, describe: 'descriptions embedded per variant' })
      .option('threads', { type: 'number', default: 0, describe: 'CPU threads (0: every core)' })
      .option('budget-s', { type: 'number', default: 420, describe: 'stop starting variants after this many seconds' }),
  );
  if (!existsSync(join(args.model, 'model.onnx'))) throw new UserError(`bench-gpu: ${args.model}/model.onnx not found (make model-bert-base builds a bert-base-sized one)`);
  const started = performance.now();
  const elapsed = () => (performance.now() - started) / 1000;
  const threads = args.threads || machine().cores;
  const work = mkdtempSync(join(tmpdir(), 'bench-gpu-'));
  const data = join(work, 'data');
  mkdirSync(data);
  const lines = trainingFields(args.data).slice(0, args.rows);
  writeFileSync(join(data, 'train_data.txt'), `${lines.map((f) => f.join(' ::: ')).join('\n')}\n`);
  const modelInfo = readModelInfo(join(resolve(args.model), 'config.json'));
  const results: VariantResult[] = [];
  let cpuVectors: Float32Array | undefined;
  try {
    for (const variant of VARIANTS) {
      const name = `${variant.provider}-${variant.precision}`;
      const remaining = args['budget-s'] - elapsed();
      if (remaining < 20) {
        results.push({ ...variant, status: 'skipped', reason: `time budget: ${Math.round(elapsed())} s of ${args['budget-s']} s spent` });
        continue;
      }
      const config = join(work, `${name}.yaml`);
      writeFileSync(
        config,
        `run: ${name}\ningest:\n  source: ${data}\n  max_reject_fraction: 0.05\nmodel:\n  path: ${resolve(args.model)}\n  precision: ${variant.precision}\n` +
          `tokenize:\n  max_length: 128\nembed:\n  providers: [${variant.provider}]\n  threads: ${threads}\n`,
      );
      const store = join(work, name);
      info(`bench-gpu: embed on ${variant.provider} ${variant.precision} (${args.rows} rows, ${formatSeconds(remaining)} of the budget left)`);
      let failure: string | undefined;
      const t0 = performance.now();
      for (const stage of ['ingest', 'tokenize', 'embed']) {
        const run = spawnSync(process.execPath, [resolve(`dist/stages/${stage}.js`), '--config', config, '--artifacts', store], {
          encoding: 'utf8',
          env: { ...process.env, CI: '1' },
          timeout: Math.round(remaining * 1000),
        });
        if (run.status !== 0) {
          failure = skipReason(run.stderr, run.error);
          break;
        }
      }
      const stageSeconds = (performance.now() - t0) / 1000;
      if (failure) {
        info(`bench-gpu: ${name} skipped: ${failure}`);
        results.push({ ...variant, status: 'skipped', reason: failure });
        continue;
      }
      const manifest = JSON.parse(readFileSync(join(store, 'runs', name, 'embed', 'manifest.json'), 'utf8'));
      const vectors = readEmbeddings(join(store, 'runs', name, 'embed', 'train.arrow'));
      cpuVectors ??= vectors.vectors;
      const cosines = rowCosines(vectors.vectors, cpuVectors, vectors.hidden);
      const result: VariantResult = {
        ...variant,
        status: 'ran',
        rows: cosines.length,
        rows_per_second: manifest.timings.rows_per_second,
        stage_seconds: Number(stageSeconds.toFixed(1)),
        cosine_to_cpu: { min: Number(Math.min(...cosines).toFixed(6)), mean: Number((cosines.reduce((a, c) => a + c, 0) / cosines.length).toFixed(6)) },
      };
      if (args['budget-s'] - elapsed() > 30) result.bare_batch_32x128 = await bareLoop(config, args.model, modelInfo);
      results.push(result);
    }
    const torch = args['budget-s'] - elapsed() > 30 ? pytorchReference(modelInfo, threads) : { status: 'skipped', reason: 'time budget' };
    const report = {
      note: 'embed rows/s are the stage as a user runs it (real lengths, length-bucketed batches); the bare loops and PyTorch run batch 32 x 128',
      model: args.model,
      model_shape: modelInfo,
      rows: args.rows,
      threads,
      seconds: Number(elapsed().toFixed(1)),
      machine: { ...machine(), ...gpuMachine() },
      onnxruntime: onnxRuntimeVersion(),
      embed: results,
      pytorch: torch,
    };
    info(`bench-gpu: -> ${writeBenchResults(args.artifacts, 'gpu', report, false)}`);
    for (const r of results) {
      info(
        r.status === 'ran'
          ? `  ${r.provider} ${r.precision}: ${r.rows_per_second} rows/s in the stage, bare 32x128 ${r.bare_batch_32x128?.sequences_per_second ?? '–'} seq/s, cosine to cpu min ${r.cosine_to_cpu!.min}`
          : `  ${r.provider} ${r.precision}: skipped: ${r.reason}`,
      );
    }
    info(`  pytorch: ${JSON.stringify(torch)}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});

/** The stage's own words for why a provider could not run (its "none of ... could open" error). */
function skipReason(stderr: string, error?: Error): string {
  if (error) return `the stage did not finish: ${error.message}`;
  const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
  const provider = lines.find((l) => /provider (unavailable|files are not installed|failed)/.test(l));
  return provider ?? lines.filter((l) => !l.startsWith('at ')).slice(-2).join(' ');
}

/** ONNX Runtime alone at batch 32 x 128 on the variant's provider and precision, opened as the stage opens it. */
async function bareLoop(configPath: string, model: string, modelInfo: ReturnType<typeof readModelInfo>) {
  const { config } = loadConfig(configPath);
  const bert = featurizerOf(config);
  const modelFile = join(resolve(model), 'model.onnx');
  const encoder = await openEncoder(modelFile, sha256(readFileSync(modelFile)), encoderOptions(bert.params(config) as unknown as BertParams, bert.settings(config) as unknown as BertSettings, modelInfo, modelFile));
  const dims: [number, number] = [32, 128];
  const ids = BigInt64Array.from({ length: 32 * 128 }, (_, i) => BigInt(1 + ((i * 7919) % (modelInfo.vocab - 1))));
  const feeds = encoderFeeds(encoder, ids, new BigInt64Array(32 * 128).fill(1n), dims);
  await encoder.open.session.run(feeds, [encoder.output]);
  // Enough loops for a second or more of work, whatever the provider's speed.
  let loops = 0;
  const t0 = performance.now();
  while (loops < 3 || (performance.now() - t0 < 2000 && loops < 50)) {
    await encoder.open.session.run(feeds, [encoder.output]);
    loops++;
  }
  const seconds = (performance.now() - t0) / 1000;
  await encoder.open.session.release();
  return { sequences_per_second: Number(((loops * 32) / seconds).toFixed(2)), gflops_per_second: Number(((loops * bertFlops(modelInfo, 32, 128)) / seconds / 1e9).toFixed(1)) };
}

/** nvidia-smi's GPUs and the Vulkan adapters, as far as this machine has the tools to say. */
function gpuMachine(): Record<string, unknown> {
  const run = (command: string, args: string[]) => {
    const result = spawnSync(command, args, { encoding: 'utf8', timeout: 20_000 });
    return result.status === 0 ? result.stdout.trim() : null;
  };
  const vulkanDirs = ['/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib'];
  const cudaFiles = join('node_modules', 'onnxruntime-node', 'bin', 'napi-v6', process.platform, process.arch, 'libonnxruntime_providers_cuda.so');
  return {
    gpus: run('nvidia-smi', ['--query-gpu=name,driver_version,memory.total', '--format=csv,noheader']) ?? 'nvidia-smi not found or found no GPU',
    vulkan_loader: vulkanDirs.some((d) => existsSync(join(d, 'libvulkan.so.1'))) ? 'libvulkan.so.1 present' : 'no libvulkan.so.1 (apt-get install libvulkan1 for the webgpu provider)',
    vulkan_adapters: run('vulkaninfo', ['--summary'])?.split('\n').filter((l) => /deviceName|driverName/.test(l)).map((l) => l.trim()) ?? 'vulkaninfo not installed',
    onnxruntime_cuda_provider_files: existsSync(cudaFiles) ? 'installed' : 'not installed (make install ORT_INSTALL=cuda12)',
  };
}

/**
 * A PyTorch reference at the same shapes: a 12-layer, 768-wide transformer encoder (64-wide heads)
 * (bert-base's arithmetic, random weights) at batch 32 x 128, on the CPU with the same threads,
 * and on CUDA in fp32 and fp16 when torch sees a GPU.
 */
function pytorchReference(modelInfo: ReturnType<typeof readModelInfo>, threads: number): Record<string, unknown> {
  const python = ['python3', '/usr/bin/python3'].find((p) => spawnSync(p, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0);
  if (!python) return { status: 'skipped', reason: '`python3 -c "import torch"` fails (Debian: apt-get install python3-torch)' };
  const script = `
import json, time, torch
torch.set_num_threads(${threads})
layer = torch.nn.TransformerEncoderLayer(d_model=${modelInfo.hidden}, nhead=${Math.max(1, Math.round(modelInfo.hidden / 64))}, dim_feedforward=${modelInfo.intermediate}, batch_first=True, activation='gelu')
model = torch.nn.TransformerEncoder(layer, num_layers=${modelInfo.layers}, enable_nested_tensor=False).eval()
x = torch.randn(32, 128, ${modelInfo.hidden})
def rate(m, x, sync=lambda: None):
    with torch.inference_mode():
        m(x); sync()
        n, t0 = 0, time.perf_counter()
        while n < 3 or (time.perf_counter() - t0 < 2 and n < 50):
            m(x); n += 1
        sync()
        return round(n * 32 / (time.perf_counter() - t0), 2)
out = {'status': 'ran', 'torch': torch.__version__, 'cpu_fp32_sequences_per_second': rate(model, x)}
if torch.cuda.is_available():
    gpu = model.cuda(); xs = x.cuda()
    out['cuda_device'] = torch.cuda.get_device_name(0)
    out['cuda_fp32_sequences_per_second'] = rate(gpu, xs, torch.cuda.synchronize)
    out['cuda_fp16_sequences_per_second'] = rate(gpu.half(), xs.half(), torch.cuda.synchronize)
else:
    out['cuda'] = 'torch.cuda.is_available() is False'
print(json.dumps(out))
`;
  const result = spawnSync(python, ['-c', script], { encoding: 'utf8', timeout: 180_000 });
  if (result.status !== 0) return { status: 'failed', reason: (result.stderr || result.error?.message || '').trim().split('\n').slice(-1)[0] };
  return JSON.parse(result.stdout.trim().split('\n').pop()!);
}
