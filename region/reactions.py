"""Reactions: lightweight taps (a heart, a laugh), counted per region and shared as per-second
aggregates, never one message per tap. Pure: the model, the arithmetic, and the interfaces of
the adapters beside it.

The life of a reaction (docs/design.md, "Reactions"):

1. **Count.** A gateway takes taps (``react`` frames, ``POST .../reactions``), checks the kind
   against ``reactions.kinds``, and every tick hands the batch to the region's counters
   (`ReactionCounter`, reactions_redis.py): one Redis round trip applies each user's token
   bucket and adds what was admitted to one of ``reactions.shards`` counters of the stream's
   current second (Redis's clock). No key is touched once per tap by every gateway: a hot
   stream's second is spread over the shards.
2. **Aggregate.** Once a second has closed, one gateway of the region claims it (a lease in
   Redis; another gateway takes it over if that one dies), sums its shards and stores one
   `Aggregate` in the region's reaction log (`ReactionLog`, reactions_jetstream.py), with the
   region's running total of the stream; ``Nats-Msg-Id`` = `Aggregate.msg_id` makes a second
   emitted twice (a lease taken over) one message.
3. **Forward.** The reaction outbox (global_/reactions.py) forwards each aggregate, durably,
   to the regions that have viewers of the stream: 100,000 taps a second on one stream cost
   one message a second per pair of regions.
4. **Show.** Each gateway keeps, for the streams it has viewers of, a `Board`: every region's
   latest running total and what arrived since the last frame; once a second its viewers get
   a ``reactions`` frame. Totals are the sum over origin regions of their running totals, so
   every region shows the same totals once it has every region's latest aggregate, however
   many aggregates it missed while it had no viewers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from chorus.errors import Unavailable
from chorus.model import STREAM_ID

KIND = re.compile(r"^[a-z0-9_]{1,32}$")
REGION = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")

Counts = Mapping[str, int]
"""Reactions per kind; a kind that is not there counts 0."""

RESOLUTIONS: dict[str, int] = {"1s": 1, "1m": 60}
"""Timeline resolutions a client may ask for, in seconds per bucket."""

MAX_BUCKETS: dict[int, int] = {1: 3600, 60: 360}
"""Buckets in one timeline page, per resolution: an hour of seconds, six hours of minutes.
Bounds what one page reads from each region's log (at most 21,600 aggregates per origin)."""


class ReactionsUnavailable(Unavailable):
    """The region's reaction counters (Redis) or its reaction log (JetStream) did not answer;
    nothing was half-counted."""


# -- counts ------------------------------------------------------------------------------------


def added(a: Counts, b: Counts) -> dict[str, int]:
    """``a + b``, per kind, without zeros."""
    out = {k: v for k, v in a.items() if v}
    for kind, n in b.items():
        if n:
            out[kind] = out.get(kind, 0) + n
    return out


def highest(a: Counts, b: Counts) -> dict[str, int]:
    """The larger of ``a`` and ``b``, per kind. Running totals only grow, so of two totals of
    one region the later is the larger in every kind: this picks it whatever order they
    arrived in."""
    out = dict(a)
    for kind, n in b.items():
        if n > out.get(kind, 0):
            out[kind] = n
    return out


def summed(many: Iterable[Counts]) -> dict[str, int]:
    out: dict[str, int] = {}
    for counts in many:
        out = added(out, counts)
    return out


def _counts(value: Any, what: str) -> dict[str, int]:
    if not isinstance(value, dict):
        raise ValueError(f"{what} is not an object of counts")
    out: dict[str, int] = {}
    for kind, n in value.items():
        if not isinstance(kind, str) or not KIND.fullmatch(kind):
            raise ValueError(f"{what} has a key that is not a reaction kind")
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise ValueError(f"{what}[{kind!r}] is not a non-negative integer")
        if n:
            out[kind] = n
    return out


