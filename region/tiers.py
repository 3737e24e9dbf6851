"""A hot stream's tier, and how every region comes to the same one. Pure.

A stream is delivered in one of three tiers (docs/design.md, "Hot streams"):

- ``push``: every comment to every viewer, batched per tick (what every stream gets until it
  is hot);
- ``sampled``: each viewer gets at most ``tiers.sampled_per_viewer_per_s`` comments a second,
  a uniform sample of what was posted (region/sampling.py), plus every comment of the
  priority lane, plus their own;
- ``snapshot``: the region renders the stream every ``snapshot_interval_s`` as one document a
  CDN can cache (region/snapshot.py); live viewers get that document as a frame, and their
  own comments.

`next_tier` chooses from a `Reading` (the stream's global viewers and global comment rate)
with the hysteresis of regions.yaml's ``tiers``: a stream enters a tier above its ``enter``
threshold and leaves it only below its ``exit`` one, so a stream hovering at a threshold
stays where it is. A tier above push needs both many viewers and many comments: a stream
with a huge audience and a few comments a second costs nothing to push.

Agreement. Every gateway must deliver a stream in the same tier, in every region, within
2 s. One region decides, the others follow: each region's *keeper* of a stream (one gateway,
elected by a lease in the region's Redis: `TierStore`) publishes a `Notice` over the hub
every `NOTICE_PERIOD_S` while the stream is warm (`warm`), carrying the tier it holds. The
*leader* is the region with the smallest name among those whose notices are fresh (heard
within `STALE_AFTER_S`), counting one's own region: its keeper applies `next_tier` to the
tier it last announced, the other keepers announce the leader's tier, and every gateway
delivers the leader's tier (`TierBoard.tier`). Since only one place ever applies the
hysteresis, two regions cannot settle on different tiers inside the dead band between the
thresholds; when the leader goes quiet (its gateways died, its link was cut), the next
region in name order leads from the tier it had adopted, and when it is heard again everyone
follows it again. A stream nobody announces is in the push tier.
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from chorus.config import Tiers
from chorus.errors import Unavailable

Tier = Literal["push", "sampled", "snapshot"]
TIERS: tuple[Tier, ...] = ("push", "sampled", "snapshot")

NOTICE_PERIOD_S = 0.5   # a keeper's notices, and every gateway's look at its streams' tiers
STALE_AFTER_S = 2.0     # a region whose notice is older than this does not lead or count
RATE_WINDOW_S = 2       # whole seconds a stream's comment rate is averaged over
MAX_STREAMS = 10_000    # streams a board keeps notices of; beyond, the stalest are forgotten


@dataclass(frozen=True)
class Reading:
    """What a stream's tier follows: its viewers in every region (``viewers``) and the
    comments per second posted to it in every region (``rate_per_s``)."""

    viewers: int
    rate_per_s: float


def next_tier(current: Tier, reading: Reading, tiers: Tiers) -> Tier:
    """The tier after ``current`` given ``reading``, with hysteresis."""
    rate, viewers = reading.rate_per_s, reading.viewers
    if current == "push":
        if rate < tiers.sampled_enter_rate_per_s:
            return "push"
        if viewers >= tiers.snapshot_enter_viewers:
            return "snapshot"
        return "sampled" if viewers >= tiers.sampled_enter_viewers else "push"
    if rate < tiers.sampled_exit_rate_per_s or viewers < tiers.sampled_exit_viewers:
        return "push"
    if current == "sampled":
        return "snapshot" if viewers >= tiers.snapshot_enter_viewers else "sampled"
    return "sampled" if viewers < tiers.snapshot_exit_viewers else "snapshot"


def warm(rate_per_s: float, tier: Tier, tiers: Tiers) -> bool:
    """Whether a stream's tier is worth a global reading: it is above push, or its comment
    rate is near the sampled tier's. A cold stream costs the agreement nothing (no lease, no
    presence questions, no notices): it can only be in the push tier."""
    return tier != "push" or rate_per_s >= tiers.sampled_exit_rate_per_s / 2


# -- a stream's comment rate -------------------------------------------------------------------


@dataclass
class RateMeter:
    """Comments per second over the last `RATE_WINDOW_S` whole seconds of ``now`` (any
    monotonic clock in seconds). O(1) per comment; the second in progress does not count."""

    window_s: int = RATE_WINDOW_S
    _counts: deque[tuple[int, int]] = field(default_factory=deque)  # (second, comments)

    def observe(self, now: float, n: int = 1) -> None:
        second = math.floor(now)
        if self._counts and self._counts[-1][0] == second:
            self._counts[-1] = (second, self._counts[-1][1] + n)
        else:
            self._counts.append((second, n))
            while len(self._counts) > self.window_s + 1:
                self._counts.popleft()

    def rate(self, now: float) -> float:
        second = math.floor(now)
        total = sum(n for s, n in self._counts if second - self.window_s <= s < second)
        return total / self.window_s


# -- agreement ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Notice:
    """A region keeper's word on a stream: the tier it holds, and the reading it took
    (``viewers`` in every region, comments per second)."""

    region: str
    stream: str
    tier: Tier
    viewers: int
    rate_per_s: int


class TierBoard:
    """What this gateway has heard of every warm stream's tier (`Notice` by stream and
    region), by the receiver's clock. ``region`` is the gateway's own region. Bounded by
    ``max_streams`` (the stalest streams are forgotten first)."""

    def __init__(self, region: str, *, stale_after_s: float = STALE_AFTER_S,
                 max_streams: int = MAX_STREAMS) -> None:
        self.region = region
        self.stale_after_s = stale_after_s
        self.max_streams = max_streams
        self._notices: dict[str, dict[str, tuple[float, Notice]]] = {}

    def observe(self, notice: Notice, now: float) -> None:
        heard = self._notices.get(notice.stream)
        if heard is None:
            if len(self._notices) >= self.max_streams:
                self._forget(now)
            heard = self._notices[notice.stream] = {}
        heard[notice.region] = (now, notice)

    def announced(self, stream: str) -> bool:
        """Whether any region has announced ``stream`` lately (cheap: no clock read)."""
        return stream in self._notices

    def _fresh(self, stream: str, now: float) -> dict[str, Notice]:
        heard = self._notices.get(stream)
        if not heard:
            return {}
        return {region: notice for region, (at, notice) in heard.items()
                if now - at <= self.stale_after_s}

    def leader(self, stream: str, now: float, *, taking_part: bool) -> str | None:
        """The region that decides ``stream``'s tier: the smallest name among regions heard
        lately and, when ``taking_part`` (this region keeps the stream), this region."""
        regions = set(self._fresh(stream, now))
        if taking_part:
            regions.add(self.region)
        return min(regions) if regions else None

    def notice(self, stream: str, now: float) -> Notice | None:
        """The leader's latest notice (None: nobody announces the stream)."""
        fresh = self._fresh(stream, now)
        return fresh[min(fresh)] if fresh else None

    def tier(self, stream: str, now: float) -> Tier:
        """The tier every gateway delivers ``stream`` in: the leader's."""
        notice = self.notice(stream, now)
        return notice.tier if notice is not None else "push"

    def describe(self, stream: str, now: float) -> dict[str, object]:
        """The stream's tier as ``GET /v1/streams/{stream}`` shows it: ``tier``, and while a
        region announces it, the reading its leader decided on (``tier_reading``)."""
        notice = self.notice(stream, now)
        if notice is None:
            return {"tier": "push"}
        return {"tier": notice.tier,
                "tier_reading": {"viewers": notice.viewers, "rate_per_s": notice.rate_per_s,
                                 "leader": notice.region}}

    def hot(self, now: float) -> dict[str, Notice]:
        """Every stream above push, with its leader's notice."""
        out = {}
        for stream in self._notices:
            notice = self.notice(stream, now)
            if notice is not None and notice.tier != "push":
                out[stream] = notice
        return out

    def _forget(self, now: float) -> None:
        for stream in list(self._notices):
            if not self._fresh(stream, now):
                del self._notices[stream]
        if len(self._notices) >= self.max_streams:
            def last_heard(stream: str) -> float:
                return max(at for at, _ in self._notices[stream].values())
            for stream in sorted(self._notices, key=last_heard)[: self.max_streams // 2]:
                del self._notices[stream]


def decide(board: TierBoard, stream: str, reading: Reading, tiers: Tiers, now: float
           ) -> Tier:
    """The tier this region's keeper announces for ``stream``: the leader applies the
    hysteresis to the tier it holds; anyone else repeats the leader's."""
    if board.leader(stream, now, taking_part=True) == board.region:
        return next_tier(board.tier(stream, now), reading, tiers)
    return board.tier(stream, now)


class TierStoreUnavailable(Unavailable):
    """The region's store did not answer: this gateway keeps no stream this round."""


class TierStore(Protocol):
    """Which gateway of the region keeps (decides and announces) each warm stream: a lease
    renewed every `NOTICE_PERIOD_S` (region/tiers_redis.py)."""

    async def keep(self, gateway: str, streams: Iterable[str]) -> set[str]:
        """Takes or renews ``gateway``'s lease on each of ``streams`` that no other gateway
        holds; returns the streams it keeps. Raises `TierStoreUnavailable`."""
        ...


class TierHost(Protocol):
    """What the agreement needs of a gateway's fanout (region/fanout.py)."""

    def followed(self) -> dict[str, float]:
        """Streams this gateway has viewers of, with the comments per second of each as its
        live feed carries them (every region's: comments are forwarded to where they are
        watched)."""
        ...

    def apply_tier(self, stream: str, tier: Tier, *, keeper: bool,
                   reading: Reading | None) -> None:
        """Delivers ``stream`` in ``tier`` from now on (nothing when it already is);
        ``keeper``: this gateway renders its snapshots; ``reading``: the keeper's last."""
        ...


# -- the per-stream token bucket, per tier -----------------------------------------------------


@dataclass(frozen=True)
class StreamBucket:
    """The Redis token bucket a post to a stream takes a token from (region/ratelimit.py)."""

    key: str
    rate_per_s: float
    burst: int


def stream_bucket(stream: str, tier: Tier, tiers: Tiers,
                  pick: Callable[[int], int] = random.randrange) -> StreamBucket | None:
    """The bucket of a post to ``stream`` in ``tier``; None in the push tier, where the
    stream's one bucket (``limits.stream_rate_per_s``, region/admission.py) protects the
    viewers' screens, which take every comment. Above push, sampling protects the screens
    and the bucket protects the region's ingest (``tiers.hot_stream_rate_per_s``), split
    over ``tiers.hot_stream_shards`` keys, one picked at random per post, each refilling at
    its share: no single Redis key (or Redis Cluster shard) sees every post of the stream,
    and since each post draws from a random shard, the region still admits about the
    configured rate."""
    if tier == "push":
        return None
    shards = tiers.hot_stream_shards
    return StreamBucket(f"chorus:rl:s:{stream}:{pick(shards)}",
                        tiers.hot_stream_rate_per_s / shards,
                        max(1, tiers.hot_stream_burst // shards))


class StreamBuckets:
    """`stream_bucket` of each post, by the tier the regions agreed (``board``): what the
    ingest asks per post. A stream nobody announces costs a dictionary lookup."""

    def __init__(self, board: TierBoard, tiers: Tiers,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.board = board
        self.tiers = tiers
        self.clock = clock

    def bucket(self, stream: str) -> StreamBucket | None:
        if not self.board.announced(stream):
            return None
        return stream_bucket(stream, self.board.tier(stream, self.clock()), self.tiers)

    def hot(self, stream: str) -> bool:
        """Whether ``stream`` is above the push tier."""
        return self.board.announced(stream) and self.board.tier(stream, self.clock()) != "push"
