"""The durable-consumer worker: read a region's comment log through a JetStream durable pull
consumer, hand each batch to a handler, acknowledge only what the handler finished.

The outbox (global_/outbox.py, one consumer per destination region) and the archive persister
(region/persister.py) are both this worker with a different handler. Every gateway of a
region runs a worker on the same durable consumer, so each message is handled by one gateway
and a dead gateway's unacknowledged batch is redelivered to another after ``ack_wait_s``.

A batch is sorted first (`sort_batch`, pure): messages that are not comments are terminated
(never redelivered, logged), comments another region originated are acknowledged untouched
(their origin handles them), and this region's own go to the handler. The handler returns
the deliveries it could not finish; the worker acknowledges the rest, keeps the unfinished
ones "in progress" at JetStream (so they are not handed to another gateway meanwhile),
waits with the shared `Backoff`, and offers them again until none is left. A handler that
raises `Unavailable` has finished none. Any other exception is a bug and ends `run`.

The worker carries comments unless it is given another ``decode``: the reaction outbox
(global_/reactions.py) runs it on the region's reaction log with `Aggregate.decode`. Whatever
it carries has a ``region``, the one it originated in (`Payload`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar, cast, overload

from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.client import JetStreamContext
from nats.js.errors import NotFoundError

from chorus.backoff import Backoff
from chorus.drivers import describe, driver_errors
from chorus.errors import Unavailable
from chorus.ids import is_id
from chorus.model import Comment
from chorus.names import COMMENTS_STREAM

log = logging.getLogger(__name__)

HOLD_CHECK_S = 0.1   # how often a held worker looks whether it may fetch again


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable consumer on a region's log. Every gateway must build the same spec for one
    durable name (JetStream refuses a second config), hence one place per consumer."""

    durable: str
    filter_subject: str
    ack_wait_s: float            # JetStream redelivers a batch not acknowledged within this
    max_ack_pending: int         # unacknowledged messages over every gateway: bounds memory
    batch: int                   # messages per fetch
    in_flight: int = 1           # batches one worker handles at once
    fetch_wait_s: float = 1.0    # a fetch returns after this when there is nothing new
    stream: str = COMMENTS_STREAM

    def config(self) -> ConsumerConfig:
        # max_deliver=-1: never give up on a comment; it must reach its destination.
        return ConsumerConfig(
            durable_name=self.durable, deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT, ack_wait=self.ack_wait_s,
            max_ack_pending=self.max_ack_pending, filter_subject=self.filter_subject,
            max_deliver=-1)


class Payload(Protocol):
    """What a worker carries (a comment, a reaction aggregate)."""

    @property
    def region(self) -> str:
        """The region it originated in: only that region's workers handle it."""
        ...


P = TypeVar("P", bound=Payload)


def decode_comment(data: bytes) -> Comment:
    """A comment of the log; ValueError when the message is not one."""
    comment = Comment.decode(data)
    if not is_id(comment.id):
        raise ValueError(f"not a comment id: {comment.id[:80]!r}")
    return comment


@dataclass(frozen=True)
class Delivered(Generic[P]):
    """One of this region's own messages as the consumer handed it over."""

    msg: Msg
    item: P

    @property
    def comment(self) -> P:
        """The item, by the name the comment workers (outbox, persister) read it."""
        return self.item


Delivery = Delivered[Comment]
"""One of this region's comments as the consumer handed it over."""


@dataclass(frozen=True)
class Sorted(Generic[P]):
    """A batch split by what to do with each message."""

    own: tuple[Delivered[P], ...]     # originated here: the handler's
    foreign: tuple[Msg, ...]          # another region's: acknowledge only
    bad: tuple[Msg, ...]              # unreadable: terminate (never redelivered)


@overload
def sort_batch(msgs: Sequence[Msg], region: str) -> Sorted[Comment]: ...


@overload
def sort_batch(msgs: Sequence[Msg], region: str, decode: Callable[[bytes], P]
               ) -> Sorted[P]: ...


