import { z } from 'zod';

/**
 * The whole configuration of a run. Every object is strict (an unknown key is an error, not a
 * silent no-op) and every optional field has its default here, in one place.
 */

const GiB = 1024 ** 3;
/** What `make pin` replaces with a real checksum; a config that still has one is refused before any work. */
export const PIN_PLACEHOLDER = 'PIN-ME';
const sha256 = z.string().regex(/^([0-9a-f]{64}|PIN-ME)$/, 'expected 64 lower-case hex characters (or PIN-ME for `make pin` to fill)');

/** A run's name: a folder under artifacts/runs/, so letters, digits, ".", "_" and "-" only (no path). */
export const RUN_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** A file named inside a folder, an archive or a hub repository: relative, and never out of it through `..`. */
const insidePath = z
  .string()
  .min(1)
  .refine((name) => !/^([a-z]:)?[\\/]/i.test(name) && !name.split(/[\\/]/).includes('..'), 'expected a path inside the source (relative, without ".."), e.g. train_data.txt or data/train_data.txt');

/** The Kaggle data set's file names: the defaults of ingest.files. */
export const DEFAULT_FILES = { train: 'train_data.txt', test: 'test_data.txt', test_solution: 'test_data_solution.txt' } as const;

/** Sources fetched over the network (and so pinned by sha256): https URLs and Kaggle datasets. */
export const isRemoteSource = (source: string) => /^(https?|kaggle):\/\//i.test(source);

const columns = z.strictObject({
  id: z.string().min(1).default('id'),
  title: z.string().min(1).default('title'),
  genre: z.string().min(1).default('genre'),
  description: z.string().min(1).default('description'),
  /** Optional: a poster per movie, a path (relative to the data file) or an http(s) URL; the report shows it. */
  image: z.string().min(1).default('image'),
});

