"""The hub protocol: every message regions exchange over the hub, typed, with both ends here.

=====================  ==============================  ========================================
message                subject (chorus/names.py)        JSON on the wire
=====================  ==============================  ========================================
`PresenceQuery`        ``presence_query(region)``       ``{"stream"}``
`PresenceAnswer`       its reply                        ``{"region", "stream", "viewers"}``
                                                        (``"viewers": null``: unknown)
`PresenceChange`       ``PRESENCE_CHANGE``              ``{"region", "stream", "viewers"}``
`PresenceBatchQuery`   ``presence_batch_query(region)`` ``{"streams": [stream]}``
`PresenceBatchAnswer`  its reply                        ``{"region", "viewers": {stream: n}}``
                                                        (``"viewers": null``: unknown)
`RecentRequest`        ``recent_subject(region)``       ``{"stream", "since_ms"}``
`RecentReply`          its reply                        ``{"region", "comments": [comment]}``
`Heartbeat`            ``registry_subject(region)``     ``{"region", "gateway", "healthy",
                                                        "ts_ms"}``
`ModerationHead`       ``moderation_head(region)``      ``{"region", "gateway",
                                                        "applied": {origin: seq}}``
`ReactionTotalsQuery`  ``reaction_totals_query(r)``     ``{"stream"}``
`ReactionTotalsAnswer` its reply                        ``{"region", "stream", "second",
                                                        "total": {kind: n}}``
`ReactionTimeline-`    ``reaction_timeline_query(r)``   ``{"stream", "resolution_s",
`Query`                                                 "after_s", "before_s"}``
`ReactionTimeline-`    its reply                        ``{"region", "stream",
`Answer`                                                "buckets": [[start_s, {kind: n}]]}``
`TierNotice`           ``TIER_NOTICES``                 ``{"region", "stream", "tier",
                                                        "viewers", "rate_per_s"}``
=====================  ==============================  ========================================

The wire carries no kind: the subject says what a message is, and the JSON is exactly what
earlier versions send, so regions on the old and the new code talk during a rolling upgrade.
Keys a message does not know are ignored (a newer sender may add some); a missing key, a
value of the wrong type, a negative count or a stream id that is not one is malformed.

Each message has ``encode() -> bytes`` and ``decode(data)``, which raises `HubMessageError`
on anything malformed. A receiver hands that error to `Rejections`, which counts it
(``chorus_hub_messages_rejected_total{kind}``) and logs it without letting a flood flood the
log; it never reads a rejected message as an answer (for presence: no answer, which counts
as having viewers).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from nats.aio.client import Client as Nats
from nats.aio.subscription import Subscription

from chorus.drivers import driver_errors
from chorus.errors import ChorusError
from chorus.metrics import Metrics
from chorus.model import STREAM_ID, Comment
from region.reactions import KIND as REACTION_KIND
from region.reactions import MAX_BUCKETS, Bucket
from region.tiers import TIERS, Notice, Tier

log = logging.getLogger(__name__)

Kind = Literal["presence_query", "presence_answer", "presence_change", "recent_request",
               "recent_reply", "heartbeat", "moderation_head", "rx_totals_query",
               "rx_totals_answer", "rx_timeline_query", "rx_timeline_answer", "tier_notice",
               "presence_batch_query", "presence_batch_answer"]


class HubMessageError(ChorusError):
    """A hub message that is not what its subject promises. ``kind`` is what it should have
    been (a bounded metric label), ``reason`` what is wrong with it."""

    def __init__(self, kind: Kind, reason: str) -> None:
        self.kind: Kind = kind
        self.reason = reason
        super().__init__(f"malformed {kind}: {reason}")


# -- reading fields strictly -----------------------------------------------------------------


def _object(kind: Kind, data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad UTF-8 and integers too long to convert; RecursionError a
        # document nested too deep.
        raise HubMessageError(kind, f"not JSON ({type(exc).__name__})") from None
    if not isinstance(doc, dict):
        raise HubMessageError(kind, "not a JSON object")
    return doc


def _field(kind: Kind, doc: dict[str, Any], key: str) -> Any:
    if key not in doc:
        raise HubMessageError(kind, f"no {key!r}")
    return doc[key]


def _str(kind: Kind, doc: dict[str, Any], key: str) -> str:
    value = _field(kind, doc, key)
    if not isinstance(value, str) or not value:
        raise HubMessageError(kind, f"{key!r} is not a non-empty string")
    return value


def _stream(kind: Kind, doc: dict[str, Any]) -> str:
    value = _str(kind, doc, "stream")
    if not STREAM_ID.fullmatch(value):
        raise HubMessageError(kind, "'stream' is not a stream id")
    return value


def _count(kind: Kind, doc: dict[str, Any], key: str) -> int:
    value = _field(kind, doc, key)
    # bool is an int to Python, never to a sender of ours.
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise HubMessageError(kind, f"{key!r} is not a non-negative integer")
    return value


def _count_or_unknown(kind: Kind, doc: dict[str, Any], key: str) -> int | None:
    """A count that may be ``null`` (unknown); the key must still be there."""
    return None if _field(kind, doc, key) is None else _count(kind, doc, key)


def _bool(kind: Kind, doc: dict[str, Any], key: str) -> bool:
    value = _field(kind, doc, key)
    if not isinstance(value, bool):
        raise HubMessageError(kind, f"{key!r} is not true or false")
    return value


def _dumps(doc: dict[str, Any]) -> bytes:
    # json.dumps's default separators: the bytes earlier versions send.
    return json.dumps(doc).encode()


# -- the messages ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PresenceQuery:
    """"How many viewers of ``stream`` do you have?", asked of one region (one gateway of
    it answers, queue group ``presence``)."""

    stream: str
    kind: Literal["presence_query"] = "presence_query"

    def encode(self) -> bytes:
        return _dumps({"stream": self.stream})

    @classmethod
    def decode(cls, data: bytes) -> PresenceQuery:
        doc = _object("presence_query", data)
        return cls(stream=_stream("presence_query", doc))


@dataclass(frozen=True)
class PresenceAnswer:
    """A region's viewer count of a stream, in reply to a `PresenceQuery`.

    ``viewers`` None (``null`` on the wire): the region cannot vouch for a count, because its
    presence index is away or being rebuilt after a loss (region/presence.py
    `PresenceUnknown`: its counts may be too low); the asker counts it as having viewers at
    once, instead of waiting out the question's timeout as it did when such a region stayed
    silent. During a rolling upgrade an asker on older code refuses the ``null`` as
    malformed (a counted rejection, ``kind="presence_answer"``) and fails open just as soon;
    a responder on older code stays silent, and a newer asker times out and fails open as
    before."""

    region: str
    stream: str
    viewers: int | None
    kind: Literal["presence_answer"] = "presence_answer"

    def encode(self) -> bytes:
        return _dumps({"region": self.region, "stream": self.stream, "viewers": self.viewers})

    @classmethod
    def decode(cls, data: bytes) -> PresenceAnswer:
        k: Kind = "presence_answer"
        doc = _object(k, data)
        return cls(region=_str(k, doc, "region"), stream=_stream(k, doc),
                   viewers=_count_or_unknown(k, doc, "viewers"))

    def answers(self, region: str, query: PresenceQuery) -> bool:
        """Whether this is ``region``'s answer to ``query`` (anything else is no answer)."""
        return self.region == region and self.stream == query.stream


