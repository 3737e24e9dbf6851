/**
 * The browser client: watch a stream and post to it from the nearest healthy region, with
 * the semantics of the Python SDK (chorus/sdk).
 *
 *     const client = new ChorusClient({ seeds: [location.origin], token, stream: "match-42" });
 *     client.on("comment", (c) => render(c));          // new in the timeline, any order
 *     await client.start();
 *     await client.post("what a goal!");              // retried with one client_key
 *
 * What it does for the application:
 * - discovers the regions from any seed gateway (`/v1/regions`) and ranks the healthy ones
 *   by measured round trip (`/healthz`), the preferred region first;
 * - watches over WebSocket, falling back to SSE and then long-poll where a WebSocket never
 *   opens (a proxy that blocks upgrades);
 * - resumes with its cursor after a disconnect, backing off with jitter (backoff.ts), never
 *   sooner than the server asked (reconnect.ts);
 * - fails over after `failoverAfter` failed attempts in a row to the next healthy region (an
 *   attempt that ended before the server's `hello` failed too),
 *   where its cursor does not apply: it joins at the head and fills what it may have missed
 *   from that region's history, by comment id and time;
 * - keeps a `Timeline`: each comment once, in id order, and an explicit `Gap` where history
 *   could not fill a hole;
 * - measures the round trip to its gateway (WebSocket ping/pong, else `/healthz`);
 * - takes retracted comments out of the timeline, keeps a later copy of one out, and puts
 *   one back when a moderator approves it (`retract` and `restore`);
 * - follows a hot stream's tier without the application changing anything (view.ts): the
 *   cursor of a `tier` frame is kept, a sampled batch moves the cursor and says what it
 *   stands for (`sample`: "showing n of m"), which is no gap, and a snapshot's comments join
 *   the timeline, each once; `tier`, `sample` and `snapshot` events tell the application.
 * Every frame type of the protocol is decoded (frames.ts); one this client does not know
 * arrives as an `other` event and is never waited for.
 */

import { Backoff } from "./backoff.js";
import { type Comment, commentFromJson } from "./comment.js";
import { cursorFor } from "./cursor.js";
import { ChorusClientError } from "./errors.js";
import type { MalformedFrame, Other, Reactions, Sample, ServerFrame, Snapshot, Tier,
  Viewers } from "./frames.js";
import { idTimeMs, isId } from "./ids.js";
import { type Directory, Failback, nextRegion, parseDirectory, rank, type RegionInfo } from "./regions.js";
import type { Gap, Timeline } from "./timeline.js";
import { Attempt, retryAfterMs, waitAfter } from "./reconnect.js";
import { type Ending, type Link, type LinkEvents, openEventSource, openPoll, openWebSocket, type Platform,
  type TransportKind } from "./transports.js";
import { StreamView } from "./view.js";

/** Comments of other regions reach a log up to this much out of order, ms. */
export const REORDER_WINDOW_MS = 5000;
export const HISTORY_PAGE = 200;
export const HISTORY_MAX_PAGES = 20;
/** A WebSocket that has not answered this many pings in a row is taken for dead. */
export const PINGS_UNANSWERED_MAX = 3;
const REQUEST_TIMEOUT_MS = 5000;

export type State = "idle" | "connecting" | "live" | "reconnecting" | "closed";

export interface ClientOptions {
  /** Gateway base URLs to discover the regions from (a page: `[location.origin]`). */
  seeds: string[];
  token: string;
  stream: string;
  /** The region to use first while healthy; `"seed"`: the region of the answering seed. */
  prefer?: string | null;
  transport?: "auto" | TransportKind;
  /** Failed connection attempts in a row before moving to another region (default 3); an
   * attempt that ended before the server's `hello` failed. */
  failoverAfter?: number;
  /** Ceiling of the reconnect and post backoff, ms (default 5000). */
  backoffMaxMs?: number;
  /** While failed over, how often the home region (the one ranked first) is checked, ms
   * (default 10,000; 0: never go back). Two healthy checks in a row take the client home. */
  failbackEveryMs?: number;
  /** How often the round trip is measured, ms (default 2000; 0: never). */
  pingIntervalMs?: number;
  /** Comments kept (default 10,000); older ones fall off. */
  timelineLimit?: number;
  /** fetch, WebSocket and EventSource; the browser's by default. */
  platform?: Partial<Platform>;
}

