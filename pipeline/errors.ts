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
  main().then(
    () => {
      // Worker pools or open handles must not keep a finished command alive.
      process.exitCode = process.exitCode ?? 0;
    },
    (error: unknown) => {
      if (error instanceof UserError) {
        process.stderr.write(`error: ${error.message}\n`);
      } else {
        process.stderr.write(`internal error (a bug, please report it):\n${(error as Error)?.stack ?? String(error)}\n`);
      }
      process.exit(1);
    },
  );
}
