/**
 * A small progress bar with ETA for long CLI jobs, drawn on stderr (stdout stays clean for `--json`).
 * On a terminal it redraws one line in place (at most ~10 times a second); otherwise it prints a plain line at
 * most every `intervalMs` (default 2 s) and at the end, so logs stay readable.
 *
 * @example
 * ```ts
 * const bar = new ProgressBar('analyze', 120);
 * for (let i = 0; i < 120; i++) { work(); bar.update(i + 1, `seq ${i + 1}`); }
 * bar.finish('done');
 * ```
 */

export interface ProgressOptions {
  stream?: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  /** Bar width in characters (default 28). */
  width?: number;
  /** Minimum milliseconds between non-TTY lines (default 2000). */
  intervalMs?: number;
  /** Draw nothing (e.g. `--quiet`). */
  silent?: boolean;
}

/** `1h02m`, `3m05s`, `12s`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`;
}

export class ProgressBar {
  private readonly stream: NonNullable<ProgressOptions['stream']>;
  private readonly tty: boolean;
  private readonly width: number;
  private readonly intervalMs: number;
  private readonly silent: boolean;
  private readonly start = performance.now();
  private lastDraw = -Infinity;
  private done = 0;
  private finished = false;

  constructor(readonly label: string, public total: number, opts: ProgressOptions = {}) {
    this.stream = opts.stream ?? process.stderr;
    this.tty = Boolean(this.stream.isTTY);
    this.width = opts.width ?? 28;
    this.intervalMs = opts.intervalMs ?? 2000;
    this.silent = opts.silent ?? false;
  }

  /** Estimated milliseconds left from the rate so far (NaN before any progress). */
  eta(): number {
    if (this.done <= 0) return NaN;
    const elapsed = performance.now() - this.start;
    return (elapsed / this.done) * Math.max(0, this.total - this.done);
  }

  /** The line that would be drawn now. */
  line(message = ''): string {
    const frac = this.total > 0 ? Math.min(1, this.done / this.total) : 1;
    const full = Math.round(frac * this.width);
    const bar = '█'.repeat(full) + '░'.repeat(this.width - full);
    const elapsed = performance.now() - this.start;
    const eta = this.done >= this.total ? `done in ${formatDuration(elapsed)}` : `ETA ${formatDuration(this.eta())}`;
    return `${this.label} ${bar} ${String(Math.round(frac * 100)).padStart(3)}% ${this.done}/${this.total} ${eta}${message ? ` · ${message}` : ''}`;
  }

  /** Set progress to `done` units. */
  update(done: number, message = ''): void {
    this.done = done;
    if (this.silent || this.finished) return;
    const now = performance.now();
    const last = done >= this.total;
    if (this.tty) {
      if (!last && now - this.lastDraw < 100) return;
      const cols = this.stream.columns ?? 120;
      this.stream.write(`\r${this.line(message).slice(0, Math.max(20, cols - 1))}\x1b[K`);
    } else {
      if (now - this.lastDraw < this.intervalMs) return; // the final line comes from finish()
      this.stream.write(`${this.line(message)}\n`);
    }
    this.lastDraw = now;
  }

  /** Advance by `n` units. */
  tick(n = 1, message = ''): void {
    this.update(this.done + n, message);
  }

  /** Draw the final state and end the line. */
  finish(message = ''): void {
    if (this.finished) return;
    this.done = Math.max(this.done, this.total);
    if (!this.silent) {
      this.lastDraw = -Infinity;
      if (this.tty) this.stream.write(`\r${this.line(message)}\x1b[K\n`);
      else this.stream.write(`${this.line(message)}\n`);
    }
    this.finished = true;
  }
}
