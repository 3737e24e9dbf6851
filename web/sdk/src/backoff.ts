/**
 * The retry policy of chorus/backoff.py: the n-th wait (from 0) is uniform in [d/2, d] with
 * d = min(firstMs * 2^n, maxMs), so a fleet of browsers never reconnects in lockstep and a
 * retry is never immediate. Pure: the random source is given.
 */
export class Backoff {
  private attempt = 0;

  constructor(readonly firstMs = 200, readonly maxMs = 5000,
              private readonly random: () => number = Math.random) {
    if (!(firstMs > 0 && firstMs <= maxMs)) {
      throw new RangeError(`backoff needs 0 < firstMs <= maxMs, got ${firstMs}, ${maxMs}`);
    }
  }

  /** The next wait in ms; each call doubles the ceiling up to `maxMs`. */
  next(): number {
    const ceiling = Math.min(this.firstMs * 2 ** this.attempt, this.maxMs);
    this.attempt = Math.min(this.attempt + 1, 62);
    return ceiling / 2 + this.random() * (ceiling / 2);
  }

  reset(): void {
    this.attempt = 0;
  }
}
