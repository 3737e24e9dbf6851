/**
 * Regions as `GET /v1/regions` describes them, and the order a client tries them in. Pure.
 */

export interface RegionInfo {
  readonly name: string;
  /** The region's gateway base URLs (http or https). */
  readonly urls: readonly string[];
  /** As the answering gateway's registry last heard it over the hub. */
  readonly healthy: boolean;
  /** The configured one-way link latency to the hub, ms. */
  readonly linkLatencyMs: number;
  /** The round trip this client measured to the region (`/healthz`), ms; Infinity: none. */
  readonly rttMs: number;
}

export interface Directory {
  /** The region of the gateway that answered. */
  readonly answeredBy: string;
  readonly regions: RegionInfo[];
}

/** The body of `GET /v1/regions`; throws TypeError when it is not one. */
export function parseDirectory(value: unknown): Directory {
  const doc = value as { region?: unknown; regions?: unknown };
  if (typeof doc !== "object" || doc === null || !Array.isArray(doc.regions)) {
    throw new TypeError("/v1/regions answered something that is not a region list");
  }
  const regions = doc.regions.map((r: unknown): RegionInfo => {
    const e = r as Record<string, unknown>;
    if (typeof e["name"] !== "string" || !Array.isArray(e["urls"])
        || !e["urls"].every((u) => typeof u === "string")) {
      throw new TypeError("a region entry needs a name and urls");
    }
    return { name: e["name"], urls: e["urls"] as string[], healthy: e["healthy"] === true,
      linkLatencyMs: typeof e["link_latency_ms"] === "number" ? e["link_latency_ms"] : 0,
      rttMs: Infinity };
  });
  return { answeredBy: typeof doc.region === "string" ? doc.region : "", regions };
}

/**
 * Healthy regions first, the preferred one before all; then by measured round trip, in
 * 5 ms buckets (on one machine or a LAN they are a tie), then by configured link latency:
 * the same order as the Python SDK.
 */
export function rank(regions: readonly RegionInfo[], prefer: string | null): RegionInfo[] {
  const bucket = (r: RegionInfo): number => (Number.isFinite(r.rttMs) ? Math.floor(r.rttMs / 5) : Infinity);
  const key = (r: RegionInfo): number[] => [r.name === prefer ? 0 : 1, r.healthy ? 0 : 1,
    bucket(r), r.linkLatencyMs];
  return [...regions].sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    for (let i = 0; i < ka.length; i++) {
      const x = ka[i] as number;
      const y = kb[i] as number;
      if (x !== y) return x < y ? -1 : 1;
    }
    return 0;
  });
}

/** Where to go when `current` failed: the first healthy other region, else any other. */
export function nextRegion(ranked: readonly RegionInfo[], current: string | null): RegionInfo {
  const others = ranked.filter((r) => r.name !== current);
  const healthy = others.filter((r) => r.healthy);
  const pick = healthy[0] ?? others[0] ?? ranked[0];
  if (pick === undefined) throw new RangeError("no region is known");
  return pick;
}

/**
 * When a client that failed over goes back to its home region (the one it ranked first):
 * checked every `everyMs`, it goes back after `after` healthy checks in a row, so a region
 * that is still flapping does not pull its viewers back and forth. The Python SDK's
 * `Failback` (chorus/sdk/regions.py), the same rule.
 */
export class Failback {
  healthyChecks = 0;

  constructor(readonly home: string, readonly everyMs = 10_000, readonly after = 2) {}

  /** One check of the home region; true when it is time to go back. */
  observe(homeHealthy: boolean): boolean {
    this.healthyChecks = homeHealthy ? this.healthyChecks + 1 : 0;
    return this.healthyChecks >= this.after;
  }
}
