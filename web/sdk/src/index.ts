/** The Chorus browser client. See client.ts for what it does, docs/web.md for how to use it. */
export { Backoff } from "./backoff.js";
export { ChorusClient, type ClientEvents, type ClientOptions, type Connection, HISTORY_PAGE,
  REORDER_WINDOW_MS, type State } from "./client.js";
export { type Badge, type Comment, commentFromJson, NotAComment } from "./comment.js";
export { type Cursor, cursorFor, encodeCursor, parseCursor } from "./cursor.js";
export { ChorusClientError } from "./errors.js";
export { type Ack, type Bye, type Comments, decodeFrame, type ErrorFrame, frameFromJson,
  type Hello, KNOWN_FRAMES, MalformedFrame, type Other, type Pin, type Pong, type Reactions,
  type Recovered, type Restore, type Retract, type Sample, type ServerFrame, type Snapshot,
  type Tier, type TierName, type Viewers } from "./frames.js";
export { compareIds, idNode, idTimeMs, isId } from "./ids.js";
export { type Directory, nextRegion, parseDirectory, rank, type RegionInfo } from "./regions.js";
export { Attempt, CLOSE_RETRY_MS, HINT_MAX_MS, retryAfterMs, waitAfter } from "./reconnect.js";
export { type Gap, Timeline } from "./timeline.js";
export { type TransportKind } from "./transports.js";
export { type Change, RETRACTED_KEPT, StreamView } from "./view.js";