# -- the aggregate -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Aggregate:
    """One region's reactions to one stream in one second, and its running total after it.

    ``region`` is the origin (the region that counted the taps); ``second`` is in seconds
    since the epoch, by the origin's Redis clock; ``counts`` what was counted in that second;
    ``total`` every reaction the origin counted for the stream up to and including this
    aggregate (and any emitted before it, whatever their seconds)."""

    region: str
    stream: str
    second: int
    counts: Counts = field(default_factory=dict)
    total: Counts = field(default_factory=dict)

    @property
    def msg_id(self) -> str:
        """The aggregate's identity in every region's log: a second emitted twice, or
        forwarded twice, is stored once."""
        return f"{self.region}:{self.stream}:{self.second}"

    def to_json(self) -> dict[str, Any]:
        return {"region": self.region, "stream": self.stream, "second": self.second,
                "counts": dict(self.counts), "total": dict(self.total)}

    def encode(self) -> bytes:
        return json.dumps(self.to_json(), separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, doc: Any) -> Aggregate:
        """Strict: ValueError names what is wrong (a stray or corrupted message)."""
        if not isinstance(doc, dict):
            raise ValueError("an aggregate is a JSON object")
        region, stream, second = doc.get("region"), doc.get("stream"), doc.get("second")
        if not isinstance(region, str) or not REGION.fullmatch(region):
            raise ValueError("'region' is not a region name")
        if not isinstance(stream, str) or not STREAM_ID.fullmatch(stream):
            raise ValueError("'stream' is not a stream id")
        if not isinstance(second, int) or isinstance(second, bool) or second < 0:
            raise ValueError("'second' is not a non-negative integer")
        return cls(region=region, stream=stream, second=second,
                   counts=_counts(doc.get("counts"), "'counts'"),
                   total=_counts(doc.get("total"), "'total'"))

    @classmethod
    def decode(cls, data: bytes) -> Aggregate:
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"an aggregate is JSON ({type(exc).__name__})") from None
        return cls.from_json(doc)


def next_aggregate(region: str, stream: str, second: int, counts: Counts,
                   last: Aggregate | None) -> Aggregate:
    """The aggregate that follows ``last`` (this region's previous one of the stream, None:
    none yet) in the region's log: its total is ``last``'s plus ``counts``."""
    return Aggregate(region=region, stream=stream, second=second, counts=added({}, counts),
                     total=added(last.total if last is not None else {}, counts))


# -- taking taps -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tap:
    """One reaction as a gateway took it."""

    user: str
    stream: str
    kind: str


def check_kind(kind: object, kinds: Sequence[str]) -> str:
    """``kind`` when it is one of ``kinds`` (``reactions.kinds``); ValueError says why not."""
    if not isinstance(kind, str) or not kind:
        raise ValueError("'kind' is required (a string)")
    if kind not in kinds:
        raise ValueError(f"unknown reaction kind {kind[:32]!r} (this server takes: "
                         f"{', '.join(kinds)})")
    return kind


def by_user(taps: Sequence[Tap]) -> list[tuple[str, list[int]]]:
    """The indexes of ``taps`` grouped by user, users and taps in order of arrival: one token
    bucket question per user per batch."""
    groups: dict[str, list[int]] = {}
    for i, tap in enumerate(taps):
        groups.setdefault(tap.user, []).append(i)
    return list(groups.items())


@dataclass(frozen=True)
class Counted:
    """What the counters did with a batch: for each user of `by_user`, in order, how many of
    their taps (the first ones) were admitted and, when some were not, in how many ms their
    bucket has a token again. ``second`` is the second they were counted in."""

    second: int
    admitted: tuple[int, ...]
    retry_ms: tuple[int, ...]


@dataclass(frozen=True)
class Closed:
    """A second of a stream that has ended in this region, its shards summed."""

    stream: str
    second: int
    counts: Counts


