"""The persister: every comment a region originated goes from its JetStream log into the
archive.

Each gateway of the region runs one `Persister`; all of them pull from one durable JetStream
consumer (`DURABLE`) on the region's ``COMMENTS`` stream, so each message is handled by one
gateway and a gateway that dies leaves its unacknowledged batch to the others (JetStream
redelivers it after `ACK_WAIT_S`). A batch is acknowledged only after the archive accepted
every write in it (LOCAL_QUORUM, see archive_cassandra.py): a crash at any point loses
nothing, it only redelivers, and a redelivered comment is written to the same row again
(its key derives from the comment id alone), so it is stored once.

The log also holds comments forwarded from other regions; their origin archives them, so
they are acknowledged here without a write.

When the archive is down the persister keeps its batch and retries it with capped, jittered
exponential backoff (`Backoff`), telling JetStream it is still working on it; nothing else
waits on it, so the live path goes on at full speed while the backlog builds up in
JetStream (its lag: ``chorus status``), and drains once the archive is back.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass

from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from nats.js.errors import Error as JsError

from chorus.ids import is_id
from chorus.model import Comment
from region.archive import Archive, ArchiveUnavailable
from region.log_jetstream import STREAM, subject

log = logging.getLogger(__name__)

DURABLE = "archive"       # the consumer every gateway of a region shares
BATCH_MAX = 256           # messages per fetch: one round of concurrent writes
FETCH_WAIT_S = 1.0        # a fetch returns after this when there is nothing to archive
ACK_WAIT_S = 30.0         # JetStream redelivers a batch not acknowledged within this
MAX_ACK_PENDING = 4096    # unacknowledged messages over all gateways: bounds their memory
BACKOFF_FIRST_S = 0.2     # first wait after a failed write or fetch...
BACKOFF_MAX_S = 10.0      # ...doubling up to this; below ACK_WAIT_S, so a batch stays ours

_NATS_ERRORS = (NatsError, JsError, NatsTimeout, TimeoutError)


class Backoff:
    """Capped exponential backoff with jitter: the n-th wait is uniform in
    [d/2, d], d = min(first * 2**n, cap). Jitter keeps a region's gateways from retrying
    in lockstep."""

    def __init__(self, first_s: float = BACKOFF_FIRST_S, max_s: float = BACKOFF_MAX_S,
                 rng: random.Random | None = None) -> None:
        self.first_s = first_s
        self.max_s = max_s
        self.attempt = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        delay = min(self.first_s * 2 ** self.attempt, self.max_s)
        self.attempt = min(self.attempt + 1, 62)
        return self._rng.uniform(delay / 2, delay)

    def reset(self) -> None:
        self.attempt = 0


@dataclass(frozen=True)
class Sorted:
    """A batch split by what to do with each message."""

    own: tuple[tuple[Msg, Comment], ...]   # originated here: archive, then acknowledge
    foreign: tuple[Msg, ...]               # another region's: acknowledge only
    bad: tuple[Msg, ...]                   # not a comment: terminate (never redelivered)


def sort_batch(msgs: Sequence[Msg], region: str) -> Sorted:
    own: list[tuple[Msg, Comment]] = []
    foreign: list[Msg] = []
    bad: list[Msg] = []
    for msg in msgs:
        try:
            comment = Comment.decode(msg.data)
        except ValueError:
            bad.append(msg)
            continue
        if not is_id(comment.id):
            bad.append(msg)
        elif comment.region == region:
            own.append((msg, comment))
        else:
            foreign.append(msg)
    return Sorted(own=tuple(own), foreign=tuple(foreign), bad=tuple(bad))


@dataclass
class Stats:
    """What this gateway's persister did since it started (logged, and read by tests)."""

    written: int = 0
    foreign: int = 0
    bad: int = 0
    failures: int = 0
    last_error: str = ""
    failing: bool = False


