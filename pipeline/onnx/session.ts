import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, arch, platform } from 'node:os';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { UserError } from '../errors.js';
import { info } from '../log.js';

export type Provider = 'cuda' | 'cpu';

export interface OpenSession {
  session: ort.InferenceSession;
  /** The execution provider that loaded. */
  provider: Provider;
  threads: number;
}

/**
 * Opens an ONNX Runtime session with the first execution provider in `providers` that loads,
 * and says which one that was and why the ones before it did not.
 */
export async function openSession(modelPath: string, providers: readonly Provider[], threads: 'auto' | number): Promise<OpenSession> {
  const intraOpNumThreads = threads === 'auto' ? availableParallelism() : threads;
  const failures: string[] = [];
  for (const provider of providers) {
    if (provider === 'cuda' && !cudaProviderInstalled()) {
      failures.push('cuda provider files are not installed (the default install skips them); on a CUDA 12 host: `make install ORT_INSTALL=cuda12`');
      continue;
    }
    try {
      const session = await ort.InferenceSession.create(modelPath, {
        executionProviders: [provider],
        intraOpNumThreads,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
        executionMode: 'sequential',
        // A provider that fails to load is an expected outcome here, not an error to print in red.
        logSeverityLevel: provider === providers[providers.length - 1] ? 2 : 4,
      });
      for (const failure of failures) info(`embed: ${failure}`);
      info(`embed: ONNX Runtime ${ort.env.versions.common} on ${provider}${provider === 'cpu' ? ` with ${intraOpNumThreads} threads` : ''}`);
      return { session, provider, threads: intraOpNumThreads };
    } catch (error) {
      const message = (error as Error).message.split('\n')[0]!;
      failures.push(
        provider === 'cuda'
          ? `cuda provider unavailable (${message}); on a CUDA 12 host install with \`make install ORT_INSTALL=cuda12\``
          : `${provider} provider failed: ${message}`,
      );
    }
  }
  throw new UserError(`embed.providers: none of ${providers.join(', ')} could open ${modelPath}:\n  ${failures.join('\n  ')}`);
}

/**
 * onnxruntime-node ships CPU binaries only; its install script adds the CUDA provider library
 * beside them when asked (ONNXRUNTIME_NODE_INSTALL=cuda12). Without it, asking for CUDA would
 * only print ONNX Runtime's own load error.
 */
function cudaProviderInstalled(): boolean {
  const packageDir = dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'));
  return existsSync(join(packageDir, 'bin', 'napi-v6', platform(), arch(), 'libonnxruntime_providers_cuda.so'));
}

export function onnxRuntimeVersion(): string {
  return ort.env.versions.common ?? 'unknown';
}

export { ort };
