"""`ReactionLog` on the region's JetStream: the durable store of reaction aggregates.

One stream, ``REACTIONS``, in the region's domain, captures ``rx.<region>.<origin>.<stream>``:
the region's own aggregates (``<origin>`` = the region) and those other regions forwarded to
it. It re-publishes each on ``rxlive.<region>.<origin>.<stream>``, the gateways' live feed.
Every name is chorus/names.py's.

Why JetStream is the store of totals: an aggregate is one small message per stream per second
per region, the same medium as comments, replicated like the comment log in production; the
running total rides in every aggregate, so the newest one of a subject is the origin's total
(one Direct Get), and a stream's timeline is a range read of its subjects. Retention is
``reactions.retention_days`` (default 30): after that a stream's timeline is gone and a
running total starts again from zero (docs/config.md). The archive (Cassandra) is not needed.

Concurrency: the region's gateways emit seconds of one stream one after the other, each
append conditional on the newest aggregate of its subject (``Nats-Expected-Last-Subject-
Sequence``), so two gateways can never both build on the same total; a second emitted twice
(a lease taken over) is one message by its ``Nats-Msg-Id``, within `DUPLICATE_WINDOW_S`.
JetStream checks the expected sequence before the id (nats-server 2.12): such a second is
first refused as moved, and once built on the newest aggregate it is found a duplicate.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.js.api import DiscardPolicy, RePublish, StorageType, StreamConfig
from nats.js.errors import APIError
from nats.js.errors import Error as JsError

from chorus.drivers import translated
from chorus.names import (
    REACTIONS_DIRECT_GET,
    REACTIONS_STREAM,
    reaction_live_subjects,
    reaction_subject,
    reaction_subjects,
)
from region.reactions import Aggregate, Appended, ReactionsUnavailable, Stored
from region.reactions_redis import COUNTER_TTL_S

DUPLICATE_WINDOW_S = 120      # well above a lease (5 s): a second re-emitted is one message
REQUEST_TIMEOUT_S = 5.0
READ_PAGE = 1000              # aggregates per Direct Get batch
WRONG_LAST_SEQUENCE = 10071   # JetStream's err_code when an expected last sequence is not met


class JetStreamReactionLog:
    """``retention_days``: how long aggregates are kept (``reactions.retention_days``)."""

    def __init__(self, nc: Nats, region: str, *, retention_days: int) -> None:
        self.nc = nc
        self.region = region
        self.retention_s = retention_days * 86400
        self.js = nc.jetstream(timeout=REQUEST_TIMEOUT_S)

    async def ensure(self) -> None:
        """Creates the stream (every gateway calls this; the same config is a no-op)."""
        own = reaction_subjects(self.region)
        config = StreamConfig(
            name=REACTIONS_STREAM, subjects=[own], storage=StorageType.FILE,
            max_age=self.retention_s, duplicate_window=DUPLICATE_WINDOW_S, allow_direct=True,
            discard=DiscardPolicy.OLD,
            republish=RePublish(src=own, dest=reaction_live_subjects(self.region)))
        with translated(ReactionsUnavailable, "creating the reaction log"):
            try:
                await self.js.add_stream(config)
            except JsError as exc:
                if "already in use" not in str(exc):
                    raise
                await self.js.update_stream(config)

    async def last(self, origin: str, stream: str) -> Stored | None:
        msgs = await self._direct({"last_by_subj": reaction_subject(self.region, origin,
                                                                      stream)})
        if not msgs:
            return None
        return Stored(seq=_seq(msgs[0]), aggregate=_decode(msgs[0]))

    async def append(self, aggregate: Aggregate, *, expected_last_seq: int) -> Appended:
        subject = reaction_subject(self.region, aggregate.region, aggregate.stream)
        headers = {"Nats-Msg-Id": aggregate.msg_id,
                   "Nats-Expected-Last-Subject-Sequence": str(expected_last_seq)}
        try:
            with translated(ReactionsUnavailable, "storing a reaction aggregate"):
                ack = await self.js.publish(subject, aggregate.encode(), headers=headers)
        except ReactionsUnavailable as exc:
            cause = exc.__cause__
            if isinstance(cause, APIError) and cause.err_code == WRONG_LAST_SEQUENCE:
                return Appended("moved")
            raise
        return Appended("duplicate") if ack.duplicate else Appended("stored", ack.seq)

    async def read(self, origin: str, stream: str, after_s: int, before_s: int,
                   limit: int) -> list[Aggregate]:
        subject = reaction_subject(self.region, origin, stream)
        start = datetime.datetime.fromtimestamp(after_s, tz=datetime.UTC)
        body: dict[str, Any] = {"start_time": start.isoformat().replace("+00:00", "Z"),
                                "next_by_subj": subject}
        out: list[Aggregate] = []
        # An aggregate is stored after its second ends, at the latest when its counters in
        # Redis expire: past that, nothing of the window can follow.
        stop_ms = (before_s + COUNTER_TTL_S) * 1000
        while len(out) < limit:
            msgs = await self._direct({**body, "batch": READ_PAGE})
            for msg in msgs:
                agg = _decode(msg)
                if after_s <= agg.second < before_s:
                    out.append(agg)
            if len(msgs) < READ_PAGE or _stored_ms(msgs[-1]) > stop_ms:
                break
            body = {"seq": _seq(msgs[-1]) + 1, "next_by_subj": subject}
        return out[:limit]

    async def _direct(self, body: dict[str, Any]) -> list[Msg]:
        """A Direct Get; batch requests end with an EOB status message, single ones don't."""
        batch = "batch" in body
        out: list[Msg] = []
        with translated(ReactionsUnavailable, "reading the reaction log"):
            inbox = self.nc.new_inbox()
            sub = await self.nc.subscribe(inbox)
            try:
                await self.nc.publish(REACTIONS_DIRECT_GET, json.dumps(body).encode(),
                                      reply=inbox)
                while True:
                    msg = await sub.next_msg(timeout=REQUEST_TIMEOUT_S)
                    status = (msg.headers or {}).get("Status")
                    if status:
                        if status in ("204", "404"):
                            return out
                        raise ReactionsUnavailable(
                            f"direct get failed: {status} "
                            f"{(msg.headers or {}).get('Description', '')}")
                    out.append(msg)
                    if not batch:
                        return out
            finally:
                await sub.unsubscribe()


def _seq(msg: Msg) -> int:
    return int((msg.headers or {})["Nats-Sequence"])


def _stored_ms(msg: Msg) -> int:
    """When the log stored ``msg``, in ms since the epoch (0: not said)."""
    try:
        # Python 3.11 reads RFC 3339 with a "Z" and nanoseconds (it keeps microseconds).
        stored = datetime.datetime.fromisoformat((msg.headers or {}).get("Nats-Time-Stamp", ""))
    except ValueError:
        return 0
    return int(stored.timestamp() * 1000)


def _decode(msg: Msg) -> Aggregate:
    try:
        return Aggregate.decode(msg.data)
    except ValueError as exc:
        # Only this code writes the subjects: a message that is not an aggregate is a bug or
        # tampering, and the read fails rather than count it as nothing.
        raise ReactionsUnavailable(f"the reaction log holds a message that is not an "
                                   f"aggregate at {msg.subject}: {exc}") from None