@dataclass(frozen=True)
class PresenceChange:
    """A region's count of a stream went 0 -> n (``viewers`` > 0) or n -> 0; every gateway of
    every region drops what it cached of that region's stream."""

    region: str
    stream: str
    viewers: int
    kind: Literal["presence_change"] = "presence_change"

    def encode(self) -> bytes:
        return _dumps({"region": self.region, "stream": self.stream, "viewers": self.viewers})

    @classmethod
    def decode(cls, data: bytes) -> PresenceChange:
        k: Kind = "presence_change"
        doc = _object(k, data)
        return cls(region=_str(k, doc, "region"), stream=_stream(k, doc),
                   viewers=_count(k, doc, "viewers"))


MAX_PRESENCE_STREAMS = 256  # bounds one batched presence question (an outbox batch: 128)


@dataclass(frozen=True)
class PresenceBatchQuery:
    """"How many viewers of each of ``streams`` do you have?", asked of one region once per
    outbox batch instead of once per stream (one gateway of it answers, queue group
    ``presence``, with one read of its presence index)."""

    streams: tuple[str, ...]
    kind: Literal["presence_batch_query"] = "presence_batch_query"

    def encode(self) -> bytes:
        return _dumps({"streams": list(self.streams)})

    @classmethod
    def decode(cls, data: bytes) -> PresenceBatchQuery:
        k: Kind = "presence_batch_query"
        raw = _field(k, _object(k, data), "streams")
        if not isinstance(raw, list) or not 0 < len(raw) <= MAX_PRESENCE_STREAMS:
            raise HubMessageError(k, f"'streams' is not a list of 1 to {MAX_PRESENCE_STREAMS} "
                                     "stream ids")
        for stream in raw:
            if not isinstance(stream, str) or not STREAM_ID.fullmatch(stream):
                raise HubMessageError(k, "'streams' holds something that is not a stream id")
        return cls(streams=tuple(dict.fromkeys(raw)))


