import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../pipeline/config/index.js';
import { UserError } from '../pipeline/errors.js';

function writeConfigs(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'config-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

const minimal = 'ingest:\n  source: data\n';

test('defaults fill every optional field and the run is named after the file', () => {
  const dir = writeConfigs({ 'small.yaml': minimal });
  const { config } = loadConfig(join(dir, 'small.yaml'));
  assert.equal(config.run, 'small');
  assert.equal(config.seed, 42);
  assert.equal(config.ingest.validation_fraction, 0.1);
  assert.equal(config.ingest.max_reject_fraction, 0.01);
  assert.equal(config.ingest.files.train, 'train_data.txt');
});

test('an unknown key is an error naming its path', () => {
  const dir = writeConfigs({ 'c.yaml': `${minimal}  bogus: 1\n` });
  assert.throws(() => loadConfig(join(dir, 'c.yaml')), (e: Error) => e instanceof UserError && /ingest\.bogus: unknown key/.test(e.message));
});

test('a wrong type names the field and the value it got', () => {
  const dir = writeConfigs({ 'c.yaml': `${minimal}  validation_fraction: big\n` });
  assert.throws(() => loadConfig(join(dir, 'c.yaml')), /c\.yaml: ingest\.validation_fraction: expected number, got "big"/);
});

test('a value out of range names the field', () => {
  const dir = writeConfigs({ 'c.yaml': `${minimal}  max_reject_fraction: 1.5\n` });
  assert.throws(() => loadConfig(join(dir, 'c.yaml')), /ingest\.max_reject_fraction: expected number <=1, got 1\.5/);
});

test('a missing config file is one clear error', () => {
  assert.throws(() => loadConfig('/nonexistent/x.yaml'), /config file not found: \/nonexistent\/x\.yaml/);
});

test('invalid YAML names the file, line and column', () => {
  const dir = writeConfigs({ 'c.yaml': 'ingest:\n  source: [unclosed\n' });
  assert.throws(() => loadConfig(join(dir, 'c.yaml')), /c\.yaml:\d+:\d+: invalid YAML/);
});

test('extends merges objects and lets the child win', () => {
  const dir = writeConfigs({ 'base.yaml': `seed: 1\n${minimal}  validation_fraction: 0.2\n`, 'child.yaml': 'extends: base.yaml\nseed: 5\n' });
  const { config } = loadConfig(join(dir, 'child.yaml'));
  assert.equal(config.seed, 5);
  assert.equal(config.ingest.validation_fraction, 0.2);
  // A relative path is anchored at the folder of the file that wrote it.
  assert.equal(config.ingest.source, join(dir, 'data'));
});

test('relative paths in an extended config resolve against the file that wrote them, not the extending one', () => {
  const dir = writeConfigs({ 'base.yaml': `${minimal}model:\n  path: models/bert\n` });
  mkdirSync(join(dir, 'team'));
  writeFileSync(join(dir, 'team', 'mine.yaml'), 'extends: ../base.yaml\nreport:\n  images: posters\n');
  const { config } = loadConfig(join(dir, 'team', 'mine.yaml'));
  assert.equal(config.ingest.source, join(dir, 'data'));
  assert.equal(config.model?.path, join(dir, 'models', 'bert'));
  assert.equal(config.report.images, join(dir, 'team', 'posters'));
  const url = writeConfigs({ 'u.yaml': `ingest:\n  source: kaggle://owner/data\n  sha256: '${'a'.repeat(64)}'\n` });
  assert.equal(loadConfig(join(url, 'u.yaml')).config.ingest.source, 'kaggle://owner/data');
});

test('--set cannot write outside the config: __proto__, prototype and constructor are refused', () => {
  const dir = writeConfigs({ 'c.yaml': minimal });
  assert.throws(() => loadConfig(join(dir, 'c.yaml'), ['__proto__.polluted=1']), (e: Error) => e instanceof UserError && /"__proto__" is not a config key/.test(e.message));
  assert.throws(() => loadConfig(join(dir, 'c.yaml'), ['train.constructor.prototype.x=1']), UserError);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test('--config naming a folder is one clear error', () => {
  const dir = writeConfigs({});
  assert.throws(() => loadConfig(dir), (e: Error) => e instanceof UserError && /is a folder, not a config file/.test(e.message));
});

test('an extends cycle is an error', () => {
  const dir = writeConfigs({ 'a.yaml': 'extends: b.yaml\n', 'b.yaml': 'extends: a.yaml\n' });
  assert.throws(() => loadConfig(join(dir, 'a.yaml')), /cycle/);
});

test('--set overrides are typed as YAML and validated like the file', () => {
  const dir = writeConfigs({ 'c.yaml': minimal });
  const { config } = loadConfig(join(dir, 'c.yaml'), ['seed=7', 'ingest.files.test=null', 'ingest.validation_fraction=0.25']);
  assert.equal(config.seed, 7);
  assert.equal(config.ingest.files.test, null);
  assert.equal(config.ingest.validation_fraction, 0.25);
  assert.throws(() => loadConfig(join(dir, 'c.yaml'), ['ingest.nope=1']), /ingest\.nope: unknown key/);
  assert.throws(() => loadConfig(join(dir, 'c.yaml'), ['seed']), /expected key=value/);
});

test('a URL source without a pinned checksum is refused', () => {
  const dir = writeConfigs({ 'c.yaml': 'ingest:\n  source: https://example.org/data.zip\n' });
  assert.throws(() => loadConfig(join(dir, 'c.yaml')), /ingest\.sha256: required when ingest\.source is a URL/);
});

test('null in an extending config removes the inherited key, so a config can switch from model.path to model.hub', () => {
  const dir = writeConfigs({
    'base.yaml': `${minimal}model:\n  path: models/local\ntrain:\n  early_stopping:\n    patience: 9\n`,
    'hub.yaml': `extends: base.yaml\nmodel:\n  path: null\n  hub:\n    repo: acme/bert\n    revision: ${'a'.repeat(40)}\n    files:\n      onnx/model.onnx: '${'b'.repeat(64)}'\ntrain:\n  early_stopping: null\n`,
  });
  const { config } = loadConfig(join(dir, 'hub.yaml'));
  assert.equal(config.model?.path, undefined);
  assert.equal(config.model?.hub?.repo, 'acme/bert');
  // Where null is a value of its own, it keeps that meaning: early stopping off.
  assert.equal(config.train.early_stopping, null);
  // The same through --set.
  const back = loadConfig(join(dir, 'hub.yaml'), ['model.hub=null', 'model.path=models/other']);
  assert.equal(back.config.model?.hub, undefined);
  assert.equal(back.config.model?.path, 'models/other');
});

test('PIN-ME placeholders are refused with the command that fills them, unless loading for make pin', () => {
  const dir = writeConfigs({
    'real.yaml': `ingest:\n  source: kaggle://hijest/genre-classification-dataset-imdb\n  sha256: PIN-ME\nmodel:\n  hub:\n    repo: acme/bert\n    revision: main\n    files:\n      onnx/model.onnx: PIN-ME\n      config.json: '${'c'.repeat(64)}'\n`,
  });
  const path = join(dir, 'real.yaml');
  assert.throws(
    () => loadConfig(path),
    (e: Error) => e instanceof UserError && e.message === `${path}: not pinned yet (ingest.sha256, model.hub.files.onnx/model.onnx are PIN-ME): run \`make pin CONFIG=${path}\` on a machine that reaches the hub and Kaggle`,
  );
  // A config with only a Kaggle pin to fill is told to reach Kaggle, not the hub.
  const kaggleOnly = writeConfigs({ 'k.yaml': 'ingest:\n  source: kaggle://owner/data\n  sha256: PIN-ME\n' });
  assert.throws(() => loadConfig(join(kaggleOnly, 'k.yaml')), (e: Error) => /on a machine that reaches Kaggle$/.test(e.message));
  assert.equal(loadConfig(path, [], { allowUnpinned: true }).config.model?.hub?.files['onnx/model.onnx'], 'PIN-ME');
  const noSum = writeConfigs({ 'k.yaml': 'ingest:\n  source: kaggle://owner/data\n' });
  assert.throws(() => loadConfig(join(noSum, 'k.yaml')), (e: Error) => /ingest\.sha256: required when ingest\.source is a URL or kaggle:\/\//.test(e.message));
});
