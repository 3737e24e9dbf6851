// Hot streams on the client's side beyond the shared vectors (tests/vectors/view.json): the
// events an application gets, and long-poll answers read as the frames a WebSocket sends.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { type Comment, type ServerFrame, StreamView } from "../src/index.js";
import { PollAnswers } from "../src/transports.js";

const comment = (id: string): Comment => ({ id, stream: "s", region: "us", user: "u",
  name: "U", text: id, ts: 1, reply_to: null, badge: "", shadow: false });
const A = comment("01a1fe4dca100000-us.0");
const B = comment("01a1fe4dca110000-us.0");

const hello = { type: "hello", region: "us", stream: "s", epoch: "e", cursor: "us:e:0",
  gateway: "us.0", pin: null } as const;
const tier = (name: string, cursor: string): ServerFrame => ({ type: "tier", tier: name, cursor,
  per_viewer_per_s: name === "sampled" ? 4 : null, snapshot_url: null, interval_s: null });

describe("view changes", () => {
  it("announces a tier once, not again after a reconnect into the same tier", () => {
    const view = new StreamView();
    const kinds = (frame: ServerFrame): string[] => view.apply(frame, "us").map((c) =>
      c.kind === "tier" ? `tier:${c.name}` : c.kind);
    assert.deepEqual(kinds(hello), ["fill"]);
    assert.deepEqual(kinds(tier("sampled", "us:e:0")), ["tier:sampled"]);
    assert.deepEqual(kinds({ type: "comments", items: [A], cursor: "us:e:1",
      sample: { shown: 1, posted: 30 } }), ["comment", "sample"]);
    // A reconnect: hello, then the server says sampled again; nothing to announce.
    assert.deepEqual(kinds({ ...hello, cursor: "us:e:1" }), []);
    assert.deepEqual(kinds(tier("sampled", "us:e:1")), []);
    // A reconnect after the stream cooled down: no tier frame after hello means push.
    assert.deepEqual(kinds({ ...hello, cursor: "us:e:1" }), []);
    assert.deepEqual(kinds({ type: "viewers", count: 1, total: 0, regions: {} }),
      ["tier:push", "viewers"]);
    assert.equal(view.cursor, "us:e:1");
  });
});

describe("view sink", () => {
  it("hears each change as it is made: a new comment finds the timeline as it was then", () => {
    const view = new StreamView();
    view.apply(hello, "us");
    const sizes: number[] = [];
    const changes = view.apply({ type: "comments", items: [B, A], cursor: "us:e:2", sample: null }, "us",
      (change) => { if (change.kind === "comment") sizes.push(view.timeline.comments.length); });
    assert.deepEqual(sizes, [1, 2]);
    assert.deepEqual(changes.map((c) => c.kind), ["comment", "comment"]);
  });
});

describe("long-poll answers", () => {
  it("read as the frames a WebSocket sends: hello with the pin, the tier as it changes, sampled batches", () => {
    const answers = new PollAnswers("s", "us", "http://a");
    const types = (body: unknown, at: string | null): string[] =>
      answers.read(body, at).frames.map((f) => f.type === "tier" ? `tier:${f.tier}` : f.type);
    const first = answers.read({ items: [], cursor: "us:e:5", pin: A,
      tier: { tier: "sampled", per_viewer_per_s: 4, snapshot_url: null, interval_s: null },
      viewers: { count: 2, total: 9, regions: { us: 2, eu: 7 } } }, null);
    assert.deepEqual(first.malformed, []);
    assert.deepEqual(first.frames.map((f) => f.type), ["hello", "tier", "viewers"]);
    assert.deepEqual(first.frames[0], { ...hello, epoch: "", cursor: "us:e:5", gateway: "http://a", pin: A });
    assert.equal(answers.tier?.tier, "sampled");
    assert.equal(answers.waitS(25), 25);
    // The same tier again is no change; a sampled answer without items still moves the cursor.
    assert.deepEqual(types({ items: [], cursor: "us:e:9", pin: A, sample: { shown: 4, posted: 80 },
      tier: { tier: "sampled", per_viewer_per_s: 4, snapshot_url: null, interval_s: null } },
    "us:e:5"), ["comments"]);
    // Snapshot: polls as often as the document is rewritten.
    assert.deepEqual(types({ items: [B], cursor: "us:e:12", pin: A,
      tier: { tier: "snapshot", per_viewer_per_s: null, snapshot_url: "/v1/streams/s/snapshot", interval_s: 2 } },
    "us:e:9"), ["tier:snapshot", "comments"]);
    assert.equal(answers.waitS(25), 2);
    // No tier any more: back to push, announced; the pin taken down too.
    const back = answers.read({ items: [], cursor: "us:e:12" }, "us:e:12").frames;
    assert.deepEqual(back, [
      { type: "tier", tier: "push", cursor: "us:e:12", per_viewer_per_s: null, snapshot_url: null, interval_s: null },
      { type: "pin", stream: "s", comment: null }]);
    assert.equal(answers.tier, null);
  });

  it("skip a malformed part and keep the rest", () => {
    const answers = new PollAnswers("s", "us", "http://a");
    const { frames, malformed } = answers.read({ items: [A], cursor: "us:e:1",
      sample: { shown: -1, posted: 3 }, reactions: { second: 1, counts: {}, totals: { heart: 2 } } }, "us:e:0");
    assert.deepEqual(frames.map((f) => f.type), ["hello", "reactions"]);
    assert.equal(malformed.length, 1);
    assert.throws(() => answers.read({ cursor: "us:e:1" }, "us:e:1"));
  });
});