@dataclass(frozen=True)
class PresenceBatchAnswer:
    """A region's viewer count of each stream of a `PresenceBatchQuery`.

    ``viewers`` None (``"viewers": null`` on the wire): unknown for every stream asked, as
    the region's whole presence index is away or being rebuilt (see `PresenceAnswer`; the
    same holds across a rolling upgrade: an older asker refuses the ``null``, counted as
    ``kind="presence_batch_answer"``, and fails open at once)."""

    region: str
    viewers: dict[str, int] | None
    kind: Literal["presence_batch_answer"] = "presence_batch_answer"

    def encode(self) -> bytes:
        return _dumps({"region": self.region, "viewers": self.viewers})

    @classmethod
    def decode(cls, data: bytes) -> PresenceBatchAnswer:
        k: Kind = "presence_batch_answer"
        doc = _object(k, data)
        raw = _field(k, doc, "viewers")
        if raw is None:
            return cls(region=_str(k, doc, "region"), viewers=None)
        if not isinstance(raw, dict) or len(raw) > MAX_PRESENCE_STREAMS:
            raise HubMessageError(k, f"'viewers' is not null or an object of at most "
                                     f"{MAX_PRESENCE_STREAMS} counts")
        viewers = {}
        for stream in raw:
            if not isinstance(stream, str) or not STREAM_ID.fullmatch(stream):
                raise HubMessageError(k, "'viewers' has a key that is not a stream id")
            viewers[stream] = _count(k, raw, stream)
        return cls(region=_str(k, doc, "region"), viewers=viewers)

    def answers(self, region: str, query: PresenceBatchQuery) -> bool:
        """Whether this is ``region``'s answer to ``query``: every stream asked, and nothing
        else, or unknown for all of them (anything else is no answer)."""
        return self.region == region and (self.viewers is None
                                          or self.viewers.keys() == set(query.streams))


@dataclass(frozen=True)
class RecentRequest:
    """Late-join bootstrap: "the comments of ``stream`` you originated since ``since_ms``"
    (ms since the epoch, the asker's wall clock)."""

    stream: str
    since_ms: int
    kind: Literal["recent_request"] = "recent_request"

    def encode(self) -> bytes:
        return _dumps({"stream": self.stream, "since_ms": self.since_ms})

    @classmethod
    def decode(cls, data: bytes) -> RecentRequest:
        k: Kind = "recent_request"
        doc = _object(k, data)
        return cls(stream=_stream(k, doc), since_ms=_count(k, doc, "since_ms"))


@dataclass(frozen=True)
class RecentReply:
    """A region's own recent comments of the requested stream, oldest first."""

    region: str
    comments: tuple[Comment, ...]
    # Ids of those the region stores in a hot partition of its log (region/log_jetstream.py):
    # the asker stores them in its own partition of the id, as the outbox forwards them, so
    # that its duplicate window makes the two copies one. Absent from older regions' replies.
    hot: frozenset[str] = frozenset()
    kind: Literal["recent_reply"] = "recent_reply"

    def encode(self) -> bytes:
        doc: dict[str, Any] = {"region": self.region,
                               "comments": [c.to_json() for c in self.comments]}
        if self.hot:
            doc["hot"] = sorted(self.hot)
        return _dumps(doc)

    @classmethod
    def decode(cls, data: bytes) -> RecentReply:
        k: Kind = "recent_reply"
        doc = _object(k, data)
        raw = _field(k, doc, "comments")
        if not isinstance(raw, list):
            raise HubMessageError(k, "'comments' is not a list")
        try:
            comments = tuple(Comment.from_json(c) for c in raw)
        except ValueError as exc:
            # The reason may quote the wire: keep it short.
            raise HubMessageError(k, f"a comment is malformed ({str(exc)[:120]})") from None
        hot = doc.get("hot", [])
        if not isinstance(hot, list) or not all(isinstance(i, str) for i in hot):
            raise HubMessageError(k, "'hot' is not a list of comment ids")
        ids = {c.id for c in comments}
        if not ids.issuperset(hot):
            raise HubMessageError(k, "'hot' names a comment the reply does not carry")
        return cls(region=_str(k, doc, "region"), comments=comments, hot=frozenset(hot))

    def answers(self, region: str, request: RecentRequest) -> bool:
        """Whether this is ``region``'s reply to ``request``: its own comments of the stream."""
        return self.region == region and all(
            c.region == region and c.stream == request.stream for c in self.comments)


