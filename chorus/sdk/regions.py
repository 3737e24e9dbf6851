"""Which region a client talks to: discovery, ranking, and the next one on failover.

The decisions (`parse_regions`, `rank`, `next_region`, `post_order`) are pure functions on
`RegionInfo` values; `discover` and `measure` are the only network I/O, and they keep aiohttp's
errors to themselves.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import aiohttp

from chorus.sdk.errors import ChorusClientError

DISCOVER_TIMEOUT_S = 3.0
PROBE_TIMEOUT_S = 2.0
# Round trips within this many ms of each other are a tie (one machine, a LAN): the
# configured link latency decides between them.
RTT_TIE_MS = 5


@dataclass(frozen=True)
class RegionInfo:
    """One region as ``GET /v1/regions`` shows it. ``rtt_ms`` is the measured round trip to
    its first gateway's ``/healthz`` (inf: not measured, or it did not answer)."""

    name: str
    urls: tuple[str, ...]
    healthy: bool
    link_latency_ms: int
    rtt_ms: float = math.inf


def parse_regions(doc: Any) -> list[RegionInfo]:
    """The body of ``GET /v1/regions``, without the regions that list no URL (a client has
    no way in); ValueError when it is not such a body."""
    try:
        regions = [RegionInfo(str(r["name"]), tuple(str(u) for u in r["urls"]),
                              bool(r["healthy"]), int(r.get("link_latency_ms", 0)))
                   for r in doc["regions"]]
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise ValueError(f"not a region list: {exc!r}") from None
    return [r for r in regions if r.urls]


def rank(regions: Sequence[RegionInfo], prefer: str | None) -> list[RegionInfo]:
    """Best first: the preferred region, then healthy before unhealthy, then by round trip
    (ties within `RTT_TIE_MS`), then by configured link latency."""

    def rtt_bucket(r: RegionInfo) -> float:
        return r.rtt_ms // RTT_TIE_MS if r.rtt_ms != math.inf else math.inf

    return sorted(regions, key=lambda r: (r.name != prefer, not r.healthy, rtt_bucket(r),
                                          r.link_latency_ms))


def next_region(regions: Sequence[RegionInfo], current: str | None) -> RegionInfo:
    """Where to fail over from ``current``: the best healthy other region; when none is
    healthy, the best other one; when there is no other, ``current`` itself (try again).
    ``regions`` is ranked and not empty."""
    others = [r for r in regions if r.name != current]
    healthy = [r for r in others if r.healthy]
    return (healthy or others or list(regions))[0]


def post_order(regions: Sequence[RegionInfo], current: str | None) -> list[str]:
    """Gateway URLs to post to, in order: the current region's first (its viewers see the
    comment soonest), then the others in rank order."""
    ordered = sorted(regions, key=lambda r: r.name != current)
    return [u for r in ordered for u in r.urls]


async def discover(http: aiohttp.ClientSession, urls: Sequence[str],
                   prefer: str | None) -> list[RegionInfo]:
    """The regions as the first of ``urls`` that answers lists them, measured and ranked.
    `ChorusClientError` (status 0) when none answers."""
    for url in urls:
        try:
            async with http.get(f"{url}/v1/regions",
                                timeout=aiohttp.ClientTimeout(total=DISCOVER_TIMEOUT_S)) as resp:
                if resp.status != 200:
                    continue
                regions = parse_regions(await resp.json())
        except (aiohttp.ClientError, TimeoutError, ValueError):
            continue
        if not regions:
            continue
        return rank(await measure(http, regions), prefer)
    raise ChorusClientError(0, "unavailable", f"no gateway of {list(urls)} answered")


async def measure(http: aiohttp.ClientSession,
                  regions: Sequence[RegionInfo]) -> list[RegionInfo]:
    """Each region with its round trip; one that does not answer is marked unhealthy."""

    async def probe(region: RegionInfo) -> RegionInfo:
        began = time.perf_counter()
        try:
            async with http.get(f"{region.urls[0]}/healthz",
                                timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)) as resp:
                ok = resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        rtt_ms = (time.perf_counter() - began) * 1000 if ok else math.inf
        return replace(region, healthy=region.healthy and ok, rtt_ms=rtt_ms)

    return list(await asyncio.gather(*(probe(r) for r in regions)))


@dataclass
class Rotation:
    """Which gateway of a region the next connection attempt goes to, and when the region
    counts as failed.

    Attempts go round the region's gateways in turn (from a random one), not to a random
    gateway each time: with a region's gateway dead, random picks hit it several times in a
    row often enough that a fleet of clients would leave a region that is serving. The region
    has failed only when ``failover_after`` attempts in a row failed and every one of its
    gateways was among them."""

    urls: tuple[str, ...]
    failover_after: int
    start: int = 0
    attempts: int = 0     # attempts made (the next one's offset in the rotation)
    failures: int = 0     # failed attempts in a row

    def url(self) -> str:
        return self.urls[(self.start + self.attempts) % len(self.urls)]

    def succeeded(self) -> None:
        """The attempt connected (however it ended later)."""
        self.attempts += 1
        self.failures = 0

    def failed(self) -> bool:
        """The attempt failed; True when the region counts as failed now."""
        self.attempts += 1
        self.failures += 1
        return self.failures >= max(self.failover_after, len(self.urls))


@dataclass
class Failback:
    """When a client that failed over goes back to its home region (the one it ranked first).

    Checked every ``every_s``; it goes back after ``after`` healthy checks in a row, so a
    region that is still flapping does not pull its viewers back and forth."""

    home: str
    every_s: float = 10.0
    after: int = 2
    healthy_checks: int = 0

    def observe(self, home_healthy: bool) -> bool:
        """One check of the home region; True when it is time to go back."""
        self.healthy_checks = self.healthy_checks + 1 if home_healthy else 0
        return self.healthy_checks >= self.after

    def reset(self) -> None:
        self.healthy_checks = 0
