/**
 * How long the watch loop waits before its next connection attempt: the rules of the Python
 * SDK (chorus/sdk/reconnect.py). Pure.
 *
 * An attempt counts as a connection only once the server said `hello`. One that ended before
 * (a gateway past a connection cap closes with 4429 right after the upgrade, a gateway
 * shutting down closes with 4503 before it served) or was refused (an HTTP status for a
 * long-poll) is a failed attempt: the backoff keeps growing, as after a connection that could
 * not be opened, and starts over only after a hello. Otherwise a browser refused at once would
 * reconnect at the first, shortest wait forever, and a fleet of them would hammer the gateway
 * that refuses them.
 *
 * The server's hints are a floor under the backoff: a refusal's `Retry-After`, a `bye`'s
 * `retry_in_ms`, and for a close code (which carries no header) the wait that the same
 * refusal gets over HTTP (`CLOSE_RETRY_MS`).
 */

import type { Backoff } from "./backoff.js";

/** What the gateway answers over HTTP for the refusals a WebSocket gets as a close code after
 * its upgrade: Retry-After 5 s for a user's or an address's connection cap (4429), 1 s for a
 * gateway at its own limit or shutting down (4503). */
export const CLOSE_RETRY_MS: Readonly<Record<number, number>> = { 4429: 5000, 4503: 1000 };
/** A hint above this is read as this: a broken or hostile server cannot park clients for good. */
export const HINT_MAX_MS = 60_000;

/** What one connection attempt showed, filled in as it goes. */
export class Attempt {
  /** The server said hello: the attempt connected. */
  hello = false;
  /** The WebSocket's close code, when it was closed. */
  closeCode: number | null = null;
  /** The server's own hint, ms (Retry-After, `bye.retry_in_ms`). */
  retryAfterMs: number | null = null;

  /** The earliest retry the server asked for, ms (0: none). */
  hintMs(): number {
    let hint = this.closeCode === null ? 0 : CLOSE_RETRY_MS[this.closeCode] ?? 0;
    if (this.retryAfterMs !== null && Number.isFinite(this.retryAfterMs)) {
      hint = Math.max(hint, this.retryAfterMs);
    }
    return Math.min(Math.max(0, hint), HINT_MAX_MS);
  }
}

/** The wait before the next attempt, ms: the backoff's next wait (started over when `attempt`
 * connected), or the server's hint when that is longer. */
export function waitAfter(attempt: Attempt, backoff: Backoff): number {
  if (attempt.hello) backoff.reset();
  return Math.max(backoff.next(), attempt.hintMs());
}

// Seconds as a decimal number (our gateways send whole seconds); an HTTP date is not one.
const SECONDS = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/;

/** Ms to wait from a 429's or 503's `Retry-After`; 1 s when it is missing or not a number of
 * seconds (an HTTP date, say). */
export function retryAfterMs(header: string | null): number {
  if (header === null || !SECONDS.test(header)) return 1000;
  const seconds = Number(header);
  return Number.isFinite(seconds) ? Math.max(0, seconds) * 1000 : 1000;
}