@dataclass(frozen=True)
class Heartbeat:
    """One gateway's announcement. ``gateway`` is its public URL; ``ts_ms`` the sender's wall
    clock (ms since the epoch)."""

    region: str
    gateway: str
    healthy: bool
    ts_ms: int
    kind: Literal["heartbeat"] = "heartbeat"

    def encode(self) -> bytes:
        return _dumps({"region": self.region, "gateway": self.gateway,
                       "healthy": self.healthy, "ts_ms": self.ts_ms})

    @classmethod
    def decode(cls, data: bytes) -> Heartbeat:
        k: Kind = "heartbeat"
        doc = _object(k, data)
        return cls(region=_str(k, doc, "region"), gateway=_str(k, doc, "gateway"),
                   healthy=_bool(k, doc, "healthy"), ts_ms=_count(k, doc, "ts_ms"))


@dataclass(frozen=True)
class ModerationHead:
    """What one gateway has applied of every region's moderation decisions: ``applied`` maps
    an origin region to the last sequence of its decisions applied (global_/moderation.py).
    A gateway that hears an origin's own gateways at a higher sequence than it holds is
    behind, and catches up before it admits posts."""

    region: str
    gateway: str
    applied: dict[str, int]
    kind: Literal["moderation_head"] = "moderation_head"

    def encode(self) -> bytes:
        return _dumps({"region": self.region, "gateway": self.gateway,
                       "applied": self.applied})

    @classmethod
    def decode(cls, data: bytes) -> ModerationHead:
        k: Kind = "moderation_head"
        doc = _object(k, data)
        raw = _field(k, doc, "applied")
        if not isinstance(raw, dict) or len(raw) > MAX_REGIONS:
            raise HubMessageError(k, f"'applied' is not an object of at most {MAX_REGIONS} "
                                     "regions")
        applied = {}
        for origin in raw:
            if not isinstance(origin, str) or not origin:
                raise HubMessageError(k, "'applied' has a key that is not a region")
            applied[origin] = _count(k, raw, origin)
        return cls(region=_str(k, doc, "region"), gateway=_str(k, doc, "gateway"),
                   applied=applied)


MAX_REGIONS = 64  # bounds what one ModerationHead may make a receiver hold

# -- reactions (global_/reactions.py) ---------------------------------------------------------

MAX_KINDS = 64  # bounds the counts one reaction message may make a receiver hold


def _reaction_counts(kind: Kind, doc: dict[str, Any], key: str) -> dict[str, int]:
    raw = _field(kind, doc, key)
    if not isinstance(raw, dict) or len(raw) > MAX_KINDS:
        raise HubMessageError(kind, f"{key!r} is not an object of at most {MAX_KINDS} counts")
    out = {}
    for name in raw:
        if not isinstance(name, str) or not REACTION_KIND.fullmatch(name):
            raise HubMessageError(kind, f"{key!r} has a key that is not a reaction kind")
        out[name] = _count(kind, raw, name)
    return out


@dataclass(frozen=True)
class ReactionTotalsQuery:
    """"What is your running total of ``stream``'s reactions?", asked of one region (one
    gateway of it answers, queue group ``rx-totals``) when a gateway starts showing a
    stream's reactions."""

    stream: str
    kind: Literal["rx_totals_query"] = "rx_totals_query"

    def encode(self) -> bytes:
        return _dumps({"stream": self.stream})

    @classmethod
    def decode(cls, data: bytes) -> ReactionTotalsQuery:
        return cls(stream=_stream("rx_totals_query", _object("rx_totals_query", data)))


