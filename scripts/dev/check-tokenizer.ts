/**
 * check-tokenizer (acceptance, not a test: it reads ../shared): the project's tokenizer on the
 * real bert-base-uncased files against an independent Python implementation of BERT's reference
 * WordPiece algorithm, on tricky strings (accents, CJK, emoji, punctuation runs, very long words,
 * unknown and control characters) and on every description of the real sample.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runMain, UserError } from '../../pipeline/errors.js';
import { parseArgs } from '../../pipeline/cli.js';
import { info } from '../../pipeline/log.js';
import { BertTokenizer } from '../../pipeline/tokenizer/index.js';

const TRICKY = [
  'Café au lait, naïve résumé — São Paulo, Zürich, Ångström, Ñandú.',
  '東京タワーで会いましょう。北京欢迎你！서울의 밤',
  'Emoji 🤗🎬🍿 in a plot 👨‍👩‍👧 and ❤️ flags 🇫🇷',
  'Punctuation runs!!! ??? ... --- *** ((( ))) "quoted" \'single\' <<>>',
  'A very long word: ' + 'supercalifragilisticexpialidocious'.repeat(4),
  'Pneumonoultramicroscopicsilicovolcanoconiosis and antidisestablishmentarianism',
  'Unknown characters: \u0000\u0001\ufffd \u200b zero-width, \u00ad soft hyphen, tab\there, new\nline',
  'Math ∑∫√∞ ≠ ≤ ≥ and arrows → ← ↑, currency €£¥₹, ½ ¾ ™ ©',
  'Mixed CASE WoRdS and num3ric t0kens 1,234,567.89 in 1984-2001',
  "It's the hero's 'last' stand: don't, won't, can't.",
  'Ελληνικά, русский текст, עברית, العربية, हिन्दी',
  'x'.repeat(120),
];

runMain(async () => {
  const args = await parseArgs('check-tokenizer', 'Compare the tokenizer with a reference implementation.', (y) =>
    y
      .option('tokenizer', { type: 'string', default: '../shared/models/bert-base-uncased-tokenizer' })
      .option('data', { type: 'string', default: '../shared/data/imdb-genre-sample' })
      .option('max-length', { type: 'number', default: 512 }),
  );
  const vocab = join(args.tokenizer, 'vocab.txt');
  if (!existsSync(vocab)) throw new UserError(`check-tokenizer: ${vocab} not found`);
  const texts = [...TRICKY];
  for (const file of ['train_data.txt', 'test_data.txt']) {
    const path = join(args.data, file);
    if (existsSync(path)) for (const line of readFileSync(path, 'utf8').split('\n')) if (line.trim()) texts.push(line.split(' ::: ').pop()!);
  }
  const tokenizer = BertTokenizer.load(join(args.tokenizer, 'tokenizer.json'), join(args.tokenizer, 'tokenizer_config.json'));
  const started = performance.now();
  const ours = texts.map((t) => tokenizer.encode(t, args['max-length']).ids);
  const seconds = (performance.now() - started) / 1000;
  const script = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'scripts', 'acceptance', 'bert_reference_tokenizer.py');
  const input = texts.map((text) => JSON.stringify({ text, max_length: args['max-length'] })).join('\n') + '\n';
  const result = spawnSync('python3', [script, vocab], { input, encoding: 'utf8', maxBuffer: 1 << 30 });
  if (result.status !== 0) throw new UserError(`check-tokenizer: the reference failed: ${result.stderr}`);
  const reference = result.stdout.trim().split('\n').map((l) => JSON.parse(l).ids as number[]);
  let mismatches = 0;
  texts.forEach((text, i) => {
    if (JSON.stringify(ours[i]) !== JSON.stringify(reference[i])) {
      mismatches++;
      if (mismatches <= 5) info(`mismatch on ${JSON.stringify(text.slice(0, 80))}:\n  ours      ${JSON.stringify(ours[i]!.slice(0, 30))}\n  reference ${JSON.stringify(reference[i]!.slice(0, 30))}`);
    }
  });
  info(`check-tokenizer: ${texts.length - mismatches} of ${texts.length} texts identical (${TRICKY.length} tricky strings, ${texts.length - TRICKY.length} real descriptions); ${Math.round(texts.length / seconds)} texts/s on one thread`);
  if (mismatches) process.exitCode = 1;
});
