/**
 * The frames a client receives (docs/protocol.md, "Server to client"), decoded from JSON
 * here and nowhere else. Pure; the same rules as the Python SDK's chorus/sdk/frames.py, and
 * both are held to tests/vectors/frames.json.
 *
 * Decoding is forward compatible: a frame type this client does not know (reactions, tiers,
 * retractions, pins, as the server grows them) decodes to an `Other` frame that carries the
 * raw object, so an application may render it, and the client never waits for one. A field
 * it does not know is ignored. A frame of a known type with a missing or mistyped field
 * throws `MalformedFrame`: a server bug, counted and skipped, never read as something else.
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
  cursor: string; gateway: string }
export interface Comments { type: "comments"; items: Comment[]; cursor: string }
export interface Recovered { type: "recovered"; recovered: boolean; cursor: string;
  reason: string }
export interface Viewers { type: "viewers"; count: number }
export interface Ack { type: "ack"; comment: Comment; ref: string | null; duplicate: boolean }
export interface Pong { type: "pong"; ref: string | null }
export interface ErrorFrame { type: "error"; code: string; message: string; retryable: boolean;
  ref: string | null }
export interface Bye { type: "bye"; reason: string; cursor: string; regions: string[];
  retry_in_ms: number }
/** A frame type this client does not know: `name` is its type, `doc` the whole object. */
export interface Other { type: "other"; name: string; doc: Readonly<Record<string, unknown>> }

export type ServerFrame = Hello | Comments | Recovered | Viewers | Ack | Pong | ErrorFrame | Bye
  | Other;

/** The frame types this client decodes; every other type is `Other`. */
export const KNOWN_FRAMES = ["hello", "comments", "recovered", "viewers", "ack", "pong", "error",
  "bye"] as const;

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
  if (typeof value !== "object" || value === null || Array.isArray(value)
      || typeof (value as Record<string, unknown>)["type"] !== "string") {
    throw new MalformedFrame("", "a frame is a JSON object with a string 'type'");
  }
  const doc = value as Record<string, unknown>;
  const f = new Fields(doc);
  switch (f.kind) {
    case "hello":
      return { type: "hello", region: f.text("region"), stream: f.text("stream"),
        epoch: f.text("epoch"), cursor: f.text("cursor"), gateway: f.text("gateway") };
    case "comments":
      return { type: "comments", items: f.comments("items"), cursor: f.text("cursor") };
    case "recovered":
      return { type: "recovered", recovered: f.flag("recovered"), cursor: f.text("cursor"),
        reason: f.text("reason", "") };
    case "viewers":
      return { type: "viewers", count: f.int("count") };
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
    default:
      return { type: "other", name: f.kind, doc };
  }
}

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
    if (typeof value !== "number" || !Number.isInteger(value)) throw this.wrong(key, "an integer");
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