export const ingestSchema = z.strictObject({
  /** A local file or folder, an archive (.zip, .tar, .tar.gz, .tgz), an https:// URL, or kaggle://owner/dataset. */
  source: z.string().min(1),
  /** Required for URLs and Kaggle: the download is checked against it and cached by it (`make pin` fills it). */
  sha256: sha256.optional(),
  format: z.enum(['auto', 'text', 'csv', 'jsonl']).default('auto'),
  /** File names inside the source folder or archive (found in sub-folders too). */
  files: z
    .strictObject({
      train: insidePath.default(DEFAULT_FILES.train),
      test: insidePath.nullable().default(DEFAULT_FILES.test),
      test_solution: insidePath.nullable().default(DEFAULT_FILES.test_solution),
    })
    .prefault({}),
  /** For CSV and JSONL: which column holds each field. */
  columns: columns.prefault({}),
  validation_fraction: z.number().min(0).max(0.5).default(0.1),
  /** A description longer than this is rejected (with its line): the longest real plot is a few thousand characters. */
  max_description_chars: z.number().int().positive().default(20_000),
  max_reject_fraction: z.number().min(0).max(1).default(0.01),
  max_unpacked_bytes: z.number().int().positive().default(4 * GiB),
  download: z
    .strictObject({
      retries: z.number().int().min(0).max(20).default(3),
      timeout_s: z.number().positive().default(60),
      /** A download larger than this is stopped and removed. */
      max_bytes: z.number().int().positive().default(4 * GiB),
      /** Where kaggle:// sources are downloaded from (Kaggle's public API). */
      kaggle_api: z.string().regex(/^https?:\/\//, 'expected an http(s) URL').default('https://www.kaggle.com/api/v1'),
    })
    .prefault({}),
});

/**
 * A model folder: model.onnx (optionally model_quantized.onnx), tokenizer.json,
 * tokenizer_config.json and config.json. Either a local `path`, or files of a hub repository
 * (an ONNX export of bert-base-uncased, say) pinned by revision and checksum.
 */
export const modelSchema = z
  .strictObject({
    path: z.string().min(1).optional(),
    hub: z
      .strictObject({
        repo: z.string().regex(/^[\w.-]+\/[\w.-]+$/, 'expected owner/name'),
        revision: z.string().min(1),
        /** Where the hub lives; files are fetched from `<base_url>/<repo>/resolve/<revision>/<file>`. */
        base_url: z.string().regex(/^https?:\/\//, 'expected an http(s) URL').default('https://huggingface.co'),
        /** How hub files are fetched: retries, seconds without a byte, and the most one file may be (a bert-large export is 1.3 GB). */
        download: z
          .strictObject({
            retries: z.number().int().min(0).max(20).default(3),
            timeout_s: z.number().positive().default(60),
            max_bytes: z.number().int().positive().default(8 * GiB),
          })
          .prefault({}),
        /** Repository file -> sha256. Each lands in the model folder under its base name, so two files may not share one. */
        files: z.record(z.string().min(1), sha256).check((ctx) => {
          const seen = new Map<string, string>();
          for (const file of Object.keys(ctx.value)) {
            const inside = insidePath.safeParse(file);
            if (!inside.success) ctx.issues.push({ code: 'custom', path: [file], message: inside.error.issues[0]!.message, input: file });
            const base = file.split('/').pop()!;
            const other = seen.get(base);
            if (other) ctx.issues.push({ code: 'custom', path: [file], message: `${file} and ${other} would both land in the model folder as ${base}: list one of them`, input: file });
            seen.set(base, file);
          }
        }),
      })
      .optional(),
    /**
     * `fp32` runs model.onnx. `int8` runs the folder's model_quantized.onnx when it has one, else
     * an int8 model the pipeline derives from model.onnx (dynamic quantization, cached). `fp16`
     * runs a float16 model the pipeline converts from model.onnx (cached; float32 outputs), for
     * GPU providers: on a CPU it is slower than fp32. Part of the embed key: the vectors change.
     */
    precision: z.enum(['fp32', 'int8', 'fp16']).default('fp32'),
    /** With int8: quantize model.onnx in the pipeline even when a model_quantized.onnx is published. */
    quantize: z.boolean().default(false),
  })
  .check((ctx) => {
    const { path, hub } = ctx.value;
    if (Boolean(path) === Boolean(hub)) {
      ctx.issues.push({ code: 'custom', path: [], message: 'set exactly one of model.path (a local folder) or model.hub (a pinned download)', input: ctx.value });
    }
  });

export const tokenizeSchema = z.strictObject({
  /** Tokens per description, [CLS] and [SEP] included; longer ones are cut as BertTokenizerFast cuts them. */
  max_length: z.number().int().min(8).max(8192).default(128),
  /** Worker threads ("auto": one per core). Not part of the key. */
  workers: z.union([z.literal('auto'), z.number().int().min(1).max(64)]).default('auto'),
});

/**
 * TF-IDF of word n-grams (`embed.method: tfidf`), as scikit-learn's TfidfVectorizer computes it
 * with `sublinear_tf`, smoothed IDF and l2 rows. Fitted on the training split only.
 */
export const tfidfSchema = z.strictObject({
  /** Longest n-gram: 1 words only, 2 words and pairs of adjacent words. */
  ngram_max: z.number().int().min(1).max(3).default(2),
  /** An n-gram must occur in at least this many training descriptions. */
  min_df: z.number().int().min(1).default(2),
  /**
   * Keep the n-grams most frequent in the training descriptions, at most this many: the width of
   * the dense vectors. 54,000 rows x 8,192 floats is 1.8 GB per copy; the cap keeps the full data
   * set in memory.
   */
  max_features: z.number().int().min(16).max(32_768).default(8192),
  /** 1 + log(count) instead of the raw count. */
  sublinear_tf: z.boolean().default(true),
  lowercase: z.boolean().default(true),
});

export const FEATURIZER_NAMES = ['bert', 'tfidf', 'use-lite', 'glove'] as const;
const featurizerName = z.enum(FEATURIZER_NAMES);

export const embedSchema = z.strictObject({
  /** How descriptions become vectors: frozen BERT (`model`, tokenize's ids) or TF-IDF of the words. */
  /**
   * bert (the frozen ONNX encoder over tokenize's ids), tfidf (TF-IDF of the words), use-lite
   * (Universal Sentence Encoder lite, from npm), glove (means of GloVe word vectors, from npm), or
   * a list of them, whose vectors are joined side by side.
   */
  method: z.union([featurizerName, z.array(featurizerName).min(2, 'a list joins two or more featurizers').refine((list) => new Set(list).size === list.length, 'each featurizer once')]).default('bert'),
  tfidf: tfidfSchema.prefault({}),
  pooling: z.enum(['mean', 'cls', 'pooler']).default('mean'),
  /** Execution providers to try, in order; the first that loads runs. Not part of the key. */
  providers: z.array(z.enum(['cuda', 'webgpu', 'cpu'])).min(1).default(['cuda', 'webgpu', 'cpu']),
  /** WebGPU provider options that change speed and memory, not the vectors. Not part of the key. */
  webgpu: z
    .strictObject({
      /** How GPU storage buffers are reused between runs: bucket (ORT's default), simple, lazyRelease, disabled. */
      storage_buffer_cache_mode: z.enum(['bucket', 'simple', 'lazyRelease', 'disabled']).default('bucket'),
      /** Dawn's validation: basic (default), wgpuOnly, full (debugging), disabled (fastest; a GPU error can crash the process). */
      validation_mode: z.enum(['basic', 'wgpuOnly', 'full', 'disabled']).default('basic'),
    })
    .prefault({}),
  /** ONNX Runtime intra-op threads ("auto": one per core). Not part of the key. */
  threads: z.union([z.literal('auto'), z.number().int().min(1).max(256)]).default('auto'),
  /** Padded tokens per batch: rows of similar length are batched up to this budget. Not part of the key. */
  batch_tokens: z.number().int().min(128).default(8192),
  /** Rows per shard: the unit of resumption and of `--shard i/n` slices. Not part of the key. */
  shard_rows: z.number().int().min(16).default(2048),
});

const positiveInt = z.number().int().positive();

export const layerSchema = z.strictObject({
  units: positiveInt,
  activation: z.enum(['relu', 'gelu', 'tanh', 'sigmoid', 'elu', 'selu', 'swish', 'linear']).default('relu'),
  dropout: z.number().min(0).max(0.95).default(0.2),
  batch_norm: z.boolean().default(false),
  l2: z.number().min(0).default(0),
});

/** The classifier on top of the vectors. Defaults reproduce the reference notebook: 768 -> 512 -> 256 -> labels. */
export const trainSchema = z.strictObject({
  /** Seeds initialization, shuffling and dropout only (null: the top-level seed). Sweeping it keeps the data split, so it measures the classifier's own seed noise. */
  seed: z.number().int().min(0).nullable().default(null),
  layers: z.array(layerSchema).default([{ units: 512, activation: 'relu', dropout: 0.2, batch_norm: false, l2: 0 }, { units: 256, activation: 'relu', dropout: 0.2, batch_norm: false, l2: 0 }]),
  optimizer: z
    .strictObject({
      name: z.enum(['adam', 'sgd', 'rmsprop']).default('adam'),
      lr: z.number().positive().max(10).default(1e-3),
      /** sgd and rmsprop only. */
      momentum: z.number().min(0).max(1).default(0.9),
    })
    .prefault({}),
  schedule: z
    .strictObject({
      name: z.enum(['constant', 'step', 'cosine']).default('constant'),
      /** step: multiply the rate by `gamma` every `step_epochs` epochs. */
      step_epochs: positiveInt.default(10),
      gamma: z.number().positive().max(1).default(0.5),
      /** cosine: the rate at the last epoch. */
      min_lr: z.number().min(0).default(0),
    })
    .prefault({}),
  batch_size: positiveInt.default(64),
  epochs: positiveInt.max(10_000).default(30),
  early_stopping: z
    .strictObject({
      monitor: z.enum(['val_loss', 'val_macro_f1']).default('val_loss'),
      patience: positiveInt.default(5),
      restore_best: z.boolean().default(true),
    })
    .nullable()
    .prefault({}),
  class_weights: z.union([z.enum(['none', 'balanced']), z.record(z.string(), z.number().positive())]).default('none'),
  label_smoothing: z.number().min(0).max(0.5).default(0),
  standardize: z.boolean().default(true),
  /**
   * What computes the training steps. auto: ONNX Runtime on the CPU where it can train the net
   * (every net but one with batch_norm), else TF.js on tfjs-node-gpu, then tfjs-node when
   * installed, else wasm, else cpu. Not part of the key: results differ in float rounding only.
   */
  backend: z.enum(['auto', 'onnxruntime', 'tensorflow', 'wasm', 'cpu']).default('auto'),
});

export const evaluateSchema = z.strictObject({
  /** How many genres each prediction lists (and top-k accuracy uses). */
  top_k: positiveInt.max(20).default(3),
  /** Bins of the expected calibration error and the reliability diagram. */
  calibration_bins: positiveInt.max(100).default(15),
});

export const reportSchema = z.strictObject({
  /** Test movies drawn at random (seeded) for the gallery, and most confident mistakes shown after them. */
  gallery: z.number().int().min(0).max(200).default(12),
  mistakes: z.number().int().min(0).max(100).default(6),
  /** Right answers the model was least sure of, shown after the mistakes. */
  least_confident: z.number().int().min(0).max(100).default(4),
  /** How the confusion matrix colours its cells: by row (true genre), column (predicted), all cells, or raw counts. */
  confusion_normalize: z.enum(['true', 'pred', 'all', 'none']).default('true'),
  /** Characters of each description on a card. */
  excerpt_chars: positiveInt.max(5000).default(280),
  /** A folder of posters named by movie id (`<id>.jpg`, `.jpeg`, `.png` or `.webp`); cards without one get a drawn tile. */
  images: z.string().min(1).nullable().default(null),
  /** Posters are scaled down to this width (pixels) before they are embedded. */
  image_width: positiveInt.max(1024).default(160),
  /** A poster URL that sends more than this is not shown (a warning and a tile). */
  poster_max_bytes: positiveInt.default(8 * 1024 * 1024),
  /** Poster URLs on loopback or private addresses (127.0.0.1, 10.x, ...) are refused unless this is set. */
  allow_private_poster_urls: z.boolean().default(false),
  /** Runs (names under artifacts/runs/) whose figures the headline and per-genre table show beside this run's. */
  reference_runs: z.array(z.string().regex(RUN_NAME, 'expected a run name: letters, digits, ".", "_" or "-", starting with a letter or digit')).default([]),
});

export const configSchema = z
  .strictObject({
    /** Name of the run folder under artifacts/runs/ (default: the config file's name). */
    run: z.string().regex(RUN_NAME, 'expected letters, digits, ".", "_" or "-", starting with a letter or digit').optional(),
    seed: z.number().int().min(0).default(42),
    ingest: ingestSchema,
    /** Needed from tokenize on; a config that only ingests may leave it out. */
    model: modelSchema.optional(),
    tokenize: tokenizeSchema.prefault({}),
    embed: embedSchema.prefault({}),
    train: trainSchema.prefault({}),
    evaluate: evaluateSchema.prefault({}),
    report: reportSchema.prefault({}),
  })
  .check((ctx) => {
    const ingest = ctx.value.ingest;
    if (isRemoteSource(ingest.source) && !ingest.sha256) {
      ctx.issues.push({
        code: 'custom',
        path: ['ingest', 'sha256'],
        message: 'required when ingest.source is a URL or kaggle:// (set it to PIN-ME and run `make pin`, or to `sha256sum FILE`)',
        input: ingest.sha256,
      });
    }
  });

export type Config = z.output<typeof configSchema> & { run: string };
export type IngestConfig = Config['ingest'];
export type ModelConfig = NonNullable<Config['model']>;
export type EmbedConfig = Config['embed'];
export type TfidfConfig = EmbedConfig['tfidf'];
export type TrainConfig = Config['train'];
export type ReportConfig = Config['report'];
