/**
 * The three live transports as thin adapters: each opens one connection to one gateway,
 * hands every server frame to the client in order, and reports once how it ended. They know
 * nothing of resume, failover or timelines (client.ts does).
 *
 * - WebSocket: the protocol's frames as they are; `ping` frames measure the round trip.
 * - SSE (EventSource): each event's name is the frame type and its data the frame. The
 *   browser's own reconnect is not used: the client resumes with its cursor, in order, and
 *   may move to another region instead.
 * - long-poll (fetch): each answer becomes the frames a WebSocket would have sent
 *   (`PollAnswers`, pure); in the snapshot tier it also fetches the stream's document, as
 *   often as the server rewrites it, since a poll carries no `snapshot` frame.
 */

import { decodeFrame, frameFromJson, KNOWN_FRAMES, MalformedFrame, type ServerFrame,
  type Tier } from "./frames.js";
import { retryAfterMs } from "./reconnect.js";

export type TransportKind = "ws" | "sse" | "poll";

export interface LinkEvents {
  /** The connection is up (a WebSocket opened, an event stream started, a poll answered). */
  opened(): void;
  frame(frame: ServerFrame): void;
  malformed(err: MalformedFrame): void;
  /** Once, at the end; `refused`: the gateway turned the client away for good (401/403);
   * `how`: what the server said of the end, for the wait before the next attempt
   * (reconnect.ts). */
  ended(reason: string, refused: boolean, how?: Ending): void;
}

/** How a connection ended, as far as the server said: a WebSocket's close code, an HTTP
 * refusal's Retry-After (ms). */
export interface Ending {
  closeCode?: number;
  retryAfterMs?: number;
}

export interface Link {
  readonly kind: TransportKind;
  /** Sends a client frame when the transport can (WebSocket only); false otherwise. */
  send(frame: Record<string, unknown>): boolean;
  close(): void;
}

export interface Platform {
  fetch: typeof fetch;
  WebSocket?: typeof WebSocket;
  EventSource?: typeof EventSource;
}

/** How long a connection may take to open before it counts as failed, ms. */
export const OPEN_TIMEOUT_MS = 5000;

export function liveUrl(base: string, stream: string, path: "live" | "events" | "poll",
                        params: Record<string, string | null>): string {
  const url = new URL(`${base.replace(/\/$/, "")}/v1/streams/${encodeURIComponent(stream)}/${path}`);
  for (const [key, value] of Object.entries(params)) {
    if (value !== null) url.searchParams.set(key, value);
  }
  if (path === "live") url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.toString();
}

export function openWebSocket(platform: Platform, base: string, stream: string, token: string,
                              cursor: string | null, events: LinkEvents): Link {
  const Impl = platform.WebSocket;
  if (Impl === undefined) {
    queueMicrotask(() => events.ended("no WebSocket in this environment", false));
    return { kind: "ws", send: () => false, close: () => undefined };
  }
  const ws = new Impl(liveUrl(base, stream, "live", { access_token: token, cursor }));
  let open = false;
  let done = false;
  const end = (reason: string, how: Ending = {}): void => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    events.ended(reason, false, how);
  };
  const timer = setTimeout(() => {
    if (!open) {
      ws.close();
      end("the WebSocket did not open in time");
    }
  }, OPEN_TIMEOUT_MS);
  ws.onopen = () => {
    open = true;
    clearTimeout(timer);
    events.opened();
  };
  ws.onmessage = (msg: MessageEvent) => {
    if (done || typeof msg.data !== "string") return;
    try {
      events.frame(decodeFrame(msg.data));
    } catch (err) {
      if (err instanceof MalformedFrame) events.malformed(err);
      else throw err;
    }
  };
  ws.onclose = (ev: CloseEvent) => end(`WebSocket closed (${ev.code}${ev.reason ? ` ${ev.reason}` : ""})`,
    { closeCode: ev.code });
  ws.onerror = () => undefined; // a close event follows, with the code
  return {
    kind: "ws",
    send(frame) {
      if (ws.readyState !== 1) return false;
      ws.send(JSON.stringify(frame));
      return true;
    },
    close() {
      ws.close(1000);
      end("closed by the client");
    },
  };
}

