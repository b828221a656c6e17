/**
 * make-bert-model: writes a model folder with a RANDOM-weight BERT encoder in ONNX (the
 * interface of bert-base-uncased exports) and a WordPiece tokenizer, for tests, the offline
 * default and speed work. Nothing here is pretrained.
 *
 *   small (committed, models/demo-bert-random):  node dist/scripts/make-bert-model.js
 *   bert-base-sized (never committed):           make model-bert-base
 *   the shape of a hub fill-mask export:         ... --task fill-mask --torch-names --quantized
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runMain, UserError } from '../../pipeline/errors.js';
import { parseArgs } from '../../pipeline/cli.js';
import { formatBytes, info } from '../../pipeline/log.js';
import { bertConfigJson, buildBertModel, type BertShape, type ExportShape } from '../../pipeline/testing/bert-graph.js';
import { buildVocab, tokenizerJson, TOKENIZER_CONFIG } from '../../pipeline/testing/vocab.js';

runMain(async () => {
  const args = await parseArgs('make-bert-model', 'Write a random-weight BERT model folder.', (y) =>
    y
      .option('out', { type: 'string', default: 'models/demo-bert-random' })
      .option('layers', { type: 'number', default: 2 })
      .option('hidden', { type: 'number', default: 128 })
      .option('heads', { type: 'number', default: 2 })
      .option('intermediate', { type: 'number', default: 512 })
      .option('vocab-size', { type: 'number', default: 4096, describe: 'ignored with --tokenizer (its vocabulary decides)' })
      .option('max-positions', { type: 'number', default: 512 })
      .option('seed', { type: 'number', default: 1234 })
      .option('corpus', { type: 'string', array: true, default: ['data/demo/train_data.txt'], describe: 'text files whose words make the vocabulary' })
      .option('tokenizer', { type: 'string', describe: 'reuse the tokenizer files of this folder (e.g. bert-base-uncased)' })
      .option('task', { choices: ['feature-extraction', 'fill-mask'] as const, default: 'feature-extraction' as const, describe: 'fill-mask: only logits over the vocabulary, as Xenova/bert-base-uncased publishes' })
      .option('token-type-ids', { type: 'boolean', default: true, describe: '--no-token-type-ids: a DistilBERT-style export without that input' })
      .option('pooler', { type: 'boolean', default: true, describe: 'a pooler_output (feature-extraction only)' })
      .option('torch-names', { type: 'boolean', default: false, describe: 'node names and spelled-out layer norms as torch.onnx.export writes them' })
      .option('quantized', { type: 'boolean', default: false, describe: 'also write model_quantized.onnx, its MatMuls as quantize_dynamic rewrites them' }),
  );
  mkdirSync(args.out, { recursive: true });
  let vocabSize: number;
  if (args.tokenizer) {
    for (const file of ['tokenizer.json', 'tokenizer_config.json']) {
      if (!existsSync(join(args.tokenizer, file))) throw new UserError(`--tokenizer: ${join(args.tokenizer, file)} not found`);
      copyFileSync(join(args.tokenizer, file), join(args.out, file));
    }
    vocabSize = Object.keys(JSON.parse(readFileSync(join(args.tokenizer, 'tokenizer.json'), 'utf8')).model.vocab).length;
  } else {
    const corpus = args.corpus.flatMap((file) => {
      if (!existsSync(file)) throw new UserError(`--corpus: ${file} not found (make demo-data writes the default)`);
      // Kaggle-format lines: only the description feeds the vocabulary (ids and years would flood it).
      return readFileSync(file, 'utf8').split('\n').map((line) => line.split(' ::: ').pop()!);
    });
    const vocab = buildVocab(corpus, args['vocab-size']);
    writeFileSync(join(args.out, 'tokenizer.json'), JSON.stringify(tokenizerJson(vocab)));
    writeFileSync(join(args.out, 'tokenizer_config.json'), `${JSON.stringify(TOKENIZER_CONFIG, null, 2)}\n`);
    vocabSize = vocab.length;
  }
  const shape: BertShape = { layers: args.layers, hidden: args.hidden, heads: args.heads, intermediate: args.intermediate, vocab: vocabSize, maxPositions: args['max-positions'], typeVocab: 2 };
  const exportShape: ExportShape = { task: args.task, tokenTypeIds: args['token-type-ids'], pooler: args.pooler, torchNames: args['torch-names'] };
  const model = buildBertModel(shape, args.seed, exportShape);
  writeFileSync(join(args.out, 'model.onnx'), model);
  if (args.quantized) writeFileSync(join(args.out, 'model_quantized.onnx'), buildBertModel(shape, args.seed, { ...exportShape, quantized: true }));
  const config = bertConfigJson(shape, args.task, {
    random_weights: true,
    generated_by: `scripts/make-bert-model.ts --seed ${args.seed}`,
  });
  writeFileSync(join(args.out, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  writeFileSync(
    join(args.out, 'README.md'),
    `# RANDOM BERT model (not pretrained)\n\nWritten by \`scripts/make-bert-model.ts\` with seed ${args.seed}: ${shape.layers} layers, hidden ${shape.hidden}, ` +
      `${shape.heads} heads, intermediate ${shape.intermediate}, vocabulary ${shape.vocab}. The weights are random: its vectors ` +
      `carry which tokens a text has, not what they mean. Same inputs and outputs as bert-base-uncased ONNX exports.\n`,
  );
  info(`make-bert-model: RANDOM ${shape.layers}-layer BERT (${args.task}${args['token-type-ids'] ? '' : ', no token_type_ids'}${args.quantized ? ', + int8' : ''}), hidden ${shape.hidden}, vocabulary ${shape.vocab}, ${formatBytes(model.length)} -> ${args.out}`);
});
