/**
 * The frames a client receives (docs/protocol.md, "Server to client"), decoded from JSON
 * here and nowhere else. Pure; the same rules as the Python SDK's chorus/sdk/frames.py, and
 * both are held to tests/vectors/frames.json.
 *
 * Decoding is forward compatible: a frame type this client does not know (one a later
 * server grows) decodes to an `Other` frame that carries the raw object, so an application
 * may render it, and the client never waits for one. A field it does not know is ignored. A
 * frame of a known type with a missing or mistyped field throws `MalformedFrame`: a server
 * bug, counted and skipped, never read as something else. Every type the Python SDK decodes
 * is decoded here, field for field (names as on the wire), so the vectors can hold both to
 * one expected value.
 */

import { type Comment, commentFromJson, NotAComment } from "./comment.js";

export class MalformedFrame extends Error {
  /** `kind` is the frame's type ("" when it has none). */
  constructor(readonly kind: string, readonly reason: string) {
    super(`malformed ${kind || "server"} frame: ${reason}`);
    this.name = "MalformedFrame";
  }
}

export interface Hello { type: "hello"; region: string; stream: string; epoch: string;
  cursor: string; gateway: string;
  /** The stream's pinned comment when the connection opened (null: none). */
  pin: Comment | null }
/** What a batch of a sampled stream stands for: in the last second `shown` comments went to
 * every viewer, of `posted` ("showing n of m"). */
export interface Sample { shown: number; posted: number }
/** A batch in the region's order, oldest first; keep `cursor`. `sample`: set while the
 * stream is sampled (or in snapshot); such a batch may carry no item and only move the
 * cursor past what the sample left out, which is no gap. */
export interface Comments { type: "comments"; items: Comment[]; cursor: string;
  sample: Sample | null }
export interface Recovered { type: "recovered"; recovered: boolean; cursor: string;
  reason: string }
/** Viewers of the stream: `count` in the connection's region, `total` in every region and
 * `regions` per region (a region not heard from is left out). A server that tells only its
 * region's count sends no `regions` (`total` is then 0). */
export interface Viewers { type: "viewers"; count: number; total: number;
  regions: Record<string, number> }
/** About once a second while the stream has reactions: `counts` per kind that arrived since
 * the previous frame (`second`: the newest second among them, seconds since the epoch) and
 * the stream's `totals` over every region. */
export interface Reactions { type: "reactions"; second: number; counts: Record<string, number>;
  totals: Record<string, number> }
export interface Ack { type: "ack"; comment: Comment; ref: string | null; duplicate: boolean }
export interface Pong { type: "pong"; ref: string | null }
export interface ErrorFrame { type: "error"; code: string; message: string; retryable: boolean;
  ref: string | null }
export interface Bye { type: "bye"; reason: string; cursor: string; regions: string[];
  retry_in_ms: number }
/** Comments taken down (by their author, a moderator or the classifier): remove them, and
 * keep a later copy out. Also sent after a resume for the stream's latest ones. */
export interface Retract { type: "retract"; stream: string; ids: string[] }
/** A comment taken down that a moderator approved: show it again, in its place by id. */
export interface Restore { type: "restore"; stream: string; comment: Comment }
/** The stream's pinned comment changed; `comment` null: unpinned. */
export interface Pin { type: "pin"; stream: string; comment: Comment | null }
/** How the server delivers the stream from here. */
export type TierName = "push" | "sampled" | "snapshot";
/** The stream's tier changed, or (right after `hello`) it is not push: `push` (every
 * comment), `sampled` (at most `per_viewer_per_s` a second, the priority lane and one's own
 * on top) or `snapshot` (the document at `snapshot_url`, rewritten every `interval_s`, also
 * sent as `snapshot` frames). `cursor` is the cursor from here: a tier change is no gap.
 * `tier` is a string as the Python SDK reads it: a tier a later server adds still decodes
 * (a client treats any tier but push as a sample). */
export interface Tier { type: "tier"; tier: TierName | (string & Record<never, never>);
  cursor: string; per_viewer_per_s: number | null; snapshot_url: string | null;
  interval_s: number | null }
