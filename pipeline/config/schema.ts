import { z } from 'zod';

/**
 * The whole configuration of a run. Every object is strict (an unknown key is an error, not a
 * silent no-op) and every optional field has its default here, in one place.
 */

const GiB = 1024 ** 3;

const columns = z.strictObject({
  id: z.string().min(1).default('id'),
  title: z.string().min(1).default('title'),
  genre: z.string().min(1).default('genre'),
  description: z.string().min(1).default('description'),
});

export const ingestSchema = z.strictObject({
  /** A local file or folder, an archive (.zip, .tar, .tar.gz, .tgz), or an https:// URL. */
  source: z.string().min(1),
  /** Required for URLs: the download is checked against it and cached by it. */
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/, 'expected 64 lower-case hex characters')
    .optional(),
  format: z.enum(['auto', 'text', 'csv', 'jsonl']).default('auto'),
  /** File names inside the source folder or archive (found in sub-folders too). */
  files: z
    .strictObject({
      train: z.string().min(1).default('train_data.txt'),
      test: z.string().min(1).nullable().default('test_data.txt'),
      test_solution: z.string().min(1).nullable().default('test_data_solution.txt'),
    })
    .prefault({}),
  /** For CSV and JSONL: which column holds each field. */
  columns: columns.prefault({}),
  validation_fraction: z.number().min(0).max(0.5).default(0.1),
  max_reject_fraction: z.number().min(0).max(1).default(0.01),
  max_unpacked_bytes: z.number().int().positive().default(4 * GiB),
  download: z
    .strictObject({
      retries: z.number().int().min(0).max(20).default(3),
      timeout_s: z.number().positive().default(60),
    })
    .prefault({}),
});

export const configSchema = z
  .strictObject({
    /** Name of the run folder under artifacts/runs/ (default: the config file's name). */
    run: z
      .string()
      .regex(/^[A-Za-z0-9._-]+$/, 'expected letters, digits, ".", "_" or "-"')
      .optional(),
    seed: z.number().int().min(0).default(42),
    ingest: ingestSchema,
  })
  .check((ctx) => {
    const ingest = ctx.value.ingest;
    if (/^https?:\/\//.test(ingest.source) && !ingest.sha256) {
      ctx.issues.push({
        code: 'custom',
        path: ['ingest', 'sha256'],
        message: 'required when ingest.source is a URL (pin the file: sha256sum FILE)',
        input: ingest.sha256,
      });
    }
  });

export type Config = z.output<typeof configSchema> & { run: string };
export type IngestConfig = Config['ingest'];
