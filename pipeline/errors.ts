/**
 * Errors a user can cause (a bad config, a missing file, malformed data, no network) are
 * UserErrors: the entry point prints their message alone and exits non-zero. Anything else is
 * a bug and keeps its stack trace.
 */
export class UserError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UserError';
  }
}

/** Runs a command's main function with the project's error policy. */
export function runMain(main: () => Promise<void>): void {
  // Ctrl-C or a stop (a CI step's time-out sends SIGTERM): nothing half-written is ever
  // published, locks and leases are released on the way out (their 'exit' hooks), so say what a rerun does.
  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    process.once(signal, () => {
      process.stderr.write(`\n${signal === 'SIGINT' ? 'interrupted' : 'stopped'}: nothing was published; rerun the same command to continue (the embed stage keeps the shards it finished)\n`);
      process.exit(code);
    });
  }
  main().then(
    () => {
      // Success is exit code 0 unless the command set another; the process ends when its last
      // handle closes (worker pools are closed by whoever started them).
      process.exitCode = process.exitCode ?? 0;
    },
    (error: unknown) => {
      if (error instanceof UserError) {
        process.stderr.write(`error: ${error.message}\n`);
      } else if ((error as NodeJS.ErrnoException)?.code === 'ENOSPC') {
        const path = (error as NodeJS.ErrnoException).path;
        process.stderr.write(`error: no space left on the device${path ? ` writing ${path}` : ''}: free some space (df -h), or point --artifacts (ARTIFACTS=) and PIPELINE_CACHE at a larger disk; nothing was published, and a rerun resumes where it can\n`);
      } else {
        process.stderr.write(`internal error (a bug, please report it):\n${(error as Error)?.stack ?? String(error)}\n`);
      }
      process.exit(1);
    },
  );
}
