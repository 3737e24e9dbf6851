"""Where a post may be retried: the decisions of `Client.post`, pure.

A post carries a ``client_key``; the region that stores it deduplicates a retry with the same
key (its JetStream's ``Nats-Msg-Id`` window, 10 minutes) and answers with the comment it
stored the first time. That holds within one region only: each region gives a comment its own
id and keeps its own window. So a retry may go to another region only when the earlier
attempts are known not to have stored the comment. After an ambiguous outcome (the gateway
answered 5xx, which is what it answers when its log did not confirm the write in time, though
the write may still land; or the connection broke after the request was sent) the post is
*pinned* to that region: every later attempt with that key goes to the same region's
gateways, until one answers for good. If none does in the attempts given, the caller is told
the outcome is unknown (and may retry later with the same key, still pinned).

Why not an id derived from user and client key, deduplicated by every region? Ids are
time-ordered and name the node that made them, which is what lets every log and timeline sort
them without coordination; and two regions could each store a copy before hearing of the
other's. Keeping a retry in the region that may hold the first copy needs neither.
"""

from __future__ import annotations

import enum
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from chorus.sdk.regions import RegionInfo

PIN_TTL_S = 600.0     # the servers' duplicate window: past it a retry is a new post anyway
MAX_PINS = 1000       # keys remembered per client; the oldest are forgotten first


class Outcome(enum.Enum):
    STORED = "stored"          # 200/201: the comment (the first copy, for a retry)
    REFUSED = "refused"        # a 4xx other than 429: retrying will not help
    NOT_TAKEN = "not_taken"    # certainly not stored (429, no connection): retry anywhere
    UNKNOWN = "unknown"        # may have been stored: retry in the same region only


def outcome_of(status: int | None, *, sent: bool = True) -> Outcome:
    """What an attempt's answer says of the post. ``status`` None: no HTTP answer; ``sent``
    False: the connection was never established, so the request never left."""
    if status is None:
        return Outcome.UNKNOWN if sent else Outcome.NOT_TAKEN
    if status in (200, 201):
        return Outcome.STORED
    if status == 429:
        return Outcome.NOT_TAKEN
    if status >= 500:
        return Outcome.UNKNOWN
    return Outcome.REFUSED


@dataclass
class Pins:
    """client_key -> the region that may hold its post, for ``ttl_s`` seconds of ``clock``;
    at most ``max_pins`` keys."""

    ttl_s: float = PIN_TTL_S
    max_pins: int = MAX_PINS
    clock: Callable[[], float] = time.monotonic
    _pins: OrderedDict[str, tuple[str, float]] = field(default_factory=OrderedDict)

    def pin(self, key: str, region: str) -> None:
        if key in self._pins and self._pins[key][0] == region:
            return  # pinned at its first ambiguous attempt: that time is what expires
        self._pins[key] = (region, self.clock())
        self._pins.move_to_end(key)
        while len(self._pins) > self.max_pins:
            self._pins.popitem(last=False)

    def region(self, key: str) -> str | None:
        hit = self._pins.get(key)
        if hit is None:
            return None
        region, at = hit
        if self.clock() - at > self.ttl_s:
            del self._pins[key]
            return None
        return region

    def release(self, key: str) -> None:
        """The post's outcome is known (stored or refused)."""
        self._pins.pop(key, None)


def post_targets(regions: Sequence[RegionInfo], current: str | None,
                 pinned: str | None) -> list[tuple[str, str]]:
    """(region, gateway URL) pairs to try in turn: only the ``pinned`` region's gateways when
    the post is pinned (empty when that region is not listed), else the ``current`` region's
    first (its viewers see the comment soonest), then the others in rank order."""
    if pinned is not None:
        order = [r for r in regions if r.name == pinned]
    else:
        order = sorted(regions, key=lambda r: r.name != current)
    return [(r.name, u) for r in order for u in r.urls]