export interface Connection {
  region: string;
  gateway: string;
  url: string;
  transport: TransportKind;
}

export interface ClientEvents {
  /** A comment new to the timeline (live, resumed or from history), in arrival order. */
  comment: (comment: Comment) => void;
  state: (state: State) => void;
  connected: (connection: Connection) => void;
  /** The client gave up on `from` and moves to `to`. */
  failover: (from: string, to: string) => void;
  /** The home region is healthy again: the client leaves `from` and goes back to `to`. */
  failback: (from: string, to: string) => void;
  /** The connection ended; the client resumes (`attempt` in a row, from 1). */
  reconnect: (attempt: number, reason: string) => void;
  /** Round trip to the gateway, ms. */
  latency: (ms: number) => void;
  /** Viewers of the stream: `count` in the connected region; `viewers` has every region's
   * (`total`, `regions`) when the server tells them. */
  viewers: (count: number, viewers: Viewers) => void;
  /** About once a second while the stream has reactions: the last second's and the totals. */
  reactions: (reactions: Reactions) => void;
  /** The stream's pinned comment, as it changes (null: none). */
  pin: (comment: Comment | null) => void;
  /** Comments taken down: out of the timeline (a page removes them too). */
  retract: (ids: string[]) => void;
  /** The stream is delivered in another tier from now on: `name` is push, sampled or
   * snapshot; `tier` the server's frame (null: push, by default). Announced, never a gap:
   * the client keeps its cursor and repeats nothing. */
  tier: (name: string, tier: Tier | null) => void;
  /** A batch of a sampled stream: it stands for `sample.shown` of `sample.posted` comments
   * posted in the last second ("showing n of m"). */
  sample: (sample: Sample) => void;
  /** A snapshot-tier stream's document (its comments joined the timeline already). */
  snapshot: (snapshot: Snapshot) => void;
  /** History could not fill a hole: comments after `gap.afterId` may be missing. */
  gap: (gap: Gap) => void;
  /** A frame type this client does not know (one a later server grows). */
  other: (frame: Other) => void;
  /** The gateway refused the token (401/403) or no region could be discovered. */
  error: (error: ChorusClientError) => void;
}

/** How one connection attempt went: `opened` (the transport works), `refused` (401/403: for
 * good), and what the server said of its end. Whether it connected is `Attempt.hello`. */
interface Outcome {
  opened: boolean;
  refused: boolean;
  reason: string;
  how: Ending;
}

type Listeners = { [K in keyof ClientEvents]: Set<ClientEvents[K]> };

export class ChorusClient {
  /** What the client holds of the stream: timeline, cursor, tier, sample, snapshot, pin,
   * counts (view.ts). */
  readonly view: StreamView;
  readonly stream: string;
  state: State = "idle";
  connection: Connection | null = null;
  regions: RegionInfo[] = [];
  failovers = 0;
  /** Returns to the home region after a failover. */
  failbacks = 0;
  reconnects = 0;
  malformedFrames = 0;
  latencyMs: number | null = null;
  /** How long the watch loop waits before its next attempt, ms (0: it is not waiting). */
  retryInMs = 0;

  private readonly options: Required<Omit<ClientOptions, "platform" | "prefer">>
    & { prefer: string | null };
  private readonly platform: Platform;
  private readonly listeners: Listeners = { comment: new Set(), state: new Set(),
    connected: new Set(), failover: new Set(), failback: new Set(), reconnect: new Set(),
    latency: new Set(),
    viewers: new Set(), reactions: new Set(), pin: new Set(), retract: new Set(),
    tier: new Set(), sample: new Set(), snapshot: new Set(), gap: new Set(), other: new Set(),
    error: new Set() };
  private link: Link | null = null;
  /** The connection attempt under way (reconnect.ts). */
  private attempt = new Attempt();
  private closed = false;
  /** The connection is being closed to go back home: no other transport is tried. */
  private leaving = false;
  private readonly sleepers = new Set<() => void>();
  private proven: TransportKind | null = null;
  private pingRef = 0;
  private pingsUnanswered = 0;
  private pingSent = new Map<string, number>();

