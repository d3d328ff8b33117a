/**
 * Stop strings over streamed text: text is passed on as soon as it cannot be the start of a stop string; when one
 * appears, the text before it is the last output. (OpenAI's `stop`: the stop string itself is not returned.)
 *
 * @example
 * const m = new StopMatcher(['\n\n']);
 * m.push('Hello\n');   // { emit: 'Hello', stopped: false } — '\n' is held back
 * m.push('\nWorld');   // { emit: '', stopped: true }
 */
export class StopMatcher {
  private held = '';
  private done = false;

  constructor(private readonly stops: readonly string[]) {}

  /** Add streamed text; returns what may be emitted now and whether a stop string was reached. */
  push(text: string): { emit: string; stopped: boolean } {
    if (this.done) return { emit: '', stopped: true };
    const buf = this.held + text;
    let cut = -1;
    for (const s of this.stops) {
      const i = buf.indexOf(s);
      if (i >= 0 && (cut < 0 || i < cut)) cut = i;
    }
    if (cut >= 0) {
      this.done = true;
      this.held = '';
      return { emit: buf.slice(0, cut), stopped: true };
    }
    const keep = this.heldBack(buf);
    this.held = buf.slice(buf.length - keep);
    return { emit: buf.slice(0, buf.length - keep), stopped: false };
  }

  /** At the end: whatever was held back (it did not become a stop string), plus `tail`. */
  flush(tail = ''): string {
    if (this.done) return '';
    const { emit, stopped } = this.push(tail);
    if (stopped) return emit;
    const rest = this.held;
    this.held = '';
    return emit + rest;
  }

  /** Length of the longest suffix of `buf` that is a proper prefix of some stop string. */
  private heldBack(buf: string): number {
    let best = 0;
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, buf.length); k > best; k--) {
        if (buf.endsWith(s.slice(0, k))) {
          best = k;
          break;
        }
      }
    }
    return best;
  }
}
