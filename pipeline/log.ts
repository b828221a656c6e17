/**
 * What a practitioner watches while a stage runs. On a terminal a progress line is redrawn in
 * place; in CI logs (no TTY) a plain line is printed every `plainEverySeconds`.
 */
const isTty = Boolean(process.stderr.isTTY) && !process.env.CI;

/**
 * How much a program says: `quiet` (warnings, errors and the answer only), `normal`, or `verbose`
 * (also how it ran: every provider tried and why one was passed over, the TF.js backend, the
 * model's inputs). Set by --quiet / --verbose (which also set PIPELINE_LOG, so that the stage
 * programs a driver starts say as much), or `make ... QUIET=1` / `VERBOSE=1`.
 */
export type LogLevel = 'quiet' | 'normal' | 'verbose';
let level: LogLevel = parseLevel(process.env.PIPELINE_LOG);

function parseLevel(value: string | undefined): LogLevel {
  return value === 'quiet' || value === 'verbose' ? value : 'normal';
}

export function setLogLevel(next: LogLevel): void {
  level = next;
  process.env.PIPELINE_LOG = next;
}

export const logLevel = (): LogLevel => level;

/** What a person follows a run by: progress, results, where things went. Silent with --quiet. */
export function info(message: string): void {
  if (level !== 'quiet') process.stderr.write(`${message}\n`);
}

/** How a run ran (providers tried, backends, model inputs): only with --verbose; the manifests keep it anyway. */
export function detail(message: string): void {
  if (level === 'verbose') process.stderr.write(`${message}\n`);
}

/** Something the person should act on or know even with --quiet (a fallback they did not ask for, data dropped). */
export function warn(message: string): void {
  process.stderr.write(`${message}\n`);
}

export function formatCount(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

export function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 1 : 0)}s`;
  // Rounded once, so that 419.99 s reads 7m00s, not 6m60s.
  const whole = Math.round(seconds);
  const m = Math.floor(whole / 60);
  const s = whole % 60;
  return m < 60 ? `${m}m${String(s).padStart(2, '0')}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export interface Progress {
  /** Adds `n` done units; `extra` is appended to the line (e.g. tokens/s). */
  tick(n: number, extra?: string): void;
  /** Prints the final line with the total rate. */
  done(extra?: string): void;
}

export function progress(label: string, total: number | undefined, unit = 'rows', plainEverySeconds = 10): Progress {
  const start = performance.now();
  let done = 0;
  let lastDraw = 0;
  let lastPlain = start;
  let lastExtra = '';

  const line = (final: boolean): string => {
    const seconds = (performance.now() - start) / 1000;
    const rate = seconds > 0 ? done / seconds : 0;
    const parts = [`${label}`];
    parts.push(total !== undefined ? `${formatCount(done)}/${formatCount(total)} ${unit}` : `${formatCount(done)} ${unit}`);
    parts.push(`${formatCount(rate)} ${unit}/s`);
    if (lastExtra) parts.push(lastExtra);
    if (final) parts.push(`in ${formatSeconds(seconds)}`);
    else if (total !== undefined && rate > 0) parts.push(`ETA ${formatSeconds((total - done) / rate)}`);
    return parts.join('  ');
  };

  return {
    tick(n, extra) {
      done += n;
      if (level === 'quiet') return;
      if (extra !== undefined) lastExtra = extra;
      const now = performance.now();
      if (isTty) {
        if (now - lastDraw > 100) {
          process.stderr.write(`\r\x1b[2K${line(false)}`);
          lastDraw = now;
        }
      } else if (now - lastPlain > plainEverySeconds * 1000) {
        process.stderr.write(`${line(false)}\n`);
        lastPlain = now;
      }
    },
    done(extra) {
      if (extra !== undefined) lastExtra = extra;
      if (level === 'quiet') return;
      process.stderr.write(`${isTty ? '\r\x1b[2K' : ''}${line(true)}\n`);
    },
  };
}