/** A stream in the snapshot tier as its region rendered it: a sample of its recent
 * `comments` and its recent `priority` lane (oldest first), `viewers` in every region,
 * comments a second in every region (`rate_per_s`) and `posted` in the region in the last
 * `interval_s`; `etag` identifies the document. */
export interface Snapshot { type: "snapshot"; stream: string; region: string; at_ms: number;
  interval_s: number; viewers: number; rate_per_s: number; posted: number;
  comments: Comment[]; priority: Comment[]; etag: string }
/** A frame type this client does not know: `name` is its type, `doc` the whole object. */
export interface Other { type: "other"; name: string; doc: Readonly<Record<string, unknown>> }

export type ServerFrame = Hello | Comments | Recovered | Viewers | Reactions | Ack | Pong
  | ErrorFrame | Bye | Retract | Restore | Pin | Tier | Snapshot | Other;

/** The frame types this client decodes (chorus/sdk/frames.py's); every other type is
 * `Other`. */
export const KNOWN_FRAMES = ["hello", "comments", "recovered", "viewers", "reactions", "ack",
  "pong", "error", "bye", "retract", "restore", "pin", "tier", "snapshot"] as const;

/** One frame's JSON text. */
export function decodeFrame(text: string): ServerFrame {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new MalformedFrame("", `not JSON (${(err as Error).message})`);
  }
  return frameFromJson(doc);
}

