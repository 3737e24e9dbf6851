"""The region's sampling stage: one gateway decides a sampled stream for the whole region.
Pure: the messages, their encoding, and a follower's choice of which stage to follow.

Without the stage every gateway delivering a stream above push follows its whole live feed
and decides each comment (region/tiers_feed.py): a gateway's cost grows with the stream's
rate. With it, the stream's keeper (the gateway holding the region's lease on it,
region/tiers_redis.py) decides for every gateway of the region and publishes what its own
viewers get, already chained:

- on ``sampled.<region>.<stream>`` (chorus/names.py `stage_subject`) each shared item (the
  sample and the priority lane) as a `StageItem`, and once a second a `StageTick`: the `Skip`
  that moves every cursor to the last entry decided, with what the last second stood for
  ("showing n of m", the region's whole feed), sent even when nothing was decided, so that a
  follower can tell a quiet stage from a dead one;
- on ``own.<region>.<stream>.<user>`` (`own_subject`) each comment left out of the sample
  as a `StageItem` for its author alone, chained like the shared items.

Every other gateway delivering the stream (a follower) subscribes to the stage's subject and
to the own subject of each user it holds a session of (before the session starts:
region/stage_nats.py `StageLink.own_ready`), instead of the live feed, and offers
the items to its sessions unchanged: a follower costs the items it is sent, not the stream's
rate. An own item travels on the same connection as the shared ones, from the same
publisher, so it reaches the follower's connection in the stage's order; but each
subscription's messages are handled by a task of their own (nats-py), so a shared item may be
handled first and move its author's cursor past the own item: the session then writes the
own item out of the chain (region/session.py `offer_own`).

A hot stream's comments outside the priority lane are stored in the log's partitions
(region/log.py `Entry.part`): the stage decides them like any other, and hands out the shown
ones and authors' own as items with their ``part``, whose ``seq`` and ``prev`` are the
partition's; followers deliver them out of the chain (region/session.py `offer_loose`). Such
an item has a kind of its own on the wire (``loose``): a follower of older code refuses it as
an unknown kind (counted as rejected) rather than taking a partition's sequence for a place in
the log and moving its viewers' cursors by it; its viewers miss those comments until it is
upgraded. An item without a part is encoded as before.

`StageWatch` is a follower's choice: it follows one stage (by its gateway's name); a
follower that hears nothing from it for `SILENT_S` falls back to sampling the live feed
itself, and takes the next stage it hears (a new keeper's, or the old one's again).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Protocol

from chorus.model import Comment

SILENT_S = 2.0   # a stage not heard for this long is taken for dead (it ticks every second)
MAX_MESSAGE = 64 * 1024   # bytes: a stage message is one comment and a few numbers


@dataclass(frozen=True)
class StageItem:
    """A comment as the stage hands it out: at ``seq`` in the region's log, chained to the
    previous shared item ``prev``. ``source``: the stage's gateway. ``part`` > 0: the entry of
    that hot partition of the log, out of the chain: ``seq`` and ``prev`` are the partition's,
    never a cursor."""

    source: str
    seq: int
    prev: int
    comment: Comment
    part: int = 0


@dataclass(frozen=True)
class StageTick:
    """Once a second: everything of the stream after ``prev`` up to ``seq`` was decided (a
    `Skip` when ``seq > prev``, a heartbeat otherwise); the last whole second showed
    ``shown`` of ``posted`` comments, counted over the region's whole feed."""

    source: str
    prev: int
    seq: int
    shown: int
    posted: int


StageMessage = StageItem | StageTick


def encode(message: StageMessage) -> bytes:
    source = json.dumps(message.source)
    match message:
        case StageItem(seq=seq, prev=prev, comment=comment, part=part):
            # The comment's JSON is computed once (and most likely already was, for the
            # keeper's own viewers): spliced in, not encoded again.
            if part:
                return (f'{{"k":"loose","src":{source},"part":{part},"seq":{seq},'
                        f'"prev":{prev},"c":{comment.json_text}}}').encode()
            return (f'{{"k":"item","src":{source},"seq":{seq},"prev":{prev},'
                    f'"c":{comment.json_text}}}').encode()
        case StageTick(prev=prev, seq=seq, shown=shown, posted=posted):
            return (f'{{"k":"tick","src":{source},"seq":{seq},"prev":{prev},'
                    f'"shown":{shown},"posted":{posted}}}').encode()


def _count(doc: dict[str, Any], key: str) -> int:
    value = doc.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{key} is not a count: {value!r}")
    return value


def decode(data: bytes) -> StageMessage:
    """Strict: raises ValueError on anything but a message `encode` makes."""
    if len(data) > MAX_MESSAGE:
        raise ValueError(f"a stage message of {len(data)} bytes")
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError("a stage message is a JSON object")
    source = doc.get("src")
    if not isinstance(source, str) or not source:
        raise ValueError("no source")
    seq, prev = _count(doc, "seq"), _count(doc, "prev")
    match doc.get("k"):
        case "item" | "loose" as kind:
            if prev >= seq:
                raise ValueError(f"an item at {seq} chained to {prev}")
            part = 0
            if kind == "loose":
                part = _count(doc, "part")
                if part < 1:
                    raise ValueError("a loose item of no partition")
            return StageItem(source=source, seq=seq, prev=prev,
                             comment=Comment.from_json(doc.get("c")), part=part)
        case "tick":
            if prev > seq:
                raise ValueError(f"a tick from {prev} back to {seq}")
            shown, posted = _count(doc, "shown"), _count(doc, "posted")
            if shown > posted:
                raise ValueError(f"{shown} shown of {posted}")
            return StageTick(source=source, prev=prev, seq=seq, shown=shown, posted=posted)
        case kind:
            raise ValueError(f"unknown kind {kind!r}")


class StageOut(Protocol):
    """Where a keeper's feed hands what the stage publishes (region/stage_nats.py). Never
    blocks and never raises: a message that cannot go is a hole the followers' sessions read
    from the log, or a silence they fall back from."""

    def shared(self, stream: str, message: StageMessage) -> None:
        """A shared item or a tick, on the stream's stage subject."""
        ...

    def own(self, stream: str, user: str, item: StageItem) -> None:
        """An item for ``user``'s sessions alone."""
        ...


class StageWatch:
    """Which stage a follower takes messages from. ``now`` is any clock in seconds."""

    def __init__(self, silent_s: float = SILENT_S) -> None:
        self.silent_s = silent_s
        self.source: str | None = None   # None: no stage followed (sample the live feed)
        self.heard_at = -math.inf

    @property
    def following(self) -> bool:
        return self.source is not None

    def hear(self, source: str, now: float) -> bool:
        """Whether to take a message of ``source``: the stage followed; or a new one when
        none is followed or the followed one has been silent for ``silent_s`` (two stages at
        once, while a lease changes hands: the one followed is kept until it stops)."""
        if source != self.source and self.source is not None and (
                now - self.heard_at <= self.silent_s):
            return False
        self.source = source
        self.heard_at = now
        return True

    def accepts(self, source: str) -> bool:
        """Whether an own item of ``source`` is taken: only the followed stage's (while the
        live feed is followed, the feed hands authors their comments itself)."""
        return source == self.source

    def lapsed(self, now: float) -> bool:
        """True once, when the followed stage has been silent for ``silent_s``: the follower
        samples the live feed itself from then on."""
        if self.source is None or now - self.heard_at <= self.silent_s:
            return False
        self.source = None
        return True

    def drop(self) -> None:
        """Follows no stage any more (this gateway is the stage now, or the tier is push)."""
        self.source = None