export function openEventSource(platform: Platform, base: string, stream: string, token: string,
                                cursor: string | null, events: LinkEvents): Link {
  const Impl = platform.EventSource;
  if (Impl === undefined) {
    queueMicrotask(() => events.ended("no EventSource in this environment", false));
    return { kind: "sse", send: () => false, close: () => undefined };
  }
  const es = new Impl(liveUrl(base, stream, "events", { access_token: token, cursor }));
  let done = false;
  let open = false;
  const end = (reason: string): void => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    es.close();
    events.ended(reason, false);
  };
  const timer = setTimeout(() => {
    if (!open) end("the event stream did not open in time");
  }, OPEN_TIMEOUT_MS);
  es.onopen = () => {
    open = true;
    clearTimeout(timer);
    events.opened();
  };
  // The browser would reconnect by itself with Last-Event-ID; the client resumes instead.
  es.onerror = () => end("the event stream ended");
  const onEvent = (ev: MessageEvent): void => {
    if (done) return;
    try {
      events.frame(decodeFrame(String(ev.data)));
    } catch (err) {
      if (err instanceof MalformedFrame) events.malformed(err);
      else throw err;
    }
  };
  // EventSource delivers only the event names it listens to: those of every known frame.
  for (const name of KNOWN_FRAMES) {
    es.addEventListener(name, onEvent as EventListener);
  }
  return { kind: "sse", send: () => false, close: () => end("closed by the client") };
}

/**
 * Long-poll answers as frames (docs/protocol.md, "Long-poll"). Pure. An answer is
 * `{items, cursor, recovered?}` and, each absent when empty: `retracted`, `restored`, `pin`,
 * `viewers`, `reactions`, and while the stream is above push `tier` (the `tier` frame's
 * fields but `type` and `cursor`) and `sample` (of the last batch). The first answer starts
 * with the `hello` a poll never gets; a tier is announced when it first shows or changes,
 * and its going back to push (no `tier` any more) as a `tier` frame of push.
 */
export class PollAnswers {
  private first = true;
  private pinnedId: string | null = null;
  private tierSeen: string | null = null;
  /** The tier the last answer told (null: push). */
  tier: Tier | null = null;

  constructor(readonly stream: string, readonly region: string, readonly gateway: string) {}

  /** How long the next poll may wait, s: `longest`, or in the snapshot tier the document's
   * interval, so that the page's snapshot is as fresh as the server's. */
  waitS(longest: number): number {
    if (this.tier?.tier !== "snapshot") return longest;
    return Math.min(longest, Math.max(1, Math.round(this.tier.interval_s ?? 1)));
  }