/** A decoded JSON value as a frame; see `decodeFrame`. */
export function frameFromJson(value: unknown): ServerFrame {
  if (!isObject(value) || typeof value["type"] !== "string") {
    throw new MalformedFrame("", "a frame is a JSON object with a string 'type'");
  }
  const doc = value;
  const f = new Fields(doc);
  switch (f.kind) {
    case "hello":
      return { type: "hello", region: f.text("region"), stream: f.text("stream"),
        epoch: f.text("epoch"), cursor: f.text("cursor"), gateway: f.text("gateway"),
        pin: f.optionalComment("pin") };
    case "comments":
      return { type: "comments", items: f.comments("items"), cursor: f.text("cursor"),
        sample: f.sample("sample") };
    case "recovered":
      return { type: "recovered", recovered: f.flag("recovered"), cursor: f.text("cursor"),
        reason: f.text("reason", "") };
    case "viewers": {
      const regions = f.counts("regions");
      return { type: "viewers", count: f.int("count"),
        total: Object.keys(regions).length > 0 ? f.int("total", 0) : 0, regions };
    }
    case "reactions":
      return { type: "reactions", second: f.int("second"), counts: f.counts("counts"),
        totals: f.counts("totals") };
    case "ack":
      return { type: "ack", comment: f.comment("comment"), ref: f.ref(),
        duplicate: f.flag("duplicate", false) };
    case "pong":
      return { type: "pong", ref: f.ref() };
    case "error":
      return { type: "error", code: f.text("code"), message: f.text("message"),
        retryable: f.flag("retryable", false), ref: f.ref() };
    case "bye":
      return { type: "bye", reason: f.text("reason"), cursor: f.text("cursor"),
        regions: f.strings("regions"), retry_in_ms: f.int("retry_in_ms", 0) };
    case "retract":
      return { type: "retract", stream: f.text("stream"), ids: f.strings("ids") };
    case "restore":
      return { type: "restore", stream: f.text("stream"), comment: f.comment("comment") };
    case "pin":
      return { type: "pin", stream: f.text("stream"), comment: f.optionalComment("comment") };
    case "tier":
      return { type: "tier", tier: f.text("tier"), cursor: f.text("cursor"),
        per_viewer_per_s: f.optionalInt("per_viewer_per_s"),
        snapshot_url: f.optionalText("snapshot_url"), interval_s: f.optionalSeconds("interval_s") };
    case "snapshot":
      return { type: "snapshot", stream: f.text("stream"), region: f.text("region"),
        at_ms: f.int("at_ms"), interval_s: f.optionalSeconds("interval_s") ?? 0,
        viewers: f.int("viewers"), rate_per_s: f.int("rate_per_s"), posted: f.int("posted"),
        comments: f.comments("comments"), priority: f.comments("priority"),
        etag: f.text("etag", "") };
    default:
      return { type: "other", name: f.kind, doc };
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

const isInt = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v);

const REQUIRED = Symbol("required");
type Default<T> = T | typeof REQUIRED;

/** Typed reads of one frame's fields; every failure names the frame and the field. */
class Fields {
  readonly kind: string;

  constructor(private readonly doc: Record<string, unknown>) {
    this.kind = doc["type"] as string;
  }

  private get(key: string, fallback: Default<unknown>): unknown {
    if (key in this.doc) return this.doc[key];
    if (fallback === REQUIRED) throw new MalformedFrame(this.kind, `'${key}' is missing`);
    return fallback;
  }

  private wrong(key: string, what: string): MalformedFrame {
    const shown = JSON.stringify(this.doc[key]) ?? String(this.doc[key]);
    return new MalformedFrame(this.kind, `'${key}' is not ${what}: ${shown.slice(0, 80)}`);
  }

  text(key: string, fallback: Default<string> = REQUIRED): string {
    const value = this.get(key, fallback);
    if (typeof value !== "string") throw this.wrong(key, "a string");
    return value;
  }

  flag(key: string, fallback: Default<boolean> = REQUIRED): boolean {
    const value = this.get(key, fallback);
    if (typeof value !== "boolean") throw this.wrong(key, "true or false");
    return value;
  }

  int(key: string, fallback: Default<number> = REQUIRED): number {
    const value = this.get(key, fallback);
    if (!isInt(value)) throw this.wrong(key, "an integer");
    return value;
  }

  strings(key: string): string[] {
    const value = this.get(key, []);
    if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
      throw this.wrong(key, "a list of strings");
    }
    return value as string[];
  }

  ref(): string | null {
    const value = this.get("ref", null);
    if (value !== null && typeof value !== "string") throw this.wrong("ref", "a string or null");
    return value;
  }

  counts(key: string): Record<string, number> {
    const value = this.get(key, {});
    if (!isObject(value) || !Object.values(value).every((n) => isInt(n) && n >= 0)) {
      throw this.wrong(key, "an object of counts");
    }
    // Sorted by name, as the Python SDK keeps them: the same object whatever the server's order.
    return Object.fromEntries(Object.entries(value as Record<string, number>)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  }

  optionalInt(key: string): number | null {
    return this.get(key, null) === null ? null : this.int(key);
  }

  optionalText(key: string): string | null {
    return this.get(key, null) === null ? null : this.text(key);
  }

  optionalSeconds(key: string): number | null {
    const value = this.get(key, null);
    if (value === null) return null;
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
      throw this.wrong(key, "a number of seconds");
    }
    return value;
  }

  sample(key: string): Sample | null {
    const value = this.get(key, null);
    if (value === null) return null;
    if (!isObject(value)) throw this.wrong(key, "an object with 'shown' and 'posted'");
    const inner = new Fields({ ...value, type: this.kind });
    const shown = inner.int("shown");
    const posted = inner.int("posted");
    if (shown < 0 || posted < 0) throw this.wrong(key, "an object of two counts");
    return { shown, posted };
  }

  optionalComment(key: string): Comment | null {
    return this.get(key, null) === null ? null : this.comment(key);
  }

  comment(key: string): Comment {
    try {
      return commentFromJson(this.get(key, REQUIRED));
    } catch (err) {
      if (err instanceof NotAComment) throw new MalformedFrame(this.kind, `'${key}': ${err.message}`);
      throw err;
    }
  }

  comments(key: string): Comment[] {
    const value = this.get(key, REQUIRED);
    if (!Array.isArray(value)) throw this.wrong(key, "a list of comments");
    try {
      return value.map(commentFromJson);
    } catch (err) {
      if (err instanceof NotAComment) throw new MalformedFrame(this.kind, `'${key}': ${err.message}`);
      throw err;
    }
  }
}
