// The shared test vectors (tests/vectors/*.json) on the TypeScript side; the Python side is
// tests/unit/test_vectors.py. Together they keep the two clients from drifting apart.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

import { Attempt, Backoff, type Comment, cursorFor, decodeFrame, encodeCursor, frameFromJson,
  idNode, idTimeMs, isId, MalformedFrame, parseCursor, retryAfterMs, StreamView, Timeline,
  waitAfter } from "../src/index.js";

// build/test/vectors.test.js -> the repository's tests/vectors
const VECTORS = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "..", "tests", "vectors");
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const load = (name: string): any => JSON.parse(readFileSync(join(VECTORS, `${name}.json`), "utf8"));

describe("ids", () => {
  const ids = load("ids");
  for (const c of ids.valid) {
    it(`valid ${c.id}`, () => {
      assert.ok(isId(c.id));
      assert.equal(idTimeMs(c.id), c.time_ms);
      assert.equal(idNode(c.id), c.node);
    });
  }
  for (const text of ids.invalid) {
    it(`not an id: ${JSON.stringify(text)}`, () => {
      assert.ok(!isId(text));
      assert.throws(() => idTimeMs(text), RangeError);
    });
  }
  it("sorts in time order", () => {
    assert.deepEqual([...ids.order.shuffled].sort(), ids.order.sorted);
  });
});

describe("cursors", () => {
  const cursors = load("cursors");
  for (const c of cursors.valid) {
    it(`valid ${c.text}`, () => {
      const parsed = parseCursor(c.text);
      assert.ok(parsed !== null);
      assert.deepEqual([parsed.region, parsed.epoch, parsed.seq.toString()], [c.region, c.epoch, c.seq]);
      assert.equal(encodeCursor(parsed), c.canonical);
    });
  }
  for (const text of cursors.invalid) {
    it(`not a cursor: ${JSON.stringify(text)}`, () => assert.equal(parseCursor(text), null));
  }
  for (const c of cursors.belongs) {
    it(`${c.cursor} resumes in ${c.region}: ${c.resumes}`, () => {
      assert.equal(cursorFor(c.cursor, c.region) !== null, c.resumes);
    });
  }
});

describe("frames", () => {
  for (const c of load("frames").cases) {
    it(c.name, () => {
      if ("frame" in c.expect) {
        assert.deepEqual(decodeFrame(c.json), c.expect.frame);
      } else if ("other" in c.expect) {
        const frame = decodeFrame(c.json);
        assert.equal(frame.type, "other");
        assert.equal(frame.type === "other" && frame.name, c.expect.other);
      } else {
        assert.throws(() => decodeFrame(c.json), MalformedFrame);
      }
    });
  }
});

const comment = (id: string): Comment => ({ id, stream: "s", region: "us-east", user: "u", name: "U",
  text: id, ts: 0, reply_to: null, badge: "", shadow: false });

describe("timeline", () => {
  for (const c of load("timeline").cases) {
    it(c.name, () => {
      const t = new Timeline(c.limit);
      for (const step of c.steps) {
        switch (step.op) {
          case "add": assert.equal(t.add(comment(step.id)), step.expect); break;
          case "extend": assert.equal(t.extend(step.ids.map(comment)), step.expect); break;
          case "mark_gap": t.markGap(step.after, step.before); break;
          case "fill_gap": t.fillGap({ afterId: step.after, beforeId: step.before }); break;
          case "check":
            assert.deepEqual(t.ids(), step.ids);
            assert.equal(t.duplicates, step.duplicates);
            assert.deepEqual(t.gaps.map((g) => [g.afterId, g.beforeId]), step.gaps);
            assert.equal(t.lastId, step.last_id);
            for (const [id, present] of Object.entries(step.contains)) assert.equal(t.has(id), present);
            for (const id of step.ids as string[]) assert.equal(t.comments[t.indexOf(id)]?.id, id);
            break;
          default: assert.fail(`unknown step ${step.op}`);
        }
      }
    });
  }
});

describe("view", () => {
  for (const c of load("view").cases) {
    it(c.name, () => {
      const view = new StreamView();
      let region = "";
      let fills = 0;
      for (const step of c.steps) {
        if ("frame" in step) {
          const frame = frameFromJson(step.frame);
          if (frame.type === "hello") region = frame.region;
          fills += view.apply(frame, region).filter((change) => change.kind === "fill").length;
          continue;
        }
        const want = step.check;
        const got: Record<string, unknown> = { ids: view.timeline.ids(),
          duplicates: view.timeline.duplicates,
          gaps: view.timeline.gaps.map((g) => [g.afterId, g.beforeId]), cursor: view.cursor,
          tier: view.tierName, sample: view.sample, snapshot: view.snapshot?.etag ?? null,
          pin: view.pin?.id ?? null, fills };
        for (const key of Object.keys(want)) assert.deepEqual(got[key], want[key], key);
      }
    });
  }
});

describe("reconnect", () => {
  const reconnect = load("reconnect");
  const close = (a: number, b: number): boolean => Math.abs(a - b) < 1e-6;
  for (const c of reconnect.waits) {
    it(c.name, () => {
      // The random source answers 1: each backoff wait is its ceiling, exactly.
      const backoff = new Backoff(c.first_s * 1000, c.max_s * 1000, () => 1);
      for (const step of c.attempts) {
        const attempt = new Attempt();
        attempt.hello = step.hello;
        attempt.closeCode = step.close_code;
        attempt.retryAfterMs = step.retry_after_s === null ? null : step.retry_after_s * 1000;
        const wait = waitAfter(attempt, backoff);
        assert.ok(close(wait, step.wait_s * 1000), `${JSON.stringify(step)}: waited ${wait} ms`);
      }
    });
  }
  for (const c of reconnect.retry_after) {
    it(`Retry-After ${JSON.stringify(c.header)}`, () => {
      assert.equal(retryAfterMs(c.header), c.seconds * 1000);
    });
  }
});
