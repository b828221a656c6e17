import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readRecords } from '../pipeline/ingest/formats.js';
import { parseTitle, splitValidation, validateRecords, type MovieRow } from '../pipeline/ingest/rows.js';
import { ingestSchema } from '../pipeline/config/schema.js';
import { workspace } from './helpers/workspace.js';

const ingestConfig = (extra: Record<string, unknown> = {}) => ingestSchema.parse({ source: '.', ...extra });

function read(content: string | Buffer, role: 'train' | 'test' | 'test_solution' = 'train', name = 'train_data.txt', extra = {}) {
  const ws = workspace();
  const path = ws.write(name, content);
  return readRecords(path, name, role, ingestConfig(extra));
}

test('reads the Kaggle text format, trimming fields and tolerating CRLF and a trailing separator', () => {
  const { records, rejects } = read('1 ::: Oscar et la dame rose (2009) :::  Drama  ::: Oscar learns the truth.\r\n2 ::: Cupid (1997) ::: thriller ::: A brother and sister. ::: \n\n');
  assert.deepEqual(rejects, []);
  assert.equal(records.length, 2);
  assert.deepEqual(
    records.map((r) => [r.line, r.id, r.title, r.genre, r.description]),
    [
      [1, '1', 'Oscar et la dame rose (2009)', 'Drama', 'Oscar learns the truth.'],
      [2, '2', 'Cupid (1997)', 'thriller', 'A brother and sister.'],
    ],
  );
});

test('the test file has three fields and no genre', () => {
  const { records } = read("1 ::: Edgar's Lunch (1998) ::: L.R. Brane loves his life.\n", 'test', 'test_data.txt');
  assert.equal(records[0]!.genre, null);
  assert.equal(records[0]!.description, 'L.R. Brane loves his life.');
});

test('a wrong field count is rejected with file, line and reason', () => {
  const { records, rejects } = read('1 ::: A (2000) ::: drama ::: ok\n2 ::: B (2000) ::: drama\n');
  assert.equal(records.length, 1);
  assert.deepEqual(rejects.map((r) => [r.file, r.line, r.reason]), [['train_data.txt', 2, 'expected 4 fields separated by " ::: ", found 3']]);
});

test('invalid UTF-8 rejects only its own line', () => {
  const bad = Buffer.concat([Buffer.from('1 ::: A (2000) ::: drama ::: fine\n2 ::: B (2000) ::: drama ::: bro'), Buffer.from([0xc3, 0x28]), Buffer.from('ken\n3 ::: C (2000) ::: drama ::: fine too\n')]);
  const { records, rejects } = read(bad);
  assert.deepEqual(records.map((r) => r.id), ['1', '3']);
  assert.deepEqual(rejects.map((r) => [r.line, r.reason]), [[2, 'invalid UTF-8']]);
});

test('bad ids, duplicate ids, empty descriptions and empty genres are rejected', () => {
  const { records, rejects } = read(
    ['1 ::: A (2000) ::: drama ::: one', 'x2 ::: B (2000) ::: drama ::: two', '1 ::: C (2000) ::: drama ::: three', '4 ::: D (2000) ::: drama ::: ', '5 ::: E (2000) :::  ::: five'].join('\n'),
  );
  const rows = validateRecords(records, rejects, { textFormat: true, split: 'train' });
  assert.deepEqual(rows.map((r) => r.id), ['1']);
  assert.deepEqual(
    rejects.map((r) => [r.line, r.reason]).sort((a, b) => (a[0] as number) - (b[0] as number)),
    [
      [2, 'bad id "x2"'],
      [3, 'duplicate id 1 (first on line 1)'],
      [4, 'empty description'],
      [5, 'empty genre'],
    ],
  );
});

