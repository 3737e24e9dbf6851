/** The Chorus browser client. See client.ts for what it does, docs/web.md for how to use it. */
export { Backoff } from "./backoff.js";
export { ChorusClient, type ClientEvents, type ClientOptions, type Connection, HISTORY_PAGE,
  REORDER_WINDOW_MS, type State } from "./client.js";
export { type Badge, type Comment, commentFromJson, NotAComment } from "./comment.js";
export { type Cursor, cursorFor, encodeCursor, parseCursor } from "./cursor.js";
export { ChorusClientError } from "./errors.js";
export { decodeFrame, frameFromJson, KNOWN_FRAMES, MalformedFrame, type Other,
  type ServerFrame } from "./frames.js";
export { compareIds, idNode, idTimeMs, isId } from "./ids.js";
export { type Directory, nextRegion, parseDirectory, rank, type RegionInfo } from "./regions.js";
export { type Gap, Timeline } from "./timeline.js";
export { type TransportKind } from "./transports.js";