  constructor(options: ClientOptions) {
    if (options.seeds.length === 0) throw new RangeError("give at least one seed gateway URL");
    this.options = { prefer: options.prefer ?? null, transport: options.transport ?? "auto",
      failoverAfter: options.failoverAfter ?? 3, backoffMaxMs: options.backoffMaxMs ?? 5000,
      failbackEveryMs: options.failbackEveryMs ?? 10_000,
      pingIntervalMs: options.pingIntervalMs ?? 2000, timelineLimit: options.timelineLimit ?? 10_000,
      seeds: options.seeds, token: options.token, stream: options.stream };
    this.stream = options.stream;
    this.view = new StreamView(this.options.timelineLimit);
    const g = globalThis as Partial<Platform>;
    this.platform = {
      fetch: options.platform?.fetch ?? g.fetch?.bind(globalThis) as typeof fetch,
      WebSocket: options.platform?.WebSocket ?? g.WebSocket,
      EventSource: options.platform?.EventSource ?? g.EventSource,
    };
  }

  get timeline(): Timeline {
    return this.view.timeline;
  }

  /** The region the client is in, and its cursor there (valid in that region only). */
  get region(): string | null {
    return this.view.region;
  }

  get cursor(): string | null {
    return this.view.cursor;
  }

  /** push, sampled or snapshot: how the stream is delivered now. */
  get tierName(): string {
    return this.view.tierName;
  }

  /** The last `tier` frame since the connection's hello (null: push). */
  get tier(): Tier | null {
    return this.view.tier;
  }

  /** What the last batch stood for (null: every comment). */
  get sample(): Sample | null {
    return this.view.sample;
  }

  get snapshot(): Snapshot | null {
    return this.view.snapshot;
  }

  get pin(): Comment | null {
    return this.view.pin;
  }

  on<K extends keyof ClientEvents>(event: K, listener: ClientEvents[K]): () => void {
    this.listeners[event].add(listener);
    return () => this.listeners[event].delete(listener);
  }

  private emit<K extends keyof ClientEvents>(event: K, ...args: Parameters<ClientEvents[K]>): void {
    for (const listener of this.listeners[event]) {
      (listener as (...a: Parameters<ClientEvents[K]>) => void)(...args);
    }
  }

  private setState(state: State): void {
    if (this.state === state) return;
    this.state = state;
    this.emit("state", state);
  }

  // -- lifecycle ---------------------------------------------------------------------------

  /** Discovers the regions and starts watching in the background; resolves once the
   * regions are known (not when connected: listen to `connected`). */
  async start(): Promise<void> {
    this.setState("connecting");
    let directory: Directory;
    try {
      directory = await this.discover();
    } catch (err) {
      const error = err instanceof ChorusClientError ? err
        : new ChorusClientError(0, "unavailable", String(err));
      this.emit("error", error);
      throw error;
    }
    const prefer = this.options.prefer === "seed" ? directory.answeredBy : this.options.prefer;
    this.regions = rank(await this.measure(directory.regions), prefer);
    void this.run();
    if (this.options.pingIntervalMs > 0) void this.pingLoop();
  }

  close(): void {
    this.closed = true;
    this.link?.close();
    this.link = null;
    for (const wake of [...this.sleepers]) wake();
    this.setState("closed");
  }

  // -- regions -----------------------------------------------------------------------------

  private async discover(): Promise<Directory> {
    const urls = [...this.options.seeds, ...this.regions.flatMap((r) => r.urls)];
    for (const url of urls) {
      try {
        const resp = await this.request(`${url}/v1/regions`, {});
        if (resp.status !== 200) continue;
        return parseDirectory(await resp.json());
      } catch {
        continue;
      }
    }
    throw new ChorusClientError(0, "unavailable", `no gateway of ${urls.join(", ")} answered`);
  }

  private async measure(regions: RegionInfo[]): Promise<RegionInfo[]> {
    return Promise.all(regions.map(async (region): Promise<RegionInfo> => {
      const began = performance.now();
      let ok = false;
      try {
        const resp = await this.request(`${region.urls[0]}/healthz`, {}, 2000);
        ok = resp.status === 200;
      } catch {
        ok = false;
      }
      return { ...region, healthy: region.healthy && ok,
        rttMs: ok ? performance.now() - began : Infinity };
    }));
  }