test('a test genre outside the training labels is rejected', () => {
  const { records, rejects } = read('1 ::: A (2000) ::: musical ::: songs\n2 ::: B (2000) ::: Drama ::: tears\n', 'test_solution');
  const rows = validateRecords(records, rejects, { textFormat: true, split: 'test', knownGenres: new Set(['drama']) });
  assert.deepEqual(rows.map((r) => [r.id, r.genre]), [['2', 'drama']]);
  assert.equal(rejects[0]!.reason, 'genre "musical" does not occur in the training data');
});

test('years are read from titles: (2009), (????), (2013/I), none', () => {
  assert.deepEqual(parseTitle('Oscar et la dame rose (2009)'), { title: 'Oscar et la dame rose', year: 2009 });
  assert.deepEqual(parseTitle('Untitled Project (????)'), { title: 'Untitled Project', year: null });
  assert.deepEqual(parseTitle('Alone (2013/I)'), { title: 'Alone', year: 2013 });
  assert.deepEqual(parseTitle('"Friends" (1994)'), { title: '"Friends"', year: 1994 });
  assert.deepEqual(parseTitle('No Year Here'), { title: 'No Year Here', year: null });
  assert.deepEqual(parseTitle('1984 (1956)'), { title: '1984', year: 1956 });
});

test('CSV with a column mapping, quoted fields and a short row', () => {
  const csv = 'movie_id,name,label,plot\n7,"Heat (1995)",Crime,"A detective, a thief."\n8,"Up (2009)",Animation,"An old man\nand a balloon house."\n9,Short row,drama\n';
  const { records, rejects } = read(csv, 'train', 'movies.csv', { columns: { id: 'movie_id', title: 'name', genre: 'label', description: 'plot' } });
  assert.deepEqual(records.map((r) => [r.id, r.title, r.genre, r.description]), [
    ['7', 'Heat (1995)', 'Crime', 'A detective, a thief.'],
    ['8', 'Up (2009)', 'Animation', 'An old man\nand a balloon house.'],
  ]);
  assert.deepEqual(rejects.map((r) => [r.line, r.reason]), [[5, 'expected 4 columns, found 3']]);
});

test('a CSV without a mapped column is one error naming the column', () => {
  assert.throws(() => read('id,title,plot\n1,a,b\n', 'train', 'x.csv'), /x\.csv: missing column\(s\) description, genre/);
});

test('JSONL with a column mapping; invalid JSON and missing fields are rejected', () => {
  const jsonl = '{"id": 1, "title": "A (2000)", "genre": "Drama", "text": "one"}\n{broken\n{"id": 3, "title": "C", "genre": "drama"}\n[1,2]\n';
  const { records, rejects } = read(jsonl, 'train', 'movies.jsonl', { columns: { description: 'text' } });
  assert.deepEqual(records.map((r) => [r.id, r.genre, r.description]), [['1', 'Drama', 'one']]);
  assert.deepEqual(rejects.map((r) => r.line), [2, 3, 4]);
  assert.match(rejects[0]!.reason, /^invalid JSON/);
  assert.equal(rejects[1]!.reason, 'missing field "text"');
  assert.equal(rejects[2]!.reason, 'expected a JSON object');
});

test('the validation split is stratified, seeded, and keeps one training row per genre', () => {
  const make = (): MovieRow[] =>
    [...Array(100).fill('drama'), ...Array(30).fill('horror'), 'western'].map((genre, i) => ({ id: String(i), title: '', year: null, genre, description: 'x', split: 'train', image: null }));
  const a = make();
  splitValidation(a, 0.1, 42);
  const count = (rows: MovieRow[], genre: string) => rows.filter((r) => r.genre === genre && r.split === 'validation').length;
  assert.equal(count(a, 'drama'), 10);
  assert.equal(count(a, 'horror'), 3);
  assert.equal(count(a, 'western'), 0);
  const b = make();
  splitValidation(b, 0.1, 42);
  assert.deepEqual(a.map((r) => r.split), b.map((r) => r.split));
  const c = make();
  splitValidation(c, 0.1, 7);
  assert.notDeepEqual(a.map((r) => r.split), c.map((r) => r.split));
});