@dataclass(frozen=True)
class ReactionTotalsAnswer:
    """A region's own running total of a stream's reactions, as of its newest aggregate
    (``second``; 0 with an empty ``total``: it has counted none)."""

    region: str
    stream: str
    second: int
    total: dict[str, int]
    kind: Literal["rx_totals_answer"] = "rx_totals_answer"

    def encode(self) -> bytes:
        return _dumps({"region": self.region, "stream": self.stream, "second": self.second,
                       "total": self.total})

    @classmethod
    def decode(cls, data: bytes) -> ReactionTotalsAnswer:
        k: Kind = "rx_totals_answer"
        doc = _object(k, data)
        return cls(region=_str(k, doc, "region"), stream=_stream(k, doc),
                   second=_count(k, doc, "second"), total=_reaction_counts(k, doc, "total"))

    def answers(self, region: str, query: ReactionTotalsQuery) -> bool:
        return self.region == region and self.stream == query.stream


@dataclass(frozen=True)
class ReactionTimelineQuery:
    """"Your own reactions to ``stream`` in ``[after_s, before_s)``, per ``resolution_s``"
    (seconds since the epoch; at most one page, region/reactions.py `page_window`)."""

    stream: str
    resolution_s: int
    after_s: int
    before_s: int
    kind: Literal["rx_timeline_query"] = "rx_timeline_query"

    def encode(self) -> bytes:
        return _dumps({"stream": self.stream, "resolution_s": self.resolution_s,
                       "after_s": self.after_s, "before_s": self.before_s})

    @classmethod
    def decode(cls, data: bytes) -> ReactionTimelineQuery:
        k: Kind = "rx_timeline_query"
        doc = _object(k, data)
        query = cls(stream=_stream(k, doc), resolution_s=_count(k, doc, "resolution_s"),
                    after_s=_count(k, doc, "after_s"), before_s=_count(k, doc, "before_s"))
        if query.resolution_s not in MAX_BUCKETS:
            raise HubMessageError(k, "'resolution_s' is not a resolution of the timeline")
        span = MAX_BUCKETS[query.resolution_s] * query.resolution_s
        if not query.after_s < query.before_s <= query.after_s + span:
            raise HubMessageError(k, "the range is empty or longer than a page")
        return query


@dataclass(frozen=True)
class ReactionTimelineAnswer:
    """A region's own reactions to a stream over the asked range, per bucket, oldest first
    (buckets without reactions left out)."""

    region: str
    stream: str
    buckets: tuple[Bucket, ...]
    kind: Literal["rx_timeline_answer"] = "rx_timeline_answer"

    def encode(self) -> bytes:
        return _dumps({"region": self.region, "stream": self.stream,
                       "buckets": [[b.start_s, dict(b.counts)] for b in self.buckets]})

    @classmethod
    def decode(cls, data: bytes) -> ReactionTimelineAnswer:
        k: Kind = "rx_timeline_answer"
        doc = _object(k, data)
        raw = _field(k, doc, "buckets")
        if not isinstance(raw, list) or len(raw) > max(MAX_BUCKETS.values()):
            raise HubMessageError(k, "'buckets' is not a list of at most a page of buckets")
        buckets = []
        for item in raw:
            if not isinstance(item, list) or len(item) != 2:
                raise HubMessageError(k, "a bucket is [start_s, counts]")
            pair = {"start_s": item[0], "counts": item[1]}
            buckets.append(Bucket(start_s=_count(k, pair, "start_s"),
                                  counts=_reaction_counts(k, pair, "counts")))
        return cls(region=_str(k, doc, "region"), stream=_stream(k, doc),
                   buckets=tuple(buckets))

    def answers(self, region: str, query: ReactionTimelineQuery) -> bool:
        """``region``'s answer to ``query``: its buckets all lie in the asked range."""
        return (self.region == region and self.stream == query.stream
                and all(query.after_s - query.after_s % query.resolution_s <= b.start_s
                        < query.before_s for b in self.buckets))


# -- hot streams (global_/tiers.py) ----------------------------------------------------------


@dataclass(frozen=True)
class TierNotice:
    """A region keeper's word on a warm stream (region/tiers.py `Notice`): the ``tier`` it
    holds, and its reading: ``viewers`` in every region and comments a second
    (``rate_per_s``, whole)."""

    region: str
    stream: str
    tier: Tier
    viewers: int
    rate_per_s: int
    kind: Literal["tier_notice"] = "tier_notice"

    def encode(self) -> bytes:
        return _dumps({"region": self.region, "stream": self.stream, "tier": self.tier,
                       "viewers": self.viewers, "rate_per_s": self.rate_per_s})

    @classmethod
    def decode(cls, data: bytes) -> TierNotice:
        k: Kind = "tier_notice"
        doc = _object(k, data)
        tier = _str(k, doc, "tier")
        if tier not in TIERS:
            raise HubMessageError(k, f"'tier' is not one of {', '.join(TIERS)}")
        return cls(region=_str(k, doc, "region"), stream=_stream(k, doc),
                   tier=tier,
                   viewers=_count(k, doc, "viewers"), rate_per_s=_count(k, doc, "rate_per_s"))

    @classmethod
    def of(cls, notice: Notice) -> TierNotice:
        return cls(region=notice.region, stream=notice.stream, tier=notice.tier,
                   viewers=notice.viewers, rate_per_s=notice.rate_per_s)

    def notice(self) -> Notice:
        return Notice(region=self.region, stream=self.stream, tier=self.tier,
                      viewers=self.viewers, rate_per_s=self.rate_per_s)


