/**
 * A WordPiece vocabulary and its Hugging Face `tokenizer.json`, for the project's own random
 * BERT models. Special tokens keep bert-base-uncased's ids ([PAD]=0, [UNK]=100, [CLS]=101,
 * [SEP]=102, [MASK]=103), then come single characters (as word starts and as `##` pieces, so
 * every word can be spelled), then the corpus's most frequent words.
 */
const SPECIALS: Record<string, number> = { '[PAD]': 0, '[UNK]': 100, '[CLS]': 101, '[SEP]': 102, '[MASK]': 103 };
const BASE_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~';

/** Lower-cases, strips accents and splits on white space and punctuation, as BertPreTokenizer does. */
export function basicWords(text: string): string[] {
  const normalized = text.toLowerCase().normalize('NFD').replace(/\p{Mn}/gu, '');
  return normalized.match(/[\p{L}\p{N}]+|[^\s\p{L}\p{N}]/gu) ?? [];
}

/** At most `size` tokens: fewer when the corpus has fewer distinct words. */
export function buildVocab(corpus: string[], size: number): string[] {
  const vocab: string[] = [];
  for (let i = 0; i < 104; i++) vocab.push(`[unused${i}]`);
  for (const [token, id] of Object.entries(SPECIALS)) vocab[id] = token;
  const have = new Set(vocab);
  const add = (token: string) => {
    if (vocab.length < size && !have.has(token)) {
      have.add(token);
      vocab.push(token);
    }
  };
  const counts = new Map<string, number>();
  const chars = new Set(BASE_CHARS);
  for (const text of corpus) {
    for (const word of basicWords(text)) {
      counts.set(word, (counts.get(word) ?? 0) + 1);
      for (const ch of word) chars.add(ch);
    }
  }
  const sortedChars = [...chars].sort();
  for (const ch of sortedChars) add(ch);
  for (const ch of sortedChars) add(`##${ch}`);
  const words = [...counts.entries()].filter(([w]) => [...w].length > 1).sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  for (const [word] of words) add(word);
  return vocab;
}

/** The `tokenizer.json` of BertTokenizerFast (uncased) for a vocabulary, without truncation or padding. */
export function tokenizerJson(vocab: string[]): Record<string, unknown> {
  const special = (content: string) => ({ id: vocab.indexOf(content), content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'].map(special),
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '[CLS]', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '[SEP]', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: '[SEP]', type_id: 1 } },
      ],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [SPECIALS['[CLS]']], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [SPECIALS['[SEP]']], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab: Object.fromEntries(vocab.map((t, i) => [t, i])) },
  };
}

export const TOKENIZER_CONFIG = {
  clean_up_tokenization_spaces: true,
  cls_token: '[CLS]',
  do_basic_tokenize: true,
  do_lower_case: true,
  mask_token: '[MASK]',
  model_max_length: 512,
  pad_token: '[PAD]',
  sep_token: '[SEP]',
  strip_accents: null,
  tokenize_chinese_chars: true,
  tokenizer_class: 'BertTokenizer',
  unk_token: '[UNK]',
};