def sort_batch(msgs: Sequence[Msg], region: str,
               decode: Callable[[bytes], Any] = decode_comment) -> Sorted[Any]:
    """``decode`` reads one message (ValueError: it is not what this consumer reads)."""
    own: list[Delivered[Any]] = []
    foreign: list[Msg] = []
    bad: list[Msg] = []
    for msg in msgs:
        try:
            item = decode(msg.data)
        except ValueError:
            bad.append(msg)
            continue
        if item.region == region:
            own.append(Delivered(msg, item))
        else:
            foreign.append(msg)
    return Sorted(own=tuple(own), foreign=tuple(foreign), bad=tuple(bad))


Handler = Callable[[Sequence[Delivered[P]]], Awaitable[Sequence[Delivered[P]]]]
"""Handles what it can of a batch; returns the deliveries still to retry (empty: all done),
as the very objects it was given (the worker tells them apart by identity: two deliveries of
one comment are different messages). Raises `Unavailable` when it finished none."""


@dataclass
class WorkerStats:
    """What this worker did since it started (logged, exported, read by tests)."""

    handled: int = 0
    foreign: int = 0
    bad: int = 0
    retries: int = 0
    failing: bool = False
    last_error: str = ""


@dataclass
class DurableWorker(Generic[P]):
    """Run `run` as a task owned by the gateway; cancel it to stop. ``decode``: how a message
    is read (None: as a comment, `decode_comment`)."""

    nc: Nats
    spec: ConsumerSpec
    region: str
    handle: Handler[P]
    name: str                                   # for logs: "outbox to eu-west", "archive"
    backoff_first_s: float = 0.2
    backoff_max_s: float = 5.0
    on_retry: Callable[[], None] | None = None  # a batch was not finished (metrics)
    on_bad: Callable[[int], None] | None = None  # n messages were not comments (metrics)
    # While this says True the worker fetches nothing new (what it holds goes on). The outbox
    # holds back while it retries a batch its destination did not take: what it has not
    # fetched stays in JetStream in order, for whichever gateway fetches next once the link is
    # back, instead of this gateway hoarding a long stretch that another gateway's stretch
    # would then interleave with (comments out of their origin's order by the whole outage).
    hold: Callable[[], bool] | None = None
    stats: WorkerStats = field(default_factory=WorkerStats)
    decode: Callable[[bytes], P] | None = None

    def __post_init__(self) -> None:
        # A batch waiting to be retried is kept "in progress" once per wait: the wait must
        # stay well below ack_wait_s, or JetStream hands the batch to another gateway.
        if self.backoff_max_s * 2 > self.spec.ack_wait_s:
            raise ValueError(f"{self.name}: backoff_max_s ({self.backoff_max_s}) must be at "
                             f"most half of ack_wait_s ({self.spec.ack_wait_s})")

    async def run(self) -> None:
        """Consumes until cancelled; survives NATS restarts and a deleted consumer."""
        backoff = Backoff(self.backoff_first_s, self.backoff_max_s)
        while True:
            try:
                sub = await self._subscribe()
                backoff.reset()
                await self._consume(sub)
            except driver_errors("nats") as exc:
                delay = backoff.next()
                log.warning("%s: JetStream error (%s); retrying in %.1f s", self.name,
                            describe(exc), delay)
                await asyncio.sleep(delay)

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        js = self.nc.jetstream()
        return await js.pull_subscribe(self.spec.filter_subject, durable=self.spec.durable,
                                       stream=self.spec.stream, config=self.spec.config())

    async def _consume(self, sub: JetStreamContext.PullSubscription) -> None:
        inflight: set[asyncio.Task[None]] = set()
        try:
            while True:
                # A batch's failure surfaces here, at the next fetch: not only once the lanes
                # are full, which on a quiet log could be never.
                for task in [t for t in inflight if t.done()]:
                    inflight.discard(task)
                    task.result()
                while len(inflight) >= self.spec.in_flight or (
                        inflight and self.hold is not None and self.hold()):
                    done, inflight = await asyncio.wait(
                        inflight, timeout=HOLD_CHECK_S, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        task.result()
                try:
                    msgs = await sub.fetch(self.spec.batch, timeout=self.spec.fetch_wait_s)
                except TimeoutError:
                    # Nothing new. nats-py raises its own TimeoutError, or a bare one when the
                    # server ends an idle pull request with a 408: the latter used to end the
                    # subscription and log a "JetStream error" every few seconds at idle.
                    continue
                if self.spec.in_flight == 1:
                    await self.process(msgs)
                else:
                    inflight.add(asyncio.create_task(self.process(msgs),
                                                     name=f"{self.name} batch"))
        finally:
            for task in inflight:
                task.cancel()
            await asyncio.gather(*inflight, return_exceptions=True)

    async def process(self, msgs: Sequence[Msg]) -> None:
        """Sorts a batch and drives it through the handler until all of it is acknowledged."""
        decode = self.decode or cast(Callable[[bytes], P], decode_comment)
        batch = sort_batch(msgs, self.region, decode)
        for msg in batch.bad:
            log.error("%s: unreadable message at %s; dropped", self.name, msg.subject)
            await msg.term()
        self.stats.bad += len(batch.bad)
        if batch.bad and self.on_bad is not None:
            self.on_bad(len(batch.bad))
        done: set[int] = set()            # ids of the deliveries acknowledged
        try:
            await self._drive(batch.own, done)
        except asyncio.CancelledError:
            # Stopping: what is not done goes back to JetStream now, in order, for whichever
            # worker fetches next (redeliveries come before anything new), instead of after
            # ack_wait_s behind what that worker sent meanwhile. Some of it may have been
            # handled already: every handler bears that anyway (JetStream redelivers what a
            # dead worker held), and a redelivery late by ack_wait_s is out of order.
            for delivery in batch.own:
                if id(delivery) not in done:
                    with contextlib.suppress(*driver_errors("nats")):
                        await delivery.msg.nak()
            raise
        for msg in batch.foreign:
            await msg.ack()
        self.stats.foreign += len(batch.foreign)

    async def _drive(self, pending: Sequence[Delivered[P]], done: set[int]) -> None:
        """Offers ``pending`` to the handler until all of it is done, acknowledging as it goes
        (and noting each acknowledged delivery's id in ``done``)."""
        backoff = Backoff(self.backoff_first_s, self.backoff_max_s)
        while pending:
            try:
                rest = await self.handle(pending)
                error = ""
            except Unavailable as exc:
                rest, error = pending, str(exc)
            left = {id(d) for d in rest}
            for delivery in pending:
                if id(delivery) not in left:
                    await delivery.msg.ack()
                    done.add(id(delivery))
            self.stats.handled += len(pending) - len(rest)
            if not rest:
                break
            self.stats.retries += 1
            if self.on_retry is not None:
                self.on_retry()
            if not self.stats.failing:
                log.warning("%s: %d comments not done (%s); retrying with backoff",
                            self.name, len(rest), error or "the handler kept them")
            self.stats.failing, self.stats.last_error = True, error
            for delivery in rest:
                await delivery.msg.in_progress()
            await backoff.wait()
            pending = rest
        if self.stats.failing:
            log.warning("%s: going again", self.name)
            self.stats.failing = False


async def pending(nc: Nats, durable: str, stream: str = COMMENTS_STREAM) -> int | None:
    """Messages of ``durable`` (on ``stream``) not yet acknowledged (pending + in flight);
    None when the consumer does not exist yet or JetStream does not answer."""
    try:
        info = await nc.jetstream(timeout=2.0).consumer_info(stream, durable)
    except NotFoundError:
        return None
    except driver_errors("nats"):
        return None
    return int(info.num_pending or 0) + int(info.num_ack_pending or 0)


def part_name(name: str, part: int) -> str:
    """A worker's name in logs, saying which part of the log it reads (0: the chained log,
    named as before; 1 to P: a hot partition)."""
    return f"{name} (hot {part})" if part else name


def total(depths: Iterable[int | None]) -> int | None:
    """The backlog of several consumers that make one (the chained log's and each hot
    partition's, for one outbox or the archive): their sum, or None (unknown) when any of
    them is unknown."""
    out = 0
    for depth in depths:
        if depth is None:
            return None
        out += depth
    return out


async def pending_all(nc: Nats, consumers: Iterable[tuple[str, str]]) -> int | None:
    """`pending` summed over ``consumers`` ((durable, stream) pairs), asked all at once;
    None when any of them is unknown."""
    return total(await asyncio.gather(*(pending(nc, durable, stream)
                                        for durable, stream in consumers)))
