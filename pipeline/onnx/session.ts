import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, arch, platform } from 'node:os';
import { dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { UserError } from '../errors.js';
import { detail, info, logLevel } from '../log.js';

export type Provider = 'cuda' | 'webgpu' | 'cpu';

export interface OpenSession {
  session: ort.InferenceSession;
  /** The execution provider that loaded. */
  provider: Provider;
  threads: number;
  /** Why each provider before it did not load (for the log and the manifest). */
  fallbacks: string[];
}

/** Provider options that change speed, not results (embed.webgpu). */
export interface ProviderOptions {
  webgpu?: { storage_buffer_cache_mode: 'bucket' | 'simple' | 'lazyRelease' | 'disabled'; validation_mode: 'basic' | 'wgpuOnly' | 'full' | 'disabled' };
}

/**
 * Opens an ONNX Runtime session with the first execution provider in `providers` that loads,
 * and says which one that was and why the ones before it did not.
 */
export async function openSession(modelPath: string, providers: readonly Provider[], threads: 'auto' | number, options: ProviderOptions = {}): Promise<OpenSession> {
  const intraOpNumThreads = threads === 'auto' ? availableParallelism() : threads;
  const failures: string[] = [];
  for (const provider of providers) {
    if (provider === 'cuda' && !cudaProviderInstalled()) {
      failures.push('cuda provider files are not installed (the default install skips them); on a CUDA 12 host: `make install ORT_INSTALL=cuda12`');
      continue;
    }
    // Without a Vulkan loader Dawn finds no adapter anyway, and says so on stderr in its own words.
    if (provider === 'webgpu' && platform() === 'linux' && !vulkanLoaderPresent()) {
      failures.push('webgpu provider unavailable (no Vulkan loader, libvulkan.so.1, on this machine); it needs a GPU whose driver provides Vulkan (check with `vulkaninfo --summary`)');
      continue;
    }
    try {
      const session = await ort.InferenceSession.create(modelPath, {
        executionProviders: [providerOption(provider, options)],
        intraOpNumThreads,
        interOpNumThreads: 1,
        graphOptimizationLevel: 'all',
        executionMode: 'sequential',
        // A provider that fails to load is an expected outcome here, not an error to print in red.
        logSeverityLevel: provider === providers[providers.length - 1] ? 2 : 4,
      });
      // One line at the normal level; why each provider before it was passed over is detail (and in the manifest).
      for (const failure of failures) detail(`embed: ${failure}`);
      const passedOver = failures.length ? ` (${providers.slice(0, providers.indexOf(provider)).join(', ')} unavailable here${logLevel() === 'verbose' ? '' : '; --verbose says why'})` : '';
      info(`embed: ONNX Runtime ${ort.env.versions.common} on ${provider}${provider === 'cpu' ? ` with ${intraOpNumThreads} threads` : ''}${passedOver}`);
      return { session, provider, threads: intraOpNumThreads, fallbacks: failures };
    } catch (error) {
      const message = (error as Error).message.split('\n')[0]!;
      // No provider can run a file that does not parse: that is the file, not the provider.
      if (/Protobuf parsing failed|failed:.*(invalid|corrupt|ModelProto)/i.test(message)) {
        throw new UserError(`${modelPath}: the model file is damaged or not an ONNX model (ONNX Runtime: ${message.replace(/^.*failed:\s*/, '')}); get it again: a local folder from where it came (or \`make model-demo\` for the demo model), a hub file by removing it from $PIPELINE_CACHE/downloads so the next run downloads it`);
      }
      failures.push(
        provider === 'cuda'
          ? `cuda provider unavailable (${message}); on a CUDA 12 host install with \`make install ORT_INSTALL=cuda12\``
          : provider === 'webgpu'
            ? `webgpu provider unavailable (${webgpuReason(message)}); it needs a GPU whose driver provides Vulkan (check with \`vulkaninfo --summary\`)`
            : `${provider} provider failed: ${message}`,
      );
    }
  }
  throw new UserError(`embed.providers: none of ${providers.join(', ')} could open ${modelPath}:\n  ${failures.join('\n  ')}`);
}

/** Whether the Vulkan loader that Dawn opens is where the dynamic linker looks. */
function vulkanLoaderPresent(): boolean {
  const dirs = [...(process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean), '/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/lib/x86_64-linux-gnu', '/usr/lib64', '/usr/lib', '/usr/local/lib'];
  return dirs.some((dir) => existsSync(join(dir, 'libvulkan.so.1')));
}

function providerOption(provider: Provider, options: ProviderOptions): ort.InferenceSession.ExecutionProviderConfig {
  if (provider !== 'webgpu' || !options.webgpu) return provider;
  return { name: 'webgpu', storageBufferCacheMode: options.webgpu.storage_buffer_cache_mode, validationMode: options.webgpu.validation_mode };
}

/** Dawn's message without the source location ONNX Runtime puts in front of it. */
function webgpuReason(message: string): string {
  const adapter = /Failed to get a WebGPU adapter: [^\n]*/.exec(message);
  return adapter ? adapter[0] : message;
}

/**
 * onnxruntime-node ships CPU binaries and the WebGPU provider (Dawn, over Vulkan on Linux); its
 * install script adds the CUDA provider library
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
