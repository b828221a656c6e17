import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rng } from '../random.js';

/**
 * A generated, deterministic data set in the Kaggle IMDb genre format, so that the whole
 * pipeline runs offline. Each genre has its own words; every description mixes them with words
 * shared by all genres, so the task is learnable but not trivial. It is not real data.
 */
const GENRE_WORDS: Record<string, string[]> = {
  action: ['explosion', 'chase', 'commando', 'firefight', 'mercenary', 'hostage', 'rooftop', 'helicopter', 'ambush', 'bodyguard', 'heist crew', 'armored convoy', 'martial artist', 'rescue mission', 'special forces'],
  animation: ['talking animals', 'cartoon', 'enchanted toy', 'little dragon', 'animated', 'friendly robot', 'magical forest creatures', 'puppy', 'singing fish', 'colorful kingdom', 'brave mouse', 'cheerful penguin', 'paper world', 'clay figures', 'sketchbook'],
  comedy: ['hilarious', 'awkward', 'prank', 'mix-up', 'bumbling', 'wacky', 'stand-up comic', 'slapstick', 'misadventure', 'goofy roommate', 'wedding disaster', 'comic chaos', 'sarcastic', 'laugh', 'silly bet'],
  crime: ['detective', 'mob boss', 'robbery', 'smuggling ring', 'corrupt cop', 'gangster', 'informant', 'homicide', 'cartel', 'prosecutor', 'stolen diamonds', 'money laundering', 'parole', 'racketeering', 'crime family'],
  documentary: ['interviews', 'archival footage', 'filmmaker follows', 'real-life', 'investigates', 'testimonies', 'chronicles', 'footage', 'historians', 'explores the history', 'eyewitness accounts', 'journalists', 'examines', 'first-hand', 'true story of'],
  drama: ['grief', 'estranged', 'family secrets', 'terminal illness', 'reconciliation', 'struggles', 'addiction', 'inheritance', 'divorce', 'redemption', 'guilt', 'small town', 'faith', 'sacrifice', 'coming to terms'],
  fantasy: ['wizard', 'sorceress', 'enchanted sword', 'dragon', 'elves', 'prophecy', 'dark lord', 'quest', 'kingdom of', 'spell', 'magic amulet', 'cursed prince', 'unicorn', 'ancient runes', 'realm'],
  horror: ['haunted', 'demon', 'possessed', 'cursed', 'slasher', 'blood', 'ghost', 'exorcism', 'creature in the cellar', 'zombies', 'nightmare', 'ritual', 'screams', 'evil spirit', 'abandoned asylum'],
  romance: ['falls in love', 'soulmate', 'first kiss', 'romantic', 'heartbreak', 'wedding', 'lovers', 'passion', 'love letter', 'sweetheart', 'chemistry', 'true love', 'courtship', 'engaged', 'love triangle'],
  'sci-fi': ['spaceship', 'alien', 'galaxy', 'android', 'time travel', 'distant planet', 'cyborg', 'starship', 'dystopian future', 'laser', 'colony on mars', 'artificial intelligence', 'teleporter', 'space station', 'clones'],
  thriller: ['conspiracy', 'stalker', 'paranoia', 'kidnapped', 'suspense', 'double agent', 'blackmail', 'race against time', 'cover-up', 'hunted', 'assassin', 'hidden camera', 'witness', 'surveillance', 'ransom'],
  western: ['cowboy', 'sheriff', 'outlaw', 'frontier', 'saloon', 'ranch', 'gunslinger', 'cattle drive', 'stagecoach', 'bounty hunter', 'desert town', 'horseback', 'gold rush', 'marshal', 'duel at noon'],
};

/** Rows per genre in train; uneven on purpose, so that class weights and macro-F1 matter. */
const TRAIN_ROWS: Record<string, number> = {
  action: 320, animation: 210, comedy: 420, crime: 260, documentary: 380, drama: 520,
  fantasy: 200, horror: 300, romance: 260, 'sci-fi': 230, thriller: 340, western: 200,
};

const SHARED_WORDS = [
  'a young woman', 'an old man', 'a teenager', 'a family', 'two friends', 'a stranger', 'a teacher', 'a doctor', 'a journalist', 'a mother',
  'the city', 'a village', 'the coast', 'a farm', 'the capital', 'the island', 'a school', 'an office', 'the border', 'a hotel',
  'discovers', 'must decide', 'returns home', 'meets', 'loses', 'finds', 'tries to', 'refuses to', 'learns', 'remembers',
  'a secret', 'the truth', 'an old promise', 'a letter', 'a photograph', 'a journey', 'the past', 'a choice', 'a debt', 'a rumor',
];

const TITLE_WORDS = ['Night', 'River', 'Last', 'Silent', 'Golden', 'Broken', 'Summer', 'Shadow', 'Return', 'Edge', 'Light', 'Empire', 'Road', 'Heart', 'Storm', 'Glass', 'Winter', 'Echo', 'Iron', 'Dream'];

