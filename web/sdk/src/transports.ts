/**
 * The three live transports as thin adapters: each opens one connection to one gateway,
 * hands every server frame to the client in order, and reports once how it ended. They know
 * nothing of resume, failover or timelines (client.ts does).
 *
 * - WebSocket: the protocol's frames as they are; `ping` frames measure the round trip.
 * - SSE (EventSource): each event's name is the frame type and its data the frame. The
 *   browser's own reconnect is not used: the client resumes with its cursor, in order, and
 *   may move to another region instead.
 * - long-poll (fetch): each answer becomes the frames a WebSocket would have sent.
 */

import { decodeFrame, frameFromJson, KNOWN_FRAMES, MalformedFrame, type ServerFrame } from "./frames.js";

export type TransportKind = "ws" | "sse" | "poll";

export interface LinkEvents {
  /** The connection is up (a WebSocket opened, an event stream started, a poll answered). */
  opened(): void;
  frame(frame: ServerFrame): void;
  malformed(err: MalformedFrame): void;
  /** Once, at the end; `refused`: the gateway turned the client away for good (401/403). */
  ended(reason: string, refused: boolean): void;
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

/** Frame types an event stream may carry beyond the known ones: EventSource delivers only
 * the event names it listens to, so a future frame type needs its name here to be seen. */
export const ANTICIPATED_EVENTS = ["reactions", "tier", "retract", "restore", "pin", "snapshot"];

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
  const end = (reason: string): void => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    events.ended(reason, false);
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
  ws.onclose = (ev: CloseEvent) => end(`WebSocket closed (${ev.code}${ev.reason ? ` ${ev.reason}` : ""})`);
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
  for (const name of [...KNOWN_FRAMES, ...ANTICIPATED_EVENTS]) {
    es.addEventListener(name, onEvent as EventListener);
  }
  return { kind: "sse", send: () => false, close: () => end("closed by the client") };
}

/** Long-poll: the first answer (timeout 0 without a cursor) says where the stream is. */
export function openPoll(platform: Platform, base: string, stream: string, token: string,
                         cursor: string | null, region: string, events: LinkEvents,
                         timeoutS = 25): Link {
  const abort = new AbortController();
  let done = false;
  const end = (reason: string, refused = false): void => {
    if (done) return;
    done = true;
    abort.abort();
    events.ended(reason, refused);
  };
  const loop = async (): Promise<void> => {
    let at = cursor;
    let first = true;
    let pinnedId: string | null = null;
    while (!done) {
      const url = liveUrl(base, stream, "poll", { access_token: token, cursor: at,
        timeout: String(first && at === null ? 0 : timeoutS) });
      let body: Record<string, unknown>;
      try {
        const resp = await platform.fetch(url, { signal: abort.signal, cache: "no-store" });
        if (resp.status === 401 || resp.status === 403) {
          end(`long-poll answered ${resp.status}`, true);
          return;
        }
        if (resp.status !== 200) {
          end(`long-poll answered ${resp.status}`);
          return;
        }
        body = await resp.json() as Record<string, unknown>;
      } catch (err) {
        end(`long-poll failed: ${(err as Error).message}`);
        return;
      }
      if (done) return;
      if (typeof body["cursor"] !== "string" || !Array.isArray(body["items"])) {
        events.malformed(new MalformedFrame("poll", "an answer needs 'items' and 'cursor'"));
        end("long-poll answered something that is not a poll answer");
        return;
      }
      try {
        if (first) {
          events.opened();
          events.frame({ type: "hello", region, stream, epoch: "", cursor: at ?? body["cursor"],
            gateway: base });
        }
        if (typeof body["recovered"] === "boolean") {
          events.frame(frameFromJson({ type: "recovered", recovered: body["recovered"],
            cursor: body["cursor"] }));
        }
        if ((body["items"] as unknown[]).length > 0) {
          events.frame(frameFromJson({ type: "comments", items: body["items"], cursor: body["cursor"] }));
        }
        // Moderation rides on the answer (docs/protocol.md): the frames a WebSocket would send.
        if (Array.isArray(body["retracted"]) && body["retracted"].length > 0) {
          events.frame(frameFromJson({ type: "retract", stream, ids: body["retracted"] }));
        }
        if (Array.isArray(body["restored"])) {
          for (const comment of body["restored"] as unknown[]) {
            events.frame(frameFromJson({ type: "restore", stream, comment }));
          }
        }
        // Every answer carries the pin (absent: none): handed on when it changed.
        const pin = (body["pin"] ?? null) as Record<string, unknown> | null;
        const pinId = pin === null ? null : String(pin["id"]);
        if (pinId !== pinnedId) {
          pinnedId = pinId;
          events.frame(frameFromJson({ type: "pin", stream, comment: pin }));
        }
      } catch (err) {
        if (err instanceof MalformedFrame) events.malformed(err);
        else throw err;
      }
      at = body["cursor"];
      first = false;
    }
  };
  void loop();
  return { kind: "poll", send: () => false, close: () => end("closed by the client") };
}