def consumer_config(region: str, filter_subject: str | None = None) -> ConsumerConfig:
    """The durable consumer's config: identical in every gateway (JetStream refuses a
    second config for one durable name), hence built in one place."""
    return ConsumerConfig(
        durable_name=DURABLE, deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ACK_WAIT_S, max_ack_pending=MAX_ACK_PENDING,
        # Never give up on a comment: the archive must end complete.
        max_deliver=-1, filter_subject=filter_subject or subject(region, ">"))


class Persister:
    """Run `run` as a task owned by the gateway; cancel it to stop (an unacknowledged batch
    is then redelivered to another gateway after `ACK_WAIT_S`).

    ``durable`` and ``filter_subject`` exist for benchmarks, which measure a persister of
    their own on one stream; the gateways use the defaults.
    """

    def __init__(self, nc: Nats, region: str, archive: Archive, *,
                 batch_max: int = BATCH_MAX, durable: str = DURABLE,
                 filter_subject: str | None = None) -> None:
        self.nc = nc
        self.region = region
        self.archive = archive
        self.batch_max = batch_max
        self.durable = durable
        self.filter_subject = filter_subject or subject(region, ">")
        self.stats = Stats()

    async def run(self) -> None:
        backoff = Backoff()
        while True:
            try:
                sub = await self._subscribe()
                backoff.reset()
                await self._consume(sub)
            except _NATS_ERRORS as exc:
                # NATS itself is away (the gateway reconnects by itself): try again later.
                delay = backoff.next()
                log.warning("archive persister: JetStream error (%s); retrying in %.1f s",
                            exc, delay)
                await asyncio.sleep(delay)

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        js = self.nc.jetstream()
        config = consumer_config(self.region, self.filter_subject)
        config.durable_name = self.durable
        return await js.pull_subscribe(self.filter_subject, durable=self.durable,
                                       stream=STREAM, config=config)

    async def _consume(self, sub: JetStreamContext.PullSubscription) -> None:
        while True:
            try:
                msgs = await sub.fetch(self.batch_max, timeout=FETCH_WAIT_S)
            except NatsTimeout:
                continue  # nothing to archive
            await self.persist(msgs)

    async def persist(self, msgs: Sequence[Msg]) -> None:
        """Archives a batch's own comments, retrying until the archive takes them, then
        acknowledges the whole batch."""
        batch = sort_batch(msgs, self.region)
        for msg in batch.bad:
            log.error("archive persister: not a comment at %s; dropped", msg.subject)
            await msg.term()
        self.stats.bad += len(batch.bad)
        comments = [c for _, c in batch.own]
        backoff = Backoff()
        while comments:
            try:
                await self.archive.write(comments)
                break
            except ArchiveUnavailable as exc:
                self.stats.failures += 1
                self.stats.last_error = str(exc)
                delay = backoff.next()
                if not self.stats.failing:
                    log.warning("archive persister: the archive did not take %d comments "
                                "(%s); retrying with backoff", len(comments), exc)
                self.stats.failing = True
                await asyncio.sleep(delay)
                # Still ours: without this JetStream would hand the batch to another gateway
                # after ACK_WAIT_S, and both would retry it.
                for msg, _ in batch.own:
                    await msg.in_progress()
        if self.stats.failing:
            log.warning("archive persister: the archive takes writes again")
            self.stats.failing = False
        for msg, _ in batch.own:
            await msg.ack()
        for msg in batch.foreign:
            await msg.ack()
        self.stats.written += len(comments)
        self.stats.foreign += len(batch.foreign)


async def lag(nc: Nats, durable: str = DURABLE) -> int | None:
    """Messages the region's persisters have not archived yet (pending + unacknowledged),
    or None when the consumer does not exist (no gateway with the archive started yet)."""
    from nats.js.errors import NotFoundError

    try:
        info = await nc.jetstream().consumer_info(STREAM, durable)
    except NotFoundError:
        return None
    return (info.num_pending or 0) + (info.num_ack_pending or 0)
