import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { REPO } from './helpers/workspace.js';
import { STAGES } from '../pipeline/dag.js';

/**
 * The layers of the code, lowest first. A module may import from its own layer or a lower one,
 * never from a higher one: a library does not know the stages, a stage body does not know the
 * runner or the registry, nothing in pipeline/ knows the programs (stages/, scripts/).
 */
const LAYERS: string[][] = [
  ['pipeline/errors', 'pipeline/log', 'pipeline/hash', 'pipeline/random', 'pipeline/cli'],
  ['pipeline/arrow', 'pipeline/parquet', 'pipeline/config', 'pipeline/download', 'pipeline/tokenizer', 'pipeline/metrics', 'pipeline/mlp', 'pipeline/onnx', 'pipeline/testing'],
  ['pipeline/artifacts', 'pipeline/model'],
  ['pipeline/stage-types'],
  STAGES.map((s) => `pipeline/${s.name}`),
  ['pipeline/dag'],
  ['pipeline/runner', 'pipeline/predict', 'pipeline/sweep', 'pipeline/compare', 'pipeline/pin'],
  ['stages', 'scripts'],
];

/** `pipeline/embed/bert.ts` -> `pipeline/embed`; `pipeline/runner.ts` -> `pipeline/runner`; `stages/x.ts` -> `stages`. */
const unitOf = (file: string) => {
  const parts = file.replace(/\.ts$/, '').split('/');
  return parts[0] === 'pipeline' ? parts.slice(0, 2).join('/') : parts[0]!;
};
const layerOf = (unit: string) => LAYERS.findIndex((layer) => layer.includes(unit));

const sources = execFileSync('git', ['ls-files', 'pipeline', 'stages', 'scripts'], { cwd: REPO, encoding: 'utf8' })
  .split('\n')
  .filter((f) => f.endsWith('.ts'));
const imports = sources.flatMap((file) =>
  [...readFileSync(join(REPO, file), 'utf8').matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*)['"](\.{1,2}\/[^'"]+)['"]/g)].map((m) => ({
    file,
    target: normalize(join(dirname(file), m[1]!)).replace(/\.js$/, '.ts'),
  })),
);

test('every module belongs to a layer, and no import reaches a higher layer', () => {
  assert.ok(imports.length > 100, 'the imports were found');
  for (const file of sources) assert.notEqual(layerOf(unitOf(file)), -1, `${file} belongs to a layer (add its folder to LAYERS)`);
  const upward = imports.filter(({ file, target }) => layerOf(unitOf(target)) > layerOf(unitOf(file)));
  assert.deepEqual(upward.map(({ file, target }) => `${file} -> ${target}`), []);
});

test('no two folders import each other, directly or through others', () => {
  const edges = new Map<string, Set<string>>();
  for (const { file, target } of imports) {
    const [from, to] = [unitOf(file), unitOf(target)];
    if (from !== to) edges.set(from, (edges.get(from) ?? new Set()).add(to));
  }
  const reaches = (from: string, to: string, seen = new Set<string>()): boolean =>
    [...(edges.get(from) ?? [])].some((next) => next === to || (!seen.has(next) && (seen.add(next), reaches(next, to, seen))));
  const cycles = [...edges].flatMap(([from, targets]) => [...targets].filter((to) => reaches(to, from)).map((to) => `${from} <-> ${to}`));
  assert.deepEqual(cycles, []);
});

test('each stage is a program stages/<name>.ts and a body pipeline/<name>/<name>.ts, and STAGES loads its build', async () => {
  for (const stage of STAGES) {
    assert.ok(existsSync(join(REPO, 'stages', `${stage.name}.ts`)), `stages/${stage.name}.ts`);
    assert.ok(existsSync(join(REPO, 'pipeline', stage.name, `${stage.name}.ts`)), `pipeline/${stage.name}/${stage.name}.ts`);
    assert.equal(typeof (await stage.build()), 'function', `${stage.name}'s build loads`);
  }
});
