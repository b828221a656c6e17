/**
 * bench-train: the train stage's training loop against PyTorch on CPU, side by side in one run,
 * at the same shape, batch, optimizer (Adam, lr 1e-3), dropout and epochs
 * (`make bench-train`, written to artifacts/bench/train.json):
 *
 *   (a) the default net, 768 -> 512 -> 256 -> 27 at batch 64, on --rows random dense rows;
 *   (b) TF-IDF, 8,192 -> 512 -> 27 at batch 32, on the real sample's vectors (configs/
 *       imdb-sample-tfidf.yaml's ingest and embed, built in a scratch store): the pipeline on
 *       sparse rows and on the same rows dense, PyTorch on dense rows.
 *
 * `pipeline` is the train stage as configured (train.backend auto: ONNX Runtime), `pipeline_tfjs`
 * the same loop on TF.js's wasm backend (train.backend: wasm). Each figure is whole epochs
 * (shuffle, every step, the validation pass) after one warm-up epoch. The final validation loss
 * of each run is reported beside a dense run of the same seed (the pipeline's sparse path must
 * match its dense one). PyTorch is Debian's python3-torch
 * (`apt-get install python3-torch`; its speed depends on the BLAS behind it: with
 * libopenblas0-pthread it is several times faster than with the reference BLAS); when no python
 * with torch is found the bench says so and reports the pipeline alone. Also: ONNX Runtime's
 * training graph alone on one batch (ms and GFLOP/s), and a per-kernel profile of one training
 * step of each net on the TF.js backend, with GFLOP/s for the matmuls.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { machine, runStageProgram, writeBenchResults } from './bench-data.js';
import { runMain } from '../../pipeline/errors.js';
import { parseArgs } from '../../pipeline/cli.js';
import { info } from '../../pipeline/log.js';
import { loadConfig } from '../../pipeline/config/index.js';
import { selectBackend, tf } from '../../pipeline/mlp/backend.js';
import { buildModel } from '../../pipeline/mlp/model.js';
import { denseSlice, isSparse, type FeatureRows } from '../../pipeline/mlp/rows.js';
import { Rng } from '../../pipeline/random.js';
import { featuresBySplit, vectorsView } from '../../pipeline/embed/artifact.js';
import { genresView, splitsView } from '../../pipeline/ingest/artifact.js';
import { fitClassifier, seedMathRandom, type Engine, type TrainingData, type TrainParams } from '../../pipeline/train/train.js';
import { maskName, openNetSession, ort, trainingGraph, weightName, type NetSpec } from '../../pipeline/mlp/onnx-net.js';

interface Shape {
  name: string;
  data: TrainingData;
  train: TrainParams;
}

runMain(async () => {
  const args = await parseArgs('bench-train', 'The train loop against PyTorch, side by side.', (y) =>
    y
      .option('rows', { type: 'number', default: 20_000 })
      .option('epochs', { type: 'number', default: 3 })
      .option('tfidf-config', { type: 'string', default: 'configs/imdb-sample-tfidf.yaml' }),
  );
  const backend = await selectBackend('auto');
  const python = findTorch();
  const work = mkdtempSync(join(tmpdir(), 'bench-train-'));
  const shapes = [defaultShape(args.rows, args.epochs), await tfidfShape(args['tfidf-config'], work, args.epochs + 2)];
  const results: Record<string, unknown> = { backend, tfjs: tf.version.tfjs, torch: python ? python.version : null };
  for (const shape of shapes) {
    info(`bench-train: ${shape.name} …`);
    const runs: Record<string, Figures> = {};
    runs.pipeline = await pipelineRun(shape.data, shape.train, 'onnxruntime');
    runs.pipeline_tfjs = await pipelineRun(shape.data, shape.train, backend);
    if (isSparse(shape.data.train.x)) runs.pipeline_dense_rows = await pipelineRun(densified(shape.data), shape.train, 'onnxruntime');
    if (python) runs.pytorch = torchRun(python.path, shape, work);
    const dense = runs.pipeline_dense_rows ?? runs.pipeline;
    results[shape.name] = {
      layers: [shape.data.dim, ...shape.train.layers.map((l) => l.units), shape.data.labels.length],
      batch_size: shape.train.batch_size,
      epochs: shape.train.epochs,
      train_rows: shape.data.train.y.length,
      ...runs,
      pipeline_over_pytorch: runs.pytorch ? round(runs.pipeline.rows_per_second / runs.pytorch.rows_per_second) : 'pytorch not found',
      pipeline_tfjs_over_pytorch: runs.pytorch ? round(runs.pipeline_tfjs.rows_per_second / runs.pytorch.rows_per_second) : 'pytorch not found',
      // Relative differences of the final validation loss. For the default net the pipeline's run
      // is itself the dense one, so the engines are compared too: TF.js (the same seed and loop)
      // and PyTorch (its own initialization and shuffling).
      pipeline_val_loss_vs_dense_run: round(runs.pipeline.final_val_loss / dense!.final_val_loss - 1, 6),
      pipeline_val_loss_vs_tfjs: round(runs.pipeline.final_val_loss / runs.pipeline_tfjs.final_val_loss - 1, 6),
      pipeline_val_loss_vs_pytorch: runs.pytorch ? round(runs.pipeline.final_val_loss / runs.pytorch.final_val_loss - 1, 6) : 'pytorch not found',
      onnxruntime_step: await onnxStep(shape),
      tfjs_profile: await profileStep(shape),
    };
  }
  if (!python) results.pytorch_note = 'no python3 with torch found (Debian: apt-get install python3-torch libopenblas0-pthread); only the pipeline was measured';
  results.machine = machine();
  writeBenchResults('artifacts', 'train', results);
  for (const shape of shapes) {
    const r = results[shape.name] as Record<string, Figures | number | string>;
    const line = Object.entries(r)
      .filter(([, v]) => typeof v === 'object' && v && 'rows_per_second' in v)
      .map(([k, v]) => `${k} ${Math.round((v as Figures).rows_per_second)} rows/s`)
      .join(', ');
    info(`bench-train: ${shape.name}: ${line}; pipeline/pytorch ${r.pipeline_over_pytorch} (TF.js alone: ${r.pipeline_tfjs_over_pytorch})`);
  }
});

interface Figures {
  rows_per_second: number;
  seconds_per_epoch: number;
  final_val_loss: number;
}

/** The default net on random rows whose label depends on them (so the loss means something). */
function defaultShape(rows: number, epochs: number): Shape {
  const { config } = loadConfig('configs/default.yaml', []);
  const dim = 768;
  const labels = 27;
  const rng = new Rng(1, 'bench-train');
  const x = Float32Array.from({ length: rows * dim }, () => rng.next() * 2 - 1);
  const y = Int32Array.from({ length: rows }, (_, r) => Math.abs(Math.floor((x[r * dim]! + x[r * dim + 1]!) * 13.5)) % labels);
  const validation = Math.round(rows / 10);
  const train = { ...config.train, epochs, early_stopping: null } as TrainParams;
  return {
    name: 'default_768',
    train,
    data: { dim, labels: Array.from({ length: labels }, (_, i) => `g${i}`), stats: null, train: { x: x.subarray(validation * dim), y: y.subarray(validation) }, validation: { x: x.subarray(0, validation * dim), y: y.subarray(0, validation) } },
  };
}