function description(rng: Rng, genre: string): string {
  const own = GENRE_WORDS[genre]!;
  // A few descriptions borrow words of another genre, as real plots do.
  const other = GENRE_WORDS[rng.pick(Object.keys(GENRE_WORDS))]!;
  const sentences: string[] = [];
  const count = 2 + rng.int(3);
  for (let s = 0; s < count; s++) {
    const words = [rng.pick(SHARED_WORDS), rng.pick(SHARED_WORDS)];
    const genreWords = 1 + rng.int(2);
    for (let i = 0; i < genreWords; i++) words.push(rng.next() < 0.85 ? rng.pick(own) : rng.pick(other));
    rng.shuffle(words);
    const sentence = words.join(' ');
    sentences.push(sentence.charAt(0).toUpperCase() + sentence.slice(1) + '.');
  }
  return sentences.join(' ');
}

function title(rng: Rng): string {
  const name = `${rng.pick(['The ', '', 'A '])}${rng.pick(TITLE_WORDS)} ${rng.pick(TITLE_WORDS)}`;
  const r = rng.next();
  const year = r < 0.05 ? '????' : `${1950 + rng.int(74)}${r > 0.97 ? '/I' : ''}`;
  return `${name} (${year})`;
}

export interface DemoDataSummary {
  train: number;
  test: number;
  genres: number;
  malformed: number;
}

/**
 * Writes train_data.txt, test_data.txt, test_data_solution.txt and SOURCE.md into `folder`.
 * The same seed always gives the same bytes.
 */
export function writeDemoData(folder: string, seed = 7): DemoDataSummary {
  const rng = new Rng(seed, 'demo-data');
  const genres = Object.keys(GENRE_WORDS);
  const trainGenres = rng.shuffle(genres.flatMap((g) => Array<string>(TRAIN_ROWS[g]!).fill(g)));
  const testGenres = rng.shuffle(genres.flatMap((g) => Array<string>(Math.round(TRAIN_ROWS[g]! / 3)).fill(g)));

  const train = trainGenres.map((g, i) => `${i + 1} ::: ${title(rng)} ::: ${g} ::: ${description(rng, g)}`);
  const test = testGenres.map((g, i) => ({ id: i + 1, title: title(rng), genre: g, text: description(rng, g) }));

  // Malformed lines that ingest must reject (well under 1% of rows).
  const malformedTrain = [
    `${train.length + 1} ::: Missing Fields (2001) ::: drama`,
    `${train.length + 2} ::: Empty Plot (1999) ::: comedy ::: `,
    `12 ::: Duplicate Id (2005) ::: horror ::: ${description(rng, 'horror')}`,
    `x${train.length + 3} ::: Bad Id (2010) ::: western ::: ${description(rng, 'western')}`,
  ];
  const insertAt = (lines: string[], extra: string[]) => extra.forEach((line, k) => lines.splice(Math.floor(((k + 1) * lines.length) / (extra.length + 1)), 0, line));
  insertAt(train, malformedTrain);
  const solution = test.map((t) => `${t.id} ::: ${t.title} ::: ${t.genre} ::: ${t.text}`);
  const unknownGenre = `${test.length + 1} ::: Song and Dance (1962) ::: musical ::: A troupe sings in the rain.`;
  solution.push(unknownGenre);

  mkdirSync(folder, { recursive: true });
  const invalidUtf8 = Buffer.from([...Buffer.from(`${train.length + 10} ::: Bad Bytes (2000) ::: drama ::: Broken `), 0xc3, 0x28, ...Buffer.from(' text.\n')]);
  writeFileSync(join(folder, 'train_data.txt'), Buffer.concat([Buffer.from(train.join('\n') + '\n'), invalidUtf8]));
  writeFileSync(join(folder, 'test_data.txt'), [...test.map((t) => `${t.id} ::: ${t.title} ::: ${t.text}`), `${test.length + 1} ::: Song and Dance (1962) ::: A troupe sings in the rain.`].join('\n') + '\n');
  writeFileSync(join(folder, 'test_data_solution.txt'), solution.join('\n') + '\n');
  writeFileSync(
    join(folder, 'SOURCE.md'),
    `# Generated demo data (not real)\n\nWritten by \`scripts/dev/generate-demo-data.ts\` (seed ${seed}): ${genres.length} genres, ` +
      `${train.length - malformedTrain.length} training and ${test.length} test movies with invented titles and plots, ` +
      `in the Kaggle IMDb genre format, plus ${malformedTrain.length + 2} malformed lines that ingest rejects.\n`,
  );
  return { train: trainGenres.length, test: test.length, genres: genres.length, malformed: malformedTrain.length + 2 };
}
