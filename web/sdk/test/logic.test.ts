// The client's pure pieces that the vectors do not cover: backoff, region ranking.
import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { Backoff, nextRegion, parseDirectory, rank, type RegionInfo } from "../src/index.js";

describe("backoff", () => {
  it("doubles up to the ceiling and waits at least half of it", () => {
    const low = new Backoff(100, 1000, () => 0);
    assert.deepEqual([1, 2, 3, 4, 5].map(() => low.next()), [50, 100, 200, 400, 500]);
    const high = new Backoff(100, 1000, () => 1);
    assert.deepEqual([1, 2, 3, 4, 5].map(() => high.next()), [100, 200, 400, 800, 1000]);
    high.reset();
    assert.equal(high.next(), 100);
  });
  it("refuses a ceiling below the first wait", () => assert.throws(() => new Backoff(10, 5), RangeError));
});

const region = (name: string, healthy: boolean, rttMs: number, linkLatencyMs: number): RegionInfo =>
  ({ name, urls: [`http://${name}`], healthy, rttMs, linkLatencyMs });

describe("regions", () => {
  it("ranks preferred, then healthy, then round trip in 5 ms buckets, then link latency", () => {
    const regions = [region("a", true, 3, 90), region("b", true, 1, 10), region("c", false, 0, 0),
      region("d", true, 40, 0)];
    assert.deepEqual(rank(regions, null).map((r) => r.name), ["b", "a", "d", "c"]);
    assert.deepEqual(rank(regions, "d").map((r) => r.name), ["d", "b", "a", "c"]);
    assert.deepEqual(rank(regions, "c").map((r) => r.name), ["c", "b", "a", "d"]);
  });
  it("fails over to a healthy other region, else any other", () => {
    const ranked = [region("a", true, 1, 0), region("b", false, Infinity, 0), region("c", true, 9, 0)];
    assert.equal(nextRegion(ranked, "a").name, "c");
    assert.equal(nextRegion([region("a", true, 1, 0), region("b", false, 1, 0)], "a").name, "b");
  });
  it("reads /v1/regions", () => {
    const dir = parseDirectory({ region: "eu-west", regions: [{ name: "eu-west",
      urls: ["http://127.0.0.1:8201"], healthy: true, link_latency_ms: 30 }] });
    assert.equal(dir.answeredBy, "eu-west");
    assert.deepEqual(dir.regions[0], { name: "eu-west", urls: ["http://127.0.0.1:8201"],
      healthy: true, linkLatencyMs: 30, rttMs: Infinity });
    assert.throws(() => parseDirectory({ regions: [{ urls: [] }] }), TypeError);
  });
});