/** The real sample's TF-IDF rows with the TF-IDF config's classifier, its early stopping off. */
async function tfidfShape(configPath: string, work: string, epochs: number): Promise<Shape> {
  const artifacts = join(work, 'artifacts');
  for (const stage of ['ingest', 'embed']) runStageProgram(stage, ['--config', configPath, '--artifacts', artifacts], { ...process.env, CI: '1' });
  const { config } = loadConfig(configPath, []);
  const run = join(artifacts, 'runs', config.run);
  const features = featuresBySplit(await vectorsView.open(join(run, 'embed'), undefined as never), await splitsView.open(join(run, 'ingest'), undefined as never), await genresView.open(join(run, 'ingest'), undefined as never));
  const train = { ...config.train, epochs, early_stopping: null } as TrainParams;
  const { dim, labels, splits } = features;
  return { name: 'tfidf_8192', train, data: { dim, labels, stats: null, train: { x: splits.train!.x, y: splits.train!.y }, validation: { x: splits.validation!.x, y: splits.validation!.y } } };
}

function densified(data: TrainingData): TrainingData {
  const dense = (x: FeatureRows, n: number) => denseSlice(x, data.dim, 0, n);
  return { ...data, train: { x: dense(data.train.x, data.train.y.length), y: data.train.y }, validation: data.validation && { x: dense(data.validation.x, data.validation.y.length), y: data.validation.y } };
}

