import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { UserError } from '../errors.js';

const compiled = new Map<string, WebAssembly.Module>();
// Each file by a literal path, so that the code says what it reads (test/layers.test.ts checks it).
const FILES = {
  'sparse-kernels': new URL('./assembly/sparse-kernels.wasm', import.meta.url),
  'update-rules': new URL('./assembly/update-rules.wasm', import.meta.url),
};

/**
 * A WebAssembly module of `assembly/` (AssemblyScript compiled by `make build` next to this file's
 * JavaScript), compiled once a thread. A tree built by `tsc` alone has none: that says so.
 */
export function assemblyModule(name: keyof typeof FILES): WebAssembly.Module {
  const known = compiled.get(name);
  if (known) return known;
  const path = fileURLToPath(FILES[name]);
  if (!existsSync(path)) throw new UserError(`${path} is missing: the training loops are WebAssembly that make build compiles (npm run build:wasm); run make build`);
  const module = new WebAssembly.Module(readFileSync(path));
  compiled.set(name, module);
  return module;
}
