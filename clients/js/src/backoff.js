/** Exponential backoff with jitter, so clients cut off together do not all return in
 * the same instant: attempt n waits a random time in [d/2, d], d = min(max, base·2^n). */
export class Backoff {
  constructor({ base = 250, max = 10_000 } = {}) {
    this.base = base;
    this.max = max;
    this.attempt = 0;
  }

  next() {
    const d = Math.min(this.max, this.base * 2 ** this.attempt);
    this.attempt += 1;
    return d / 2 + (Math.random() * d) / 2;
  }

  reset() {
    this.attempt = 0;
  }
}

/** setTimeout that does not keep a Node process alive on its own account. */
export function timer(fn, ms) {
  const handle = setTimeout(fn, ms);
  handle?.unref?.();
  return handle;
}
