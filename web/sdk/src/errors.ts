/**
 * What the client SDK throws to the application.
 *
 *     ChorusClientError   a request was refused for good (4xx other than 429), or no
 *                         region could take it; `status` 0: no gateway answered at all
 *     MalformedFrame      (frames.ts) a server frame of a known type with wrong fields:
 *                         counted (`client.malformedFrames`) and skipped, never thrown out
 */
export class ChorusClientError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(`${status} ${code}: ${message}`);
    this.name = "ChorusClientError";
  }
}