  private async request(url: string, init: RequestInit, timeoutMs = REQUEST_TIMEOUT_MS): Promise<Response> {
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    try {
      return await this.platform.fetch(url, { cache: "no-store", ...init, signal: abort.signal });
    } finally {
      clearTimeout(timer);
    }
  }

  // -- watching ----------------------------------------------------------------------------

  private async run(): Promise<void> {
    const home = this.regions[0] as RegionInfo;
    let region = home;
    let failures = 0;
    const backoff = new Backoff(Math.min(100, this.options.backoffMaxMs), this.options.backoffMaxMs);
    while (!this.closed) {
      const url = region.urls[Math.floor(Math.random() * region.urls.length)] as string;
      const attempt = this.attempt = new Attempt();
      const { outcome, wentHome } = await this.watchAway(region, url, home);
      if (this.closed) return;
      if (wentHome) {
        const from = region.name;
        region = this.regions.find((r) => r.name === home.name) ?? home;
        failures = 0;
        this.connection = null;
        this.reconnects += 1;
        this.failbacks += 1;
        this.setState("reconnecting");
        this.emit("failback", from, region.name);
        continue; // home is healthy: no reason to wait
      }
      if (outcome.refused) {
        this.emit("error", new ChorusClientError(401, "unauthenticated", outcome.reason));
        this.close();
        return;
      }
      if (outcome.how.closeCode !== undefined) attempt.closeCode = outcome.how.closeCode;
      if (outcome.how.retryAfterMs !== undefined) attempt.retryAfterMs = outcome.how.retryAfterMs;
      if (attempt.hello) {
        failures = 0; // a connection that worked, then ended
      } else {
        failures += 1; // never opened, refused, or closed before hello
      }
      this.connection = null;
      this.reconnects += 1;
      this.setState("reconnecting");
      this.emit("reconnect", failures + 1, outcome.reason);
      if (failures >= this.options.failoverAfter) {
        try {
          const directory = await this.discover();
          this.regions = rank(await this.measure(directory.regions), null);
        } catch {
          // keep the regions we knew: the one that answered us may be the one that is gone
        }
        const from = region.name;
        region = nextRegion(this.regions, region.name);
        this.failovers += 1;
        failures = 0;
        this.emit("failover", from, region.name);
      }
      this.retryInMs = waitAfter(attempt, backoff);
      await this.sleep(this.retryInMs); // pacing the retry (reconnect.ts)
      this.retryInMs = 0;
    }
  }

  /** Waits `ms` (pacing a retry, never synchronisation); `close` ends every wait at once. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.sleepers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.sleepers.add(wake);
    });
  }

  /** `watch`, and while away from `home` a check of it every `failbackEveryMs`: `wentHome`
   * when the connection was closed to go back (`Failback` decides). */
  private async watchAway(region: RegionInfo, url: string, home: RegionInfo
  ): Promise<{ outcome: Outcome; wentHome: boolean }> {
    const everyMs = this.options.failbackEveryMs;
    if (region.name === home.name || everyMs <= 0) {
      return { outcome: await this.watch(region, url), wentHome: false };
    }
    const rule = new Failback(home.name, everyMs);
    this.leaving = false;
    let ended = false;
    let wentHome = false;
    const watching = this.watch(region, url).then((outcome) => {
      ended = true;
      return outcome;
    });
    const checking = (async (): Promise<void> => {
      while (!ended && !this.closed) {
        await Promise.race([this.sleep(everyMs), watching]); // pacing the checks
        if (ended || this.closed) return;
        if (rule.observe(await this.healthy(home)) && !ended) {
          wentHome = this.leaving = true;
          this.link?.close();
          return;
        }
      }
    })();
    const outcome = await watching;
    await checking;
    return { outcome, wentHome };
  }

  /** Whether any of `region`'s gateways answers its health check now. */
  private async healthy(region: RegionInfo): Promise<boolean> {
    const answers = await Promise.all(region.urls.map(async (url) => {
      try {
        return (await this.request(`${url}/healthz`, {}, 2000)).status === 200;
      } catch {
        return false;
      }
    }));
    return answers.some((ok) => ok);
  }

