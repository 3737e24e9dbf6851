/** The comment as it travels (chorus/model.py), checked at the edge. Pure. */

export type Badge = "host" | "moderator" | "verified" | "";
const BADGES: readonly string[] = ["host", "moderator", "verified", ""];

export interface Comment {
  readonly id: string;
  readonly stream: string;
  /** The region it was posted in. */
  readonly region: string;
  readonly user: string;
  /** Display name: untrusted text, render it as text. */
  readonly name: string;
  /** Untrusted text: render it as text, never as HTML. */
  readonly text: string;
  /** The origin's wall clock, ms since the epoch. */
  readonly ts: number;
  readonly reply_to: string | null;
  readonly badge: Badge;
  /** A shadow-banned author's comment: only its author receives it. */
  readonly shadow: boolean;
}

/** Thrown for a value that is not a comment; `reason` names the field. */
export class NotAComment extends Error {
  constructor(readonly reason: string) {
    super(`not a comment: ${reason}`);
    this.name = "NotAComment";
  }
}

function field<T>(doc: Record<string, unknown>, key: string, check: (v: unknown) => v is T,
                  what: string): T {
  if (!(key in doc)) throw new NotAComment(`'${key}' is missing`);
  const value = doc[key];
  if (!check(value)) throw new NotAComment(`'${key}' is not ${what}`);
  return value;
}

const isString = (v: unknown): v is string => typeof v === "string";
const isInt = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v);

/** A decoded JSON value as a comment; fields this client does not know are ignored. */
export function commentFromJson(value: unknown): Comment {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new NotAComment("a comment is a JSON object");
  }
  const doc = value as Record<string, unknown>;
  const badge = doc["badge"] ?? "";
  if (typeof badge !== "string" || !BADGES.includes(badge)) {
    throw new NotAComment(`unknown badge ${JSON.stringify(badge)}`);
  }
  const replyTo = doc["reply_to"] ?? null;
  if (replyTo !== null && typeof replyTo !== "string") {
    throw new NotAComment("'reply_to' is not a string or null");
  }
  const shadow = doc["shadow"] ?? false;
  if (typeof shadow !== "boolean") throw new NotAComment("'shadow' is not true or false");
  return {
    id: field(doc, "id", isString, "a string"),
    stream: field(doc, "stream", isString, "a string"),
    region: field(doc, "region", isString, "a string"),
    user: field(doc, "user", isString, "a string"),
    name: field(doc, "name", isString, "a string"),
    text: field(doc, "text", isString, "a string"),
    ts: field(doc, "ts", isInt, "an integer"),
    reply_to: replyTo,
    badge: badge as Badge,
    shadow,
  };
}