HubMessage = (PresenceQuery | PresenceAnswer | PresenceChange | PresenceBatchQuery
              | PresenceBatchAnswer | RecentRequest | RecentReply
              | Heartbeat | ModerationHead | ReactionTotalsQuery | ReactionTotalsAnswer
              | ReactionTimelineQuery | ReactionTimelineAnswer | TierNotice)

_DECODERS: dict[Kind, Callable[[bytes], HubMessage]] = {
    "presence_query": PresenceQuery.decode,
    "presence_answer": PresenceAnswer.decode,
    "presence_change": PresenceChange.decode,
    "presence_batch_query": PresenceBatchQuery.decode,
    "presence_batch_answer": PresenceBatchAnswer.decode,
    "recent_request": RecentRequest.decode,
    "recent_reply": RecentReply.decode,
    "heartbeat": Heartbeat.decode,
    "moderation_head": ModerationHead.decode,
    "rx_totals_query": ReactionTotalsQuery.decode,
    "rx_totals_answer": ReactionTotalsAnswer.decode,
    "rx_timeline_query": ReactionTimelineQuery.decode,
    "rx_timeline_answer": ReactionTimelineAnswer.decode,
    "tier_notice": TierNotice.decode,
}


def decode(kind: Kind, data: bytes) -> HubMessage:
    """The message of ``kind`` in ``data`` (the receiver knows the kind from the subject)."""
    return _DECODERS[kind](data)


# -- the receiving end of a bad message ------------------------------------------------------


@dataclass
class LogThrottle:
    """At most one log line per key every ``every_s`` seconds of ``clock``. Pure."""

    every_s: float
    clock: Callable[[], float] = time.monotonic
    _last: dict[str, float] = field(default_factory=dict)
    _held: dict[str, int] = field(default_factory=dict)

    def admit(self, key: str) -> int | None:
        """None: stay quiet. Otherwise log now; the number is how many lines of ``key`` were
        held back since the last one. Keys must be few (they are kept)."""
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.every_s:
            self._held[key] = self._held.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._held.pop(key, 0)


REJECTION_LOG_EVERY_S = 10.0  # one line per kind at most this often; the counter has them all


class Rejections:
    """What a receiver does with a `HubMessageError`: count it, log it (throttled per kind)."""

    def __init__(self, metrics: Metrics, *, every_s: float = REJECTION_LOG_EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.metrics = metrics
        self.throttle = LogThrottle(every_s, clock)

    def __call__(self, error: HubMessageError, subject: str) -> None:
        self.metrics.hub_rejected(error.kind)
        held = self.throttle.admit(error.kind)
        if held is None:
            return
        more = f" ({held} more since the last report)" if held else ""
        # %r: the subject comes from the wire; keep control characters out of the log.
        log.warning("rejected a hub message on %r: %s%s", subject[:200], error, more)


M = TypeVar("M")


@contextlib.asynccontextmanager
async def subscribed(nc: Nats, subject: str) -> AsyncIterator[Subscription]:
    """A subscription for the life of the block, let go of when it ends (quietly when the
    connection that would carry the unsubscribe is already closed)."""
    sub = await nc.subscribe(subject)
    try:
        yield sub
    finally:
        with contextlib.suppress(*driver_errors("nats")):  # a closed connection ended it
            await sub.unsubscribe()


async def received(sub: Subscription, decode: Callable[[bytes], M],
                   rejections: Rejections) -> AsyncIterator[M]:
    """Each message of ``sub``, decoded; one that does not decode is counted and skipped: a
    stray publisher must not break a listener."""
    async for msg in sub.messages:
        try:
            message = decode(msg.data)
        except HubMessageError as err:
            rejections(err, msg.subject)
            continue
        yield message
