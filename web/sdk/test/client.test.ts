// The client's watch loop against a stand-in platform (fetch and WebSocket): joining with a
// history fill, resuming, failing over with a fill from the new region, handing on frames
// it does not know. The real thing runs in Chromium against the cluster (tests/browser).
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { ChorusClient, type Comment } from "../src/index.js";
import type { Platform } from "../src/transports.js";

const comment = (id: string, region: string): Comment => ({ id, stream: "s", region, user: "u",
  name: "U", text: id, ts: 1, reply_to: null, badge: "", shadow: false });
const C1 = comment("01a1fe4dca100000-us.0", "us");
const C2 = comment("01a1fe4dca110000-us.0", "us");
const C3 = comment("01a1fe4dca120000-eu.0", "eu");

class FakeSocket {
  static all: FakeSocket[] = [];
  onopen: (() => void) | null = null;
  onmessage: ((ev: { data: string }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: (() => void) | null = null;
  readyState = 0;
  sent: string[] = [];
  constructor(readonly url: string) { FakeSocket.all.push(this); }
  open(): void { this.readyState = 1; this.onopen?.(); }
  frame(doc: unknown): void { this.onmessage?.({ data: JSON.stringify(doc) }); }
  drop(code = 1006): void { this.readyState = 3; this.onclose?.({ code, reason: "" }); }
  send(text: string): void { this.sent.push(text); }
  close(): void { this.drop(); }
}

/** Every URL the stand-in platform was asked for (its path, without the query). */
const fetched: string[] = [];

function platform(down: Set<string>): Platform {
  const regions = { region: "us", regions: [
    { name: "us", urls: ["http://a"], healthy: true, link_latency_ms: 10 },
    { name: "eu", urls: ["http://b"], healthy: true, link_latency_ms: 30 }] };
  const history: Record<string, Comment[]> = { "http://a": [C2, C1], "http://b": [C3, C2] };
  const fetch = async (input: string | URL | Request): Promise<Response> => {
    const url = new URL(String(input));
    const base = `${url.protocol}//${url.host}`;
    fetched.push(`${base}${url.pathname}`);
    if (down.has(base)) throw new TypeError("connection refused");
    if (url.pathname === "/v1/regions") return Response.json(regions);
    if (url.pathname === "/healthz") return Response.json({ status: "ok" });
    if (url.pathname.endsWith("/comments")) return Response.json({ items: history[base], next: null });
    return new Response("{}", { status: 404 });
  };
  return { fetch: fetch as typeof globalThis.fetch,
    WebSocket: FakeSocket as unknown as typeof WebSocket };
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 3000;
  while (!check()) {
    if (Date.now() > deadline) assert.fail(`${what} did not happen`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

describe("client", () => {
  it("joins with a fill, resumes, fails over with a fill, and hands on unknown frames", async () => {
    FakeSocket.all = [];
    const down = new Set<string>();
    const client = new ChorusClient({ seeds: ["http://a"], token: "t", stream: "s",
      prefer: "seed", failoverAfter: 2, backoffMaxMs: 5, pingIntervalMs: 0,
      platform: platform(down) });
    const others: string[] = [];
    const failovers: string[] = [];
    client.on("other", (f) => others.push(f.name));
    client.on("failover", (from, to) => failovers.push(`${from}->${to}`));
    await client.start();
    try {
      await exercise(client, down, others, failovers);
    } finally {
      client.close(); // else its watch loop keeps the test process alive
    }
  });
});

async function exercise(client: ChorusClient, down: Set<string>, others: string[],
                        failovers: string[]): Promise<void> {
    await until(() => FakeSocket.all.length === 1, "a WebSocket to a");
    const first = FakeSocket.all[0] as FakeSocket;
    assert.match(first.url, /^ws:\/\/a\/v1\/streams\/s\/live\?access_token=t$/);
    first.open();
    first.frame({ type: "hello", region: "us", stream: "s", epoch: "e", cursor: "us:e:0", gateway: "us.0" });
    first.frame({ type: "comments", items: [C2], cursor: "us:e:2" });
    first.frame({ type: "poll_question", question: "who wins?" });
    await until(() => client.state === "live" && client.cursor === "us:e:2", "live in us");
    assert.deepEqual(client.timeline.ids(), [C1.id, C2.id]);
    assert.deepEqual(others, ["poll_question"]);

    // A dropped connection resumes in the same region with the cursor.
    first.drop();
    await until(() => FakeSocket.all.length === 2, "a resume");
    assert.match((FakeSocket.all[1] as FakeSocket).url, /cursor=us%3Ae%3A2/);

    // The region dies: attempts fail, and the client moves to eu, where us's cursor means nothing.
    down.add("http://a");
    (FakeSocket.all[1] as FakeSocket).drop();
    await until(() => FakeSocket.all.length === 3, "a second attempt");
    (FakeSocket.all[2] as FakeSocket).drop();
    await until(() => FakeSocket.all.length === 4, "an attempt in b");
    const inB = FakeSocket.all[3] as FakeSocket;
    assert.match(inB.url, /^ws:\/\/b\//);
    assert.doesNotMatch(inB.url, /cursor=/);
    inB.open();
    inB.frame({ type: "hello", region: "eu", stream: "s", epoch: "f", cursor: "eu:f:7", gateway: "eu.0" });
    await until(() => client.state === "live" && client.region === "eu", "live in eu");
    assert.deepEqual(client.timeline.ids(), [C1.id, C2.id, C3.id]);
    assert.equal(client.timeline.duplicates, 2); // C2 live after the first fill, and in eu's
    assert.deepEqual(client.timeline.gaps, []);
    assert.deepEqual(failovers, ["us->eu"]);
}

describe("client and moderation", () => {
  it("takes a retracted comment out, keeps a later copy out, and puts it back when restored", async () => {
    FakeSocket.all = [];
    const client = new ChorusClient({ seeds: ["http://a"], token: "t", stream: "s",
      prefer: "seed", backoffMaxMs: 5, pingIntervalMs: 0, platform: platform(new Set()) });
    const shown: string[] = [];
    client.on("comment", (c) => shown.push(c.id));
    await client.start();
    try {
      await until(() => FakeSocket.all.length === 1, "a WebSocket to a");
      const ws = FakeSocket.all[0] as FakeSocket;
      ws.open();
      ws.frame({ type: "hello", region: "us", stream: "s", epoch: "e", cursor: "us:e:0", gateway: "us.0" });
      await until(() => client.state === "live", "live in us");
      assert.deepEqual(client.timeline.ids(), [C1.id, C2.id]);
      ws.frame({ type: "retract", stream: "s", ids: [C1.id] });
      await until(() => !client.timeline.has(C1.id), "C1 taken out");
      ws.frame({ type: "comments", items: [C1, C3], cursor: "us:e:3" }); // a late copy
      await until(() => client.timeline.has(C3.id), "C3 shown");
      assert.deepEqual(client.timeline.ids(), [C2.id, C3.id]);
      ws.frame({ type: "restore", stream: "s", comment: C1 });
      await until(() => client.timeline.has(C1.id), "C1 put back");
      assert.deepEqual(client.timeline.ids(), [C1.id, C2.id, C3.id]);
      assert.deepEqual(shown, [C2.id, C1.id, C3.id, C1.id]);
    } finally {
      client.close();
    }
  });
});

describe("client and hot streams", () => {
  it("tells the tier, what a sampled batch stands for and the snapshot, and resumes with the tier's cursor", async () => {
    FakeSocket.all = [];
    const client = new ChorusClient({ seeds: ["http://a"], token: "t", stream: "s",
      prefer: "seed", backoffMaxMs: 5, pingIntervalMs: 0, platform: platform(new Set()) });
    const heard: string[] = [];
    client.on("tier", (name) => heard.push(`tier ${name}`));
    client.on("sample", (s) => heard.push(`showing ${s.shown} of ${s.posted}`));
    client.on("snapshot", (s) => heard.push(`snapshot ${s.etag}`));
    client.on("gap", () => heard.push("gap"));
    await client.start();
    try {
      await until(() => FakeSocket.all.length === 1, "a WebSocket to a");
      const ws = FakeSocket.all[0] as FakeSocket;
      ws.open();
      ws.frame({ type: "hello", region: "us", stream: "s", epoch: "e", cursor: "us:e:2", gateway: "us.0" });
      ws.frame({ type: "tier", tier: "sampled", cursor: "us:e:2", per_viewer_per_s: 4 });
      ws.frame({ type: "comments", items: [], cursor: "us:e:40", sample: { shown: 4, posted: 38 } });
      ws.frame({ type: "tier", tier: "snapshot", cursor: "us:e:41", snapshot_url: "http://a/v1/streams/s/snapshot", interval_s: 1 });
      ws.frame({ type: "snapshot", etag: "\"1\"", stream: "s", region: "us", at_ms: 1, interval_s: 1, viewers: 9,
        rate_per_s: 40, posted: 40, comments: [C3], priority: [] });
      await until(() => heard.length === 4, "four events");
      assert.deepEqual(heard, ["tier sampled", "showing 4 of 38", "tier snapshot", "snapshot \"1\""]);
      assert.equal(client.tierName, "snapshot");
      assert.deepEqual(client.timeline.ids(), [C1.id, C2.id, C3.id]);
      // A resume starts from the tier frame's cursor; the same tier again is no news.
      ws.drop();
      await until(() => FakeSocket.all.length === 2, "a resume");
      const again = FakeSocket.all[1] as FakeSocket;
      assert.match(again.url, /cursor=us%3Ae%3A41/);
      again.open();
      again.frame({ type: "hello", region: "us", stream: "s", epoch: "e", cursor: "us:e:41", gateway: "us.1" });
      again.frame({ type: "tier", tier: "snapshot", cursor: "us:e:41", snapshot_url: "http://a/v1/streams/s/snapshot", interval_s: 1 });
      again.frame({ type: "recovered", recovered: false, cursor: "us:e:45" });
      await until(() => client.cursor === "us:e:45", "the resume answered");
      assert.deepEqual(heard.slice(4), []); // no tier news, and no history page, no gap above push
      assert.equal(client.timeline.duplicates, 0);
    } finally {
      client.close();
    }
  });
});

describe("client and refusals", () => {
  // A connection closed before the server's hello is a failed attempt (reconnect.ts): a
  // gateway past a connection cap closes right after the upgrade, with 4429.
  it("counts a close before hello as a failed attempt and fails over after enough of them", async () => {
    FakeSocket.all = [];
    const client = new ChorusClient({ seeds: ["http://a"], token: "t", stream: "s",
      prefer: "seed", failoverAfter: 2, backoffMaxMs: 5, pingIntervalMs: 0,
      platform: platform(new Set()) });
    const failovers: string[] = [];
    const attempts: number[] = [];
    client.on("failover", (from, to) => failovers.push(`${from}->${to}`));
    client.on("reconnect", (attempt) => attempts.push(attempt));
    await client.start();
    try {
      for (const n of [1, 2]) {
        await until(() => FakeSocket.all.length === n, `attempt ${n} in a`);
        const socket = FakeSocket.all[n - 1] as FakeSocket;
        assert.match(socket.url, /^ws:\/\/a\//);
        socket.open(); // the upgrade succeeds, but no hello follows
        socket.drop(1011);
      }
      await until(() => FakeSocket.all.length === 3, "an attempt in b");
      assert.match((FakeSocket.all[2] as FakeSocket).url, /^ws:\/\/b\//);
      assert.deepEqual(failovers, ["us->eu"]);
      assert.deepEqual(attempts, [2, 3]);
    } finally {
      client.close();
    }
  });

  it("waits at least what a close code or a bye asks for, the backoff started over after a hello", async () => {
    FakeSocket.all = [];
    const client = new ChorusClient({ seeds: ["http://a"], token: "t", stream: "s",
      prefer: "seed", failoverAfter: 10, backoffMaxMs: 5, pingIntervalMs: 0,
      platform: platform(new Set()) });
    await client.start();
    try {
      await until(() => FakeSocket.all.length === 1, "a WebSocket to a");
      const first = FakeSocket.all[0] as FakeSocket;
      first.open();
      first.frame({ type: "hello", region: "us", stream: "s", epoch: "e", cursor: "us:e:0", gateway: "us.0" });
      await until(() => client.state === "live", "live in us");
      first.frame({ type: "bye", reason: "draining", cursor: "us:e:0", regions: ["us"], retry_in_ms: 700 });
      first.drop(1001);
      await until(() => client.retryInMs > 0, "a wait after the bye");
      assert.equal(client.retryInMs, 700);
      await until(() => FakeSocket.all.length === 2, "a resume after the bye");
      const second = FakeSocket.all[1] as FakeSocket;
      second.open();
      second.drop(4429); // past the connection cap: the same refusal answers 429, Retry-After 5
      await until(() => client.retryInMs > 0, "a wait after the refusal");
      assert.equal(client.retryInMs, 5000);
      assert.equal(client.state, "reconnecting");
    } finally {
      client.close(); // ends the 5 s wait at once
    }
  });
});

describe("client and its home region", () => {
  it("goes back home after two healthy checks in a row, and not while home is down", async () => {
    FakeSocket.all = [];
    const down = new Set<string>();
    const client = new ChorusClient({ seeds: ["http://a"], token: "t", stream: "s",
      prefer: "seed", failoverAfter: 1, backoffMaxMs: 5, pingIntervalMs: 0, failbackEveryMs: 10,
      platform: platform(down) });
    const moves: string[] = [];
    client.on("failover", (from, to) => moves.push(`failover ${from}->${to}`));
    client.on("failback", (from, to) => moves.push(`failback ${from}->${to}`));
    await client.start();
    try {
      await until(() => FakeSocket.all.length === 1, "a WebSocket to a");
      down.add("http://a");
      (FakeSocket.all[0] as FakeSocket).drop(); // never said hello: a failed attempt
      await until(() => FakeSocket.all.length === 2, "an attempt in b");
      const inB = FakeSocket.all[1] as FakeSocket;
      assert.match(inB.url, /^ws:\/\/b\//);
      inB.open();
      inB.frame({ type: "hello", region: "eu", stream: "s", epoch: "f", cursor: "eu:f:7", gateway: "eu.0" });
      await until(() => client.state === "live" && client.region === "eu", "live in eu");
      // Home is checked while down: the client stays where it is.
      const checksBefore = fetched.length;
      await until(() => fetched.slice(checksBefore).filter((u) => u === "http://a/healthz").length >= 3,
        "three checks of home");
      assert.equal(FakeSocket.all.length, 2);
      assert.equal(inB.readyState, 1);
      down.delete("http://a");
      await until(() => FakeSocket.all.length === 3, "a WebSocket back home");
      assert.match((FakeSocket.all[2] as FakeSocket).url, /^ws:\/\/a\//);
      assert.equal(inB.readyState, 3); // the connection in eu was closed to go home
      assert.deepEqual(moves, ["failover us->eu", "failback eu->us"]);
      assert.equal(client.failbacks, 1);
    } finally {
      client.close();
    }
  });
});