  /** One connection attempt at `url`, falling back from WebSocket to SSE to long-poll while
   * no transport has worked yet; resolves when the connection is over. */
  private async watch(region: RegionInfo, url: string): Promise<Outcome> {
    const kinds: TransportKind[] = this.options.transport !== "auto" ? [this.options.transport]
      : this.proven !== null ? [this.proven] : ["ws", "sse", "poll"];
    let last: Outcome = { opened: false, refused: false, reason: "no transport", how: {} };
    for (const kind of kinds) {
      last = await this.connectOnce(kind, region, url);
      if (last.opened || last.refused || this.closed || this.leaving) return last;
    }
    return last;
  }

  private connectOnce(kind: TransportKind, region: RegionInfo, url: string): Promise<Outcome> {
    const cursor = cursorFor(this.cursor, region.name);
    let opened = false;
    // Frames are handled one after another: a `hello` may page history before the next.
    let queue: Promise<void> = Promise.resolve();
    return new Promise((resolve) => {
      const events: LinkEvents = {
        opened: () => {
          opened = true;
          this.proven = kind;
        },
        frame: (frame) => {
          queue = queue.then(() => this.onFrame(region, url, kind, frame)).catch(() => undefined);
        },
        malformed: (err: MalformedFrame) => {
          this.malformedFrames += 1;
          console.warn(`chorus: ${err.message}`);
        },
        ended: (reason, refused, how = {}) => {
          void queue.then(() => {
            if (this.link === link) this.link = null;
            resolve({ opened, refused, reason, how });
          });
        },
      };
      const { token, stream } = this.options;
      const link = kind === "ws" ? openWebSocket(this.platform, url, stream, token, cursor, events)
        : kind === "sse" ? openEventSource(this.platform, url, stream, token, cursor, events)
          : openPoll(this.platform, url, stream, token, cursor, region.name, events);
      this.link = link;
      this.pingsUnanswered = 0;
      this.pingSent.clear();
    });
  }

  private async onFrame(region: RegionInfo, url: string, kind: TransportKind, frame: ServerFrame): Promise<void> {
    let fill = false;
    this.view.apply(frame, region.name, (change) => {
      switch (change.kind) {
        case "comment": this.emit("comment", change.comment); break;
        case "retract": this.emit("retract", change.ids); break;
        case "pin": this.emit("pin", change.comment); break;
        case "tier": this.emit("tier", change.name, change.tier); break;
        case "sample": this.emit("sample", change.sample); break;
        case "snapshot": this.emit("snapshot", change.snapshot); break;
        case "viewers": this.emit("viewers", change.viewers.count, change.viewers); break;
        case "reactions": this.emit("reactions", change.reactions); break;
        case "fill": fill = true; break; // a frame's last change: paged once it is applied
      }
    });
    if (fill) await this.fillFromHistory(url);
    switch (frame.type) {
      case "hello":
        this.attempt.hello = true;
        this.connection = { region: region.name, gateway: frame.gateway, url, transport: kind };
        this.setState("live");
        this.emit("connected", this.connection);
        return;
      case "pong": {
        const sent = frame.ref === null ? undefined : this.pingSent.get(frame.ref);
        if (sent !== undefined) {
          this.pingSent.clear();
          this.pingsUnanswered = 0;
          this.setLatency(performance.now() - sent);
        }
        return;
      }
      case "bye":
        // The connection ends next; the loop resumes with our own cursor, not sooner than
        // the server asked.
        if (frame.retry_in_ms > 0) this.attempt.retryAfterMs = frame.retry_in_ms;
        return;
      case "other":
        this.emit("other", frame);
        return;
      default:
        return; // the view took it; posts go over HTTP
    }
  }

  private deliver(comment: Comment): void {
    if (this.view.deliver(comment)) this.emit("comment", comment);
  }

