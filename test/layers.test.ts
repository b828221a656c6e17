import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO } from './helpers/workspace.js';
import { checkLayers, importsOf } from './helpers/layers.js';
import { STAGES } from '../pipeline/dag.js';
import { loadConfig } from '../pipeline/config/index.js';

const STAGE_NAMES = STAGES.map((s) => s.name);

test('the code keeps its layers: no upward import, no folders importing each other, stages read each other only through contracts', () => {
  assert.deepEqual(checkLayers(REPO, STAGE_NAMES), []);
});

test('imports are read from the AST: side-effect imports, type-only imports, re-exports, dynamic and worker URLs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'layers-'));
  writeFileSync(
    join(dir, 'probe.ts'),
    [
      "import '../x/side.js';",
      "import type { T } from '../x/types.js';",
      "export { y } from '../x/again.js';",
      'const a = await import(`../x/template.js`);',
      "const w = new URL('../x/worker.js', import.meta.url);",
      "// import '../x/commented.js';",
      "const s = \"import '../x/in-a-string.js'\";",
    ].join('\n'),
  );
  const { edges } = importsOf(dir, 'probe.ts');
  assert.deepEqual(
    edges.map((e) => [e.target, e.kind]),
    [
      ['../x/side.ts', 'side-effect'],
      ['../x/types.ts', 'type'],
      ['../x/again.ts', 're-export'],
      ['../x/template.ts', 'dynamic'],
      ['../x/worker.ts', 'url'],
    ],
  );
});

/** The repository's sources in a temporary folder with `line` added to `file`: what the check says of it. */
function planted(file: string, line: string, at: 'end' | 'start' = 'start'): string[] {
  const root = mkdtempSync(join(tmpdir(), 'layers-planted-'));
  for (const dir of ['pipeline', 'stages', 'scripts']) cpSync(join(REPO, dir), join(root, dir), { recursive: true });
  const path = join(root, file);
  assert.ok(existsSync(path), file);
  if (at === 'end') appendFileSync(path, `\n${line}\n`);
  else writeFileSync(path, `${line}\n${readFileSync(path, 'utf8')}`);
  return checkLayers(root, STAGE_NAMES);
}

test('the check fails on each planted violation', () => {
  const cases: [string, string, RegExp, 'start' | 'end'][] = [
    // A library that imports the registry for its side effects.
    ['pipeline/metrics/index.ts', "import '../dag.js';", /pipeline\/metrics\/index\.ts -> pipeline\/dag\.ts \(side-effect\): reaches a higher layer/, 'start'],
    // A dynamic import with a template string that names a higher layer.
    ['pipeline/mlp/model.ts', 'export const later = () => import(`../runner.js`);', /pipeline\/mlp\/model\.ts -> pipeline\/runner\.ts \(dynamic\): reaches a higher layer/, 'end'],
    // A template string whose module is computed.
    ['pipeline/train/train.ts', "export const body = (name: string) => import(`../${name}/${name}.js`);", /pipeline\/train\/train\.ts: import\(\) of a computed module/, 'end'],
    // A stage body that imports another stage's body, not its contract.
    ['pipeline/embed/bert.ts', "import { tokenize } from '../tokenize/tokenize.js';", /pipeline\/embed\/bert\.ts -> pipeline\/tokenize\/tokenize\.ts \(static\): a stage reads another stage only through its contract/, 'start'],
    // Even for a type.
    ['pipeline/train/train.ts', "import type { TokenizeRun } from '../tokenize/signature.js';", /pipeline\/train\/train\.ts -> pipeline\/tokenize\/signature\.ts \(type\): a stage reads another stage only through its contract/, 'start'],
    // A contract of a stage that comes later.
    ['pipeline/train/train.ts', "import { METRICS } from '../evaluate/artifact.js';", /evaluate comes after train/, 'start'],
    // A library that knows where the programs are.
    ['pipeline/sweep/run.ts', "export const program = (stage: string) => new URL(`../../stages/${stage}.js`, import.meta.url);", /pipeline\/sweep\/run\.ts: names a program/, 'end'],
  ];
  for (const [file, line, expected, at] of cases) {
    const problems = planted(file, line, at);
    assert.ok(problems.some((p) => expected.test(p)), `${line} in ${file}: ${JSON.stringify(problems)}`);
  }
  // Two folders that import each other.
  const cycle = (() => {
    const root = mkdtempSync(join(tmpdir(), 'layers-cycle-'));
    for (const dir of ['pipeline', 'stages', 'scripts']) cpSync(join(REPO, dir), join(root, dir), { recursive: true });
    appendFileSync(join(root, 'pipeline/arrow/index.ts'), "\nimport '../parquet/index.js';\n");
    appendFileSync(join(root, 'pipeline/parquet/index.ts'), "\nimport '../arrow/index.js';\n");
    return checkLayers(root, STAGE_NAMES);
  })();
  assert.ok(cycle.some((p) => /pipeline\/arrow <-> pipeline\/parquet: the folders import each other/.test(p)), JSON.stringify(cycle));
});

test('each stage is a program stages/<name>.ts, a signature and a body in pipeline/<name>/, and STAGES loads its build', async () => {
  const { config } = loadConfig(join(REPO, 'configs', 'default.yaml'));
  for (const stage of STAGES) {
    assert.ok(existsSync(join(REPO, 'stages', `${stage.name}.ts`)), `stages/${stage.name}.ts`);
    assert.ok(existsSync(join(REPO, 'pipeline', stage.name, `${stage.name}.ts`)), `pipeline/${stage.name}/${stage.name}.ts`);
    assert.ok(existsSync(join(REPO, 'pipeline', stage.name, 'signature.ts')), `pipeline/${stage.name}/signature.ts`);
    assert.ok(existsSync(join(REPO, 'pipeline', stage.name, 'artifact.ts')), `pipeline/${stage.name}/artifact.ts`);
    assert.equal(typeof (await stage.build(config)), 'function', `${stage.name}'s build loads`);
    for (const entry of stage.code(config)) {
      const [module, name] = entry.split('#');
      assert.ok(name && typeof (await import(join(REPO, 'dist', module!)))[name] === 'function', `${stage.name}'s code entry ${entry} is an exported function`);
    }
  }
});