class ReactionCounter(Protocol):
    """The region's sharded per-second counters and per-user buckets (reactions_redis.py)."""

    async def count(self, taps: Sequence[Tap], *, shard: int) -> Counted:
        """Applies each user's bucket to their taps and counts the admitted ones into
        ``shard`` of their streams' current second. Raises `ReactionsUnavailable` (then
        nothing was counted)."""
        ...

    async def claim(self, limit: int) -> list[Closed]:
        """Up to ``limit`` closed seconds no other gateway holds (or whose holder's lease
        ran out), leased to this caller. Raises `ReactionsUnavailable`."""
        ...

    async def done(self, closed: Sequence[Closed]) -> None:
        """The claimed seconds are in the log: forget them. Raises `ReactionsUnavailable`."""
        ...


# -- the region's reaction log ---------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    """An aggregate at its place in a region's reaction log."""

    seq: int
    aggregate: Aggregate


@dataclass(frozen=True)
class Appended:
    """What an append did: ``stored`` (at ``seq``), ``duplicate`` (this second was stored
    before: nothing to do), or ``moved``: the origin's subject has a newer aggregate than the
    one the append was based on (another gateway emitted meanwhile): read it and retry."""

    outcome: Literal["stored", "duplicate", "moved"]
    seq: int = 0


class ReactionLog(Protocol):
    """A region's durable log of aggregates: its own, and those forwarded to it."""

    async def last(self, origin: str, stream: str) -> Stored | None:
        """The newest aggregate of ``stream`` from ``origin`` this log holds (None: none)."""
        ...

    async def append(self, aggregate: Aggregate, *, expected_last_seq: int) -> Appended:
        """Stores this region's own ``aggregate`` if the newest of its subject is still at
        ``expected_last_seq`` (0: none). Raises `ReactionsUnavailable`."""
        ...

    async def read(self, origin: str, stream: str, after_s: int, before_s: int,
                   limit: int) -> list[Aggregate]:
        """``origin``'s aggregates of ``stream`` with ``after_s <= second < before_s``, at most
        ``limit``. Raises `ReactionsUnavailable`."""
        ...


class RemoteReactions(Protocol):
    """The other regions' reactions, asked over the hub (global_/reactions.py). Never raises:
    a region that does not answer in time is None."""

    async def totals(self, stream: str) -> dict[str, Counts | None]:
        """Each other region's own running total of ``stream``."""
        ...

    async def timeline(self, stream: str, resolution_s: int, window: Window
                       ) -> dict[str, list[Bucket] | None]:
        """Each other region's own reactions to ``stream`` over ``window``, bucketed."""
        ...


# -- what a gateway shows ----------------------------------------------------------------------


@dataclass(frozen=True)
class View:
    """One ``reactions`` frame's worth: what arrived since the previous one (``second`` is
    the newest second among it) and the stream's totals over every origin."""

    second: int
    counts: Counts
    totals: Counts


@dataclass
class _Stream:
    totals: dict[str, dict[str, int]] = field(default_factory=dict)   # by origin region
    recent: dict[str, int] = field(default_factory=dict)
    second: int = 0
    fresh: bool = False          # something arrived since the last frame
    ready: bool = False          # the totals were read from every region (or given up on)