  /** Pages history newest first until it reaches comments older than the newest one held
   * (less the reorder window); a fresh client takes one page as its start. */
  private async fillFromHistory(url: string): Promise<void> {
    const anchor = this.timeline.lastId;
    const stopMs = anchor !== null && isId(anchor) ? idTimeMs(anchor) - REORDER_WINDOW_MS : null;
    let before: string | null = null;
    for (let page = 0; page < HISTORY_MAX_PAGES; page++) {
      const params = new URLSearchParams({ limit: String(HISTORY_PAGE), access_token: this.options.token });
      if (before !== null) params.set("before", before);
      let doc: { items?: unknown; next?: unknown };
      try {
        const resp = await this.request(
          `${url}/v1/streams/${encodeURIComponent(this.stream)}/comments?${params}`, {});
        if (resp.status !== 200) break;
        doc = await resp.json() as typeof doc;
      } catch {
        break;
      }
      const items = Array.isArray(doc.items) ? doc.items.map(commentFromJson) : [];
      for (const c of items) this.deliver(c);
      const next = typeof doc.next === "string" ? doc.next : null;
      if (stopMs === null || next === null) return; // a fresh client's first page, or the end
      const oldest = items.reduce<string | null>((m, c) => (m === null || c.id < m ? c.id : m), null);
      if (oldest !== null && isId(oldest) && idTimeMs(oldest) < stopMs) return;
      before = next;
    }
    if (anchor !== null) {
      this.timeline.markGap(anchor, null);
      this.emit("gap", { afterId: anchor, beforeId: null });
    }
  }

  // -- latency -----------------------------------------------------------------------------

  private setLatency(ms: number): void {
    this.latencyMs = Math.round(ms * 10) / 10;
    this.emit("latency", this.latencyMs);
  }

  private async pingLoop(): Promise<void> {
    while (!this.closed) {
      await this.sleep(this.options.pingIntervalMs);
      const link = this.link;
      const connection = this.connection;
      if (this.closed || link === null || connection === null) continue;
      if (link.kind === "ws") {
        if (this.pingsUnanswered >= PINGS_UNANSWERED_MAX) {
          link.close(); // the gateway stopped answering: resume, maybe elsewhere
          continue;
        }
        const ref = `p${++this.pingRef}`;
        this.pingSent.set(ref, performance.now());
        if (link.send({ type: "ping", ref })) this.pingsUnanswered += 1;
      } else {
        const began = performance.now();
        try {
          const resp = await this.request(`${connection.url}/healthz`, {}, 3000);
          if (resp.ok) this.setLatency(performance.now() - began);
        } catch {
          // the transport notices a dead gateway by itself
        }
      }
    }
  }

  // -- posting -----------------------------------------------------------------------------

  /** Posts to the current region (then the others), retrying with one client_key so the
   * comment is stored once whichever attempt got through. Throws `ChorusClientError`. */
  async post(text: string, options: { clientKey?: string; replyTo?: string | null; attempts?: number } = {}
  ): Promise<Comment> {
    const body: Record<string, string> = { text, client_key: options.clientKey ?? randomKey() };
    if (options.replyTo) body["reply_to"] = options.replyTo;
    const order = [...this.regions].sort((a, b) => Number(a.name !== this.region) - Number(b.name !== this.region));
    const targets = order.flatMap((r) => r.urls);
    if (targets.length === 0) throw new ChorusClientError(0, "unavailable", "start() the client first");
    const attempts = options.attempts ?? 6;
    const backoff = new Backoff(Math.min(100, this.options.backoffMaxMs), this.options.backoffMaxMs);
    let last = "";
    for (let attempt = 0; attempt < attempts; attempt++) {
      const url = targets[attempt % targets.length] as string;
      let wait = backoff.next();
      try {
        const resp = await this.request(`${url}/v1/streams/${encodeURIComponent(this.stream)}/comments`, {
          method: "POST", body: JSON.stringify(body),
          headers: { "Content-Type": "application/json", Authorization: `Bearer ${this.options.token}` },
        });
        const doc = await resp.json() as Record<string, unknown>;
        if (resp.status === 200 || resp.status === 201) {
          const comment = commentFromJson(doc);
          this.deliver(comment);
          return comment;
        }
        const error = (doc["error"] ?? {}) as { code?: string; message?: string };
        last = `${resp.status} ${error.code ?? "?"}: ${error.message ?? ""}`;
        if (![429, 500, 502, 503, 504].includes(resp.status)) {
          throw new ChorusClientError(resp.status, error.code ?? "?", error.message ?? "");
        }
        if (resp.status === 429) wait = Math.max(wait, retryAfterMs(resp.headers.get("Retry-After")));
      } catch (err) {
        if (err instanceof ChorusClientError) throw err;
        last = String(err);
      }
      await this.sleep(wait);
      if (this.closed) break;
    }
    throw new ChorusClientError(503, "unavailable", `no region took the post: ${last}`);
  }
}

function randomKey(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
