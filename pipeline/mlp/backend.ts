import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { UserError } from '../errors.js';
import { detail } from '../log.js';

/** train.backend; `onnxruntime` trains through ONNX Runtime (train/trainers.ts) and leaves TF.js (the model, scoring) on `auto`. */
export type BackendSetting = 'auto' | 'onnxruntime' | 'tensorflow' | 'wasm' | 'cpu';

/**
 * Picks the TF.js backend. `auto` takes native TensorFlow (tfjs-node-gpu, then tfjs-node) when
 * one is installed and loads, else WebAssembly, else plain JavaScript. The native packages are
 * optional: their install downloads libtensorflow, which needs network this project may not have.
 */
export async function selectBackend(requested: BackendSetting, stage = 'train'): Promise<string> {
  const setting = requested === 'onnxruntime' ? 'auto' : requested;
  const tried: string[] = [];
  if (setting === 'auto' || setting === 'tensorflow') {
    for (const pkg of ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node']) {
      try {
        await import(pkg);
        if (await tf.setBackend('tensorflow')) return announce(stage, 'tensorflow', pkg);
      } catch (error) {
        tried.push(`${pkg}: ${(error as Error).message.split('\n')[0]}`);
      }
    }
    if (setting === 'tensorflow') throw new UserError(`train.backend: tensorflow needs @tensorflow/tfjs-node or -gpu installed and loadable:\n  ${tried.join('\n  ')}`);
  }
  if (setting === 'auto' || setting === 'wasm') {
    try {
      const wasm = await import('@tensorflow/tfjs-backend-wasm');
      // In Node the .wasm binaries are read from the package folder, not fetched.
      wasm.setWasmPaths(join(dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + '/');
      if (await tf.setBackend('wasm')) {
        transposeBeforeMatMul('wasm');
        return announce(stage, 'wasm', '@tensorflow/tfjs-backend-wasm');
      }
    } catch (error) {
      if (setting === 'wasm') throw new UserError(`train.backend: wasm could not start: ${(error as Error).message}`);
      tried.push(`wasm: ${(error as Error).message}`);
    }
  }
  await tf.setBackend('cpu');
  return announce(stage, 'cpu', '@tensorflow/tfjs (pure JavaScript)');
}

/**
 * The wasm backend multiplies a transposed operand 10 to 20 times slower than a plain one
 * (64x512 by 64x256 with transposeA: 11 ms against 0.5 ms), and backpropagation through a dense
 * layer asks for exactly that. Transposing the operand first, then multiplying, makes training
 * several times faster; the products are the same up to float summation order.
 */
function transposeBeforeMatMul(backendName: string): void {
  const original = tf.getKernel('BatchMatMul', backendName);
  const transpose = tf.getKernel('Transpose', backendName);
  if (!original || !transpose || (original as { patched?: boolean }).patched) return;
  const swapLastTwo = (rank: number) => [...Array.from({ length: rank - 2 }, (_, i) => i), rank - 1, rank - 2];
  const kernelFunc: tf.KernelFunc = ({ inputs, backend, attrs }) => {
    const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
    if (!transposeA && !transposeB) return original.kernelFunc({ inputs, backend, attrs });
    const flip = (x: tf.TensorInfo) => transpose.kernelFunc({ inputs: { x }, backend, attrs: { perm: swapLastTwo(x.shape.length) } }) as tf.TensorInfo;
    const a = transposeA ? flip(inputs.a!) : inputs.a!;
    const b = transposeB ? flip(inputs.b!) : inputs.b!;
    const out = original.kernelFunc({ inputs: { a, b }, backend, attrs: { ...attrs, transposeA: false, transposeB: false } });
    for (const t of [transposeA && a, transposeB && b]) if (t) (backend as tf.KernelBackend).disposeData(t.dataId);
    return out;
  };
  tf.unregisterKernel('BatchMatMul', backendName);
  tf.registerKernel({ ...original, kernelFunc, patched: true } as tf.KernelConfig);
}

async function announce(stage: string, name: string, from: string): Promise<string> {
  await tf.ready();
  detail(`${stage}: TensorFlow.js ${tf.version.tfjs} on the ${name} backend (${from})`);
  return name;
}

export { tf };