class Board:
    """The reactions of the streams a gateway has viewers of. Pure.

    Bounded by ``max_streams``: a stream opened beyond it is not shown (its viewers get no
    ``reactions`` frame) until another closes."""

    def __init__(self, max_streams: int = 100_000) -> None:
        self.max_streams = max_streams
        self._streams: dict[str, _Stream] = {}

    def __contains__(self, stream: str) -> bool:
        return stream in self._streams

    def streams(self) -> list[str]:
        return list(self._streams)

    def open(self, stream: str) -> bool:
        """Starts following ``stream``; False when the board is full."""
        if stream in self._streams:
            return True
        if len(self._streams) >= self.max_streams:
            return False
        self._streams[stream] = _Stream()
        return True

    def close(self, stream: str) -> None:
        self._streams.pop(stream, None)

    def seed(self, stream: str, origin: str, total: Counts) -> None:
        """``origin``'s running total as read at start-up (a bootstrap), not as news."""
        state = self._streams.get(stream)
        if state is not None:
            state.totals[origin] = highest(state.totals.get(origin, {}), total)

    def mark_ready(self, stream: str) -> None:
        """Every region's total was read (or given up on): the stream's frames may go out."""
        state = self._streams.get(stream)
        if state is not None:
            state.ready = True

    def ready(self, stream: str) -> bool:
        state = self._streams.get(stream)
        return state is not None and state.ready

    def apply(self, aggregate: Aggregate) -> bool:
        """A live aggregate; False when its stream is not followed here."""
        state = self._streams.get(aggregate.stream)
        if state is None:
            return False
        state.totals[aggregate.region] = highest(state.totals.get(aggregate.region, {}),
                                                 aggregate.total)
        state.recent = added(state.recent, aggregate.counts)
        state.second = max(state.second, aggregate.second)
        state.fresh = True
        return True

    def totals(self, stream: str) -> dict[str, int]:
        state = self._streams.get(stream)
        return summed(state.totals.values()) if state is not None else {}

    def view(self, stream: str) -> View | None:
        """The stream's totals as they stand, with nothing new (for a viewer that just came);
        None while the totals are not read yet."""
        state = self._streams.get(stream)
        if state is None or not state.ready:
            return None
        return View(second=state.second, counts={}, totals=self.totals(stream))

    def take(self, stream: str) -> View | None:
        """What arrived since the last `take` (None: nothing, or not ready), and forgets it."""
        state = self._streams.get(stream)
        if state is None or not state.ready or not state.fresh:
            return None
        view = View(second=state.second, counts=state.recent, totals=self.totals(stream))
        state.recent = {}
        state.fresh = False
        return view


# -- the timeline ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bucket:
    """Reactions counted in ``[start_s, start_s + resolution)``."""

    start_s: int
    counts: Counts


def bucketed(aggregates: Iterable[Aggregate], resolution_s: int, after_s: int,
             before_s: int) -> list[Bucket]:
    """The counts of ``aggregates`` in ``[after_s, before_s)``, summed per bucket of
    ``resolution_s`` seconds (aligned on the epoch), oldest first, empty buckets left out."""
    sums: dict[int, dict[str, int]] = {}
    for agg in aggregates:
        if after_s <= agg.second < before_s and agg.counts:
            start = agg.second - agg.second % resolution_s
            sums[start] = added(sums.get(start, {}), agg.counts)
    return [Bucket(start, counts) for start, counts in sorted(sums.items())]


def merged(pages: Iterable[Sequence[Bucket]]) -> list[Bucket]:
    """Buckets of several regions, summed per bucket start, oldest first."""
    sums: dict[int, dict[str, int]] = {}
    for page in pages:
        for bucket in page:
            sums[bucket.start_s] = added(sums.get(bucket.start_s, {}), bucket.counts)
    return [Bucket(start, counts) for start, counts in sorted(sums.items()) if counts]


@dataclass(frozen=True)
class Window:
    """One timeline page: ``[after_s, before_s)``; ``next_s`` where the following page starts
    (None: this page reaches the asked end)."""

    after_s: int
    before_s: int
    next_s: int | None


def page_window(after_s: int, before_s: int, resolution_s: int) -> Window:
    """The part of ``[after_s, before_s)`` one page covers, aligned on buckets: at most
    `MAX_BUCKETS` of ``resolution_s``. ValueError when the range is empty or reversed."""
    if after_s < 0 or before_s <= after_s:
        raise ValueError("'after' must be before 'before'")
    start = after_s - after_s % resolution_s
    limit = start + MAX_BUCKETS[resolution_s] * resolution_s
    if before_s <= limit:
        return Window(start, before_s, None)
    return Window(start, limit, limit)