/** The pipeline's own loop (train.ts) on `engine`, epochs after the first timed. */
async function pipelineRun(data: TrainingData, train: TrainParams, engine: Engine): Promise<Figures> {
  seedMathRandom(7);
  const { history, model } = await fitClassifier(data, train, 7, engine);
  model.dispose();
  const timed = history.slice(1);
  const seconds = timed.reduce((a, h) => a + h.seconds, 0) / timed.length;
  return { rows_per_second: round(data.train.y.length / seconds), seconds_per_epoch: round(seconds), final_val_loss: round(history.at(-1)!.val_loss!, 6) };
}

/** A python3 that imports torch: Debian's first (/usr/bin), then the PATH's. */
function findTorch(): { path: string; version: string } | undefined {
  for (const path of ['/usr/bin/python3', 'python3']) {
    const probe = spawnSync(path, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
    if (probe.status === 0) return { path, version: probe.stdout.trim() };
  }
  return undefined;
}

/** The same net, data, batch, optimizer and epochs in PyTorch on 2 threads, dense input. */
function torchRun(python: string, shape: Shape, work: string): Figures {
  const { data, train } = shape;
  const write = (name: string, x: FeatureRows, y: Int32Array) => {
    writeFileSync(join(work, `${name}.x`), denseSlice(x, data.dim, 0, y.length));
    writeFileSync(join(work, `${name}.y`), y);
  };
  write('train', data.train.x, data.train.y);
  write('val', data.validation!.x, data.validation!.y);
  const spec = { dim: data.dim, labels: data.labels.length, layers: train.layers, batch: train.batch_size, epochs: train.epochs, lr: train.optimizer.lr, dir: work };
  const script = `
import json, time, sys, numpy as np, torch
torch.set_num_threads(${machine().cores}); torch.manual_seed(7)
s = json.loads(sys.argv[1])
load = lambda n: (torch.from_numpy(np.fromfile(s['dir'] + '/' + n + '.x', dtype=np.float32).reshape(-1, s['dim'])), torch.from_numpy(np.fromfile(s['dir'] + '/' + n + '.y', dtype=np.int32).astype(np.int64)))
(x, y), (vx, vy) = load('train'), load('val')
mods, width = [], s['dim']
for l in s['layers']:
    lin = torch.nn.Linear(width, l['units']); torch.nn.init.xavier_uniform_(lin.weight); torch.nn.init.zeros_(lin.bias)
    mods += [lin, torch.nn.ReLU()] + ([torch.nn.Dropout(l['dropout'])] if l['dropout'] > 0 else []); width = l['units']
out = torch.nn.Linear(width, s['labels']); torch.nn.init.xavier_uniform_(out.weight); torch.nn.init.zeros_(out.bias)
net = torch.nn.Sequential(*mods, out)
opt = torch.optim.Adam(net.parameters(), lr=s['lr'], eps=1e-7)
seconds, val = [], None
for epoch in range(s['epochs']):
    t = time.perf_counter(); net.train()
    perm = torch.randperm(len(y))
    for i in range(0, len(y), s['batch']):
        b = perm[i:i + s['batch']]
        opt.zero_grad(); loss = torch.nn.functional.cross_entropy(net(x[b]), y[b]); loss.backward(); opt.step()
    net.eval()
    with torch.no_grad(): val = torch.nn.functional.cross_entropy(net(vx), vy).item()
    seconds.append(time.perf_counter() - t)
print(json.dumps({'seconds': seconds, 'val_loss': val}))
`;
  const result = spawnSync(python, ['-c', script, JSON.stringify(spec)], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (result.status !== 0) throw new Error(`bench-train: PyTorch failed: ${result.stderr.trim().split('\n').slice(-3).join(' ')}`);
  const { seconds, val_loss } = JSON.parse(result.stdout) as { seconds: number[]; val_loss: number };
  const timed = seconds.slice(1);
  const perEpoch = timed.reduce((a, b) => a + b, 0) / timed.length;
  return { rows_per_second: round(data.train.y.length / perEpoch), seconds_per_epoch: round(perEpoch), final_val_loss: round(val_loss, 6) };
}

/**
 * ONNX Runtime's training graph alone (forward, loss, backward; no optimizer) on one batch of the
 * shape's dense net, as the dense trainer runs it: milliseconds a run and GFLOP/s of its matmuls
 * (2 x batch x weights for the forward pass, twice that backward).
 */
async function onnxStep(shape: Shape): Promise<{ ms: number; gflops_per_second: number }> {
  const { data, train } = shape;
  const batch = train.batch_size;
  const spec: NetSpec = { inputWidth: data.dim, labels: data.labels.length, layers: train.layers, firstOutside: false };
  const session = await openNetSession(trainingGraph(spec));
  const widths = [data.dim, ...train.layers.map((l) => l.units), data.labels.length];
  const rng = new Rng(3, 'bench-onnx-step');
  const random = (n: number, scale: number) => Float32Array.from({ length: n }, () => (rng.next() - 0.5) * scale);
  const feeds: Record<string, ort.Tensor> = {
    x: new ort.Tensor('float32', denseSlice(data.train.x, data.dim, 0, batch).slice(), [batch, data.dim]),
    target: new ort.Tensor('float32', new Float32Array(batch * data.labels.length).fill(1 / data.labels.length / batch), [batch, data.labels.length]),
  };
  let weights = 0;
  for (let i = 0; i + 1 < widths.length; i++) {
    feeds[weightName(i, 'kernel')] = new ort.Tensor('float32', random(widths[i]! * widths[i + 1]!, 0.1), [widths[i]!, widths[i + 1]!]);
    feeds[weightName(i, 'bias')] = new ort.Tensor('float32', new Float32Array(widths[i + 1]!), [widths[i + 1]!]);
    if (train.layers[i] && train.layers[i]!.dropout > 0) feeds[maskName(i)] = new ort.Tensor('float32', new Float32Array(batch * widths[i + 1]!).fill(1), [batch, widths[i + 1]!]);
    weights += widths[i]! * widths[i + 1]!;
  }
  for (let i = 0; i < 10; i++) await session.run(feeds);
  const runs = 100;
  const started = performance.now();
  for (let i = 0; i < runs; i++) await session.run(feeds);
  const ms = (performance.now() - started) / runs;
  await session.release();
  return { ms: round(ms), gflops_per_second: round((3 * 2 * batch * weights) / (ms / 1000) / 1e9) };
}

/** TF.js kernels of one dense training step of the net (time per kernel, GFLOP/s of the matmuls). */
async function profileStep(shape: Shape): Promise<{ kernel: string; ms: number; gflops_per_second?: number }[]> {
  const { data, train } = shape;
  const model = buildModel(data.dim, data.labels.length, train, 1);
  const optimizer = tf.train.adam(train.optimizer.lr);
  const x = tf.tensor2d(denseSlice(data.train.x, data.dim, 0, train.batch_size), [train.batch_size, data.dim]);
  const y = tf.oneHot(tf.tensor1d(data.train.y.subarray(0, train.batch_size), 'int32'), data.labels.length);
  const step = () => {
    optimizer.minimize(() => tf.metrics.categoricalCrossentropy(y, model.apply(x, { training: true }) as tf.Tensor).mean() as tf.Scalar, false);
  };
  step();
  const profile = await tf.profile(step);
  const byKernel = new Map<string, { ms: number; flops: number }>();
  for (const k of profile.kernels) {
    const entry = byKernel.get(k.name) ?? { ms: 0, flops: 0 };
    entry.ms += k.kernelTimeMs as number;
    if (/MatMul/.test(k.name) && k.inputShapes.length >= 2) {
      const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
      const [a, b] = k.inputShapes as number[][];
      const out = size(k.outputShapes[0] as number[]);
      entry.flops += 2 * out * Math.sqrt((size(a!) * size(b!)) / out);
    }
    byKernel.set(k.name, entry);
  }
  tf.dispose([x, y]);
  model.dispose();
  return [...byKernel.entries()]
    .sort((p, q) => q[1].ms - p[1].ms)
    .slice(0, 8)
    .map(([kernel, e]) => ({ kernel, ms: round(e.ms), ...(e.flops ? { gflops_per_second: round(e.flops / (e.ms / 1000) / 1e9) } : {}) }));
}

function round(x: number, digits = 3): number {
  return Number(x.toFixed(digits));
}

