/**
 * predict: new descriptions -> top-k genres with probabilities, using a finished run
 *
 *   parse arguments        -> a description, or --input FILE (text, CSV, JSONL, Parquet)
 *   find the run           -> the current config's artifacts, or --run NAME; an unfinished run
 *                             or a changed model file is an error
 *   tokenize, embed        -> the run's tokenizer settings and ONNX model, the embed stage's
 *                             batching and pooling (same code, same vectors)
 *   classify               -> the run's standardization and MLP; nothing is retrained
 *   print or write         -> a table on a terminal, JSON with --json, Parquet/CSV/JSONL with --output
 */
import { accessSync, constants } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { runMain, UserError } from '../pipeline/errors.js';
import { parseArgs } from '../pipeline/cli.js';
import { loadConfig } from '../pipeline/config/index.js';
import { ArtifactStore } from '../pipeline/artifacts/store.js';
import { formatCount, formatSeconds, info } from '../pipeline/log.js';

const started = performance.now();

runMain(async () => {
  const args = await parseArgs('predict', 'Predict genres for plot descriptions with a trained run.', (y) =>
    y
      .command('$0 [description]', 'Predict genres for plot descriptions with a trained run:\n  predict "A sheriff faces outlaws at noon."\n  predict --input plots.csv --output genres.parquet', (c) =>
        c.positional('description', { type: 'string', describe: 'one plot description, in quotes' }),
      )
      .option('input', { alias: 'i', type: 'string', describe: 'file of descriptions: .txt (one per line), .csv/.jsonl/.parquet (a description column)' })
      .option('column', { type: 'string', default: 'description', describe: 'the description column of a CSV, JSONL or Parquet input' })
      .option('output', { alias: 'o', type: 'string', describe: 'write all predictions to a .parquet, .csv or .jsonl file' })
      .option('json', { type: 'boolean', default: false, describe: 'print JSON instead of a table' })
      .option('top-k', { alias: 'k', type: 'number', describe: 'genres per description (default: evaluate.top_k)' })
      .option('run', { type: 'string', describe: 'a run under artifacts/runs/ (default: the one --config builds)' }),
  );
  // After `--` (make predict passes the text so, where --set cannot swallow it) yargs leaves it in `_`.
  const extra = [...(args as unknown as { _: (string | number)[] })._];
  let raw = (args as typeof args & { description?: string | number }).description;
  if (raw === undefined && extra.length === 1) raw = extra.shift();
  if (extra.length) throw new UserError(`predict: give one description in quotes, or --input FILE for many (unexpected: ${extra.join(' ')})`);
  const description = raw === undefined ? undefined : String(raw);
  if (description !== undefined && args.input) throw new UserError('predict: give a description or --input FILE, not both');
  if (description === undefined && !args.input) throw new UserError('predict: nothing to predict: give a description in quotes, or --input FILE (see --help)');
  if (description !== undefined && !description.trim()) throw new UserError('predict: the description is empty');

  const { findRun, readDescriptions, predictDescriptions, formatTable, outputFormat, writePredictions } = await import('../pipeline/predict/index.js');
  const store = new ArtifactStore(resolve(args.artifacts));
  const run = await findRun(store, loadConfig(args.config, args.set), args.run);
  const k = args['top-k'] ?? run.loaded.config.evaluate.top_k;
  if (!Number.isInteger(k) || k < 1) throw new UserError(`predict --top-k ${k}: expected a whole number of at least 1`);
  const input = args.input ? await readDescriptions(args.input, args.column) : { ids: ['1'], titles: [null], texts: [description!.trim()] };
  // Fail before the work, not after it, when the output cannot be written.
  if (args.output) {
    outputFormat(args.output);
    try {
      accessSync(dirname(resolve(args.output)), constants.W_OK);
    } catch {
      throw new UserError(`predict --output ${args.output}: its folder does not exist or is not writable`);
    }
  }

  const { predictions, genres, seconds, fromCache } = await predictDescriptions(run, input, k, store);
  const wall = (performance.now() - started) / 1000;
  const source = { run: run.name, classifier_key: run.classifier.manifest.key, embed_key: run.vectors.manifest.key, genres };
  if (args.output) {
    await writePredictions(args.output, predictions, k, source);
    info(`predict: ${formatCount(predictions.length)} predictions -> ${args.output}`);
  }
  // The same fields as the file outputs: predicted_genre beside the ranked genres, and which run made them.
  const withGenre = predictions.map((p) => ({ id: p.id, title: p.title, predicted_genre: p.top[0]!.genre, top: p.top }));
  if (args.json) process.stdout.write(`${JSON.stringify(args.input ? { ...source, predictions: withGenre } : { ...source, description: input.texts[0], predicted_genre: withGenre[0]!.predicted_genre, top: withGenre[0]!.top }, null, 2)}\n`);
  else if (!args.output) process.stdout.write(formatTable(predictions));
  // The featurizer's steps (bert: tokenize, embed; tfidf: vectorize), then the classifier.
  const { classify, ...steps } = seconds;
  const vectorizeRate = predictions.length / Math.max(1e-9, Object.values(steps).reduce((a, b) => a + b, 0));
  // Rates only where there are enough rows for one to mean something; one text gets its times.
  const many = predictions.length >= 10;
  const cache = fromCache === undefined ? '' : `${formatCount(fromCache)} from the vector cache`;
  const detailOfSteps = [many ? `${formatCount(vectorizeRate)} rows/s` : '', cache].filter(Boolean).join(', ');
  info(
    `predict: ${formatCount(predictions.length)} description${predictions.length === 1 ? '' : 's'} with run "${run.name}" (${run.classifier.stage} ${run.classifier.manifest.key}) in ${formatSeconds(wall)} from start: ` +
      `${Object.entries(steps).map(([step, s]) => `${step} ${s.toFixed(2)}s`).join(', ')}${detailOfSteps ? ` (${detailOfSteps})` : ''}, classify ${classify!.toFixed(2)}s` +
      (many ? `, ${formatCount(predictions.length / wall)} rows/s overall` : ''),
  );
});