  /** The frames of one answer to a poll from `at` (null: the first, from the head), and
   * the parts of it that were malformed (skipped, as a WebSocket's malformed frames are).
   * Throws `MalformedFrame` for an answer that is not one. */
  read(body: unknown, at: string | null): { frames: ServerFrame[]; malformed: MalformedFrame[] } {
    if (typeof body !== "object" || body === null || typeof (body as Record<string, unknown>)["cursor"] !== "string"
        || !Array.isArray((body as Record<string, unknown>)["items"])) {
      throw new MalformedFrame("poll", "an answer needs 'items' and 'cursor'");
    }
    const doc = body as Record<string, unknown>;
    const cursor = doc["cursor"] as string;
    const items = doc["items"] as unknown[];
    const frames: ServerFrame[] = [];
    const malformed: MalformedFrame[] = [];
    const part = (value: Record<string, unknown>): ServerFrame | null => {
      try {
        const frame = frameFromJson(value);
        frames.push(frame);
        return frame;
      } catch (err) {
        if (!(err instanceof MalformedFrame)) throw err;
        malformed.push(err);
        return null;
      }
    };
    const pin = doc["pin"] ?? null;
    const pinId = isRecord(pin) && typeof pin["id"] === "string" ? pin["id"] : null;
    if (this.first) {
      part({ type: "hello", region: this.region, stream: this.stream,
        epoch: "", cursor: at ?? cursor, gateway: this.gateway, pin });
      this.pinnedId = pinId;
    }
    const tier = doc["tier"] ?? null;
    const tierText = tier === null ? null : JSON.stringify(tier);
    if (tierText !== this.tierSeen && (tierText !== null || !this.first)) {
      const announced = tier === null ? { tier: "push" } : tier;
      if (isRecord(announced)) {
        const frame = part({ ...announced, type: "tier", cursor });
        this.tier = frame?.type === "tier" && frame.tier !== "push" ? frame : null;
      } else {
        malformed.push(new MalformedFrame("tier", "a poll's 'tier' is not an object"));
      }
    }
    this.tierSeen = tierText;
    if (typeof doc["recovered"] === "boolean") {
      part({ type: "recovered", recovered: doc["recovered"], cursor });
    }
    const sample = doc["sample"] ?? null;
    if (items.length > 0 || sample !== null || (at !== null && cursor !== at)) {
      part({ type: "comments", items, cursor, sample });
    }
    // Moderation rides on every answer: the frames a WebSocket would have sent.
    if (Array.isArray(doc["retracted"]) && doc["retracted"].length > 0) {
      part({ type: "retract", stream: this.stream, ids: doc["retracted"] });
    }
    if (Array.isArray(doc["restored"])) {
      for (const comment of doc["restored"] as unknown[]) {
        part({ type: "restore", stream: this.stream, comment });
      }
    }
    if (pinId !== this.pinnedId) {
      this.pinnedId = pinId;
      part({ type: "pin", stream: this.stream, comment: pin });
    }
    for (const key of ["viewers", "reactions"]) {
      const counts = doc[key];
      if (isRecord(counts)) part({ ...counts, type: key });
    }
    this.first = false;
    return { frames, malformed };
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Long-poll: the first answer (timeout 0 without a cursor) says where the stream is. */
export function openPoll(platform: Platform, base: string, stream: string, token: string,
                         cursor: string | null, region: string, events: LinkEvents,
                         timeoutS = 25): Link {
  const abort = new AbortController();
  let done = false;
  const end = (reason: string, refused = false, how: Ending = {}): void => {
    if (done) return;
    done = true;
    abort.abort();
    events.ended(reason, refused, how);
  };
  const answers = new PollAnswers(stream, region, base);
  let etag = "";
  /** The snapshot tier's document, when it changed since the last one (none on failure:
   * the next answer asks again). */
  const snapshot = async (tier: Tier): Promise<void> => {
    if (tier.snapshot_url === null) return;
    try {
      const resp = await platform.fetch(new URL(tier.snapshot_url, base).toString(), {
        signal: abort.signal, cache: "no-store", headers: etag ? { "If-None-Match": etag } : {} });
      if (resp.status !== 200 || done) return;
      const doc = await resp.json() as unknown;
      if (!isRecord(doc)) throw new MalformedFrame("snapshot", "the document is not an object");
      const tag = resp.headers.get("ETag") ?? "";
      events.frame(frameFromJson({ ...doc, etag: tag, type: "snapshot" }));
      etag = tag;
    } catch (err) {
      if (err instanceof MalformedFrame) events.malformed(err);
    }
  };
  const loop = async (): Promise<void> => {
    let at = cursor;
    let first = true;
    while (!done) {
      const url = liveUrl(base, stream, "poll", { access_token: token, cursor: at,
        timeout: String(first && at === null ? 0 : answers.waitS(timeoutS)) });
      let body: unknown;
      try {
        const resp = await platform.fetch(url, { signal: abort.signal, cache: "no-store" });
        if (resp.status === 401 || resp.status === 403) {
          end(`long-poll answered ${resp.status}`, true);
          return;
        }
        if (resp.status !== 200) {
          // A refusal may say when to come back (429 at a connection cap, 503 at the
          // gateway's limit): the next attempt waits at least that long.
          const hint = resp.headers.get("Retry-After");
          end(`long-poll answered ${resp.status}`, false,
            hint === null ? {} : { retryAfterMs: retryAfterMs(hint) });
          return;
        }
        body = await resp.json();
      } catch (err) {
        end(`long-poll failed: ${(err as Error).message}`);
        return;
      }
      if (done) return;
      let answer: ReturnType<PollAnswers["read"]>;
      try {
        answer = answers.read(body, at);
      } catch (err) {
        if (!(err instanceof MalformedFrame)) throw err;
        events.malformed(err);
        end("long-poll answered something that is not a poll answer");
        return;
      }
      if (first) events.opened();
      for (const frame of answer.frames) events.frame(frame);
      for (const err of answer.malformed) events.malformed(err);
      if (answers.tier?.tier === "snapshot") await snapshot(answers.tier);
      at = (body as { cursor: string }).cursor;
      first = false;
    }
  };
  void loop();
  return { kind: "poll", send: () => false, close: () => end("closed by the client") };
}
