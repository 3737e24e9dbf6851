"""Reactions across regions: aggregates forwarded where the stream is watched, totals and
timelines read from every region.

`ReactionOutbox` is the comment outbox's twin (global_/outbox.py) for the reaction log
(region/reactions_jetstream.py): per destination region a `DurableWorker` on the durable
consumer `reaction_outbox_durable` of this region's reaction log, filtered to this region's
own aggregates. For each batch it asks the presence directory whether the destination has
viewers of each stream, skips the aggregates of streams it has none of (fail open: no
answer counts as viewers), and stores the rest in the destination's reaction log with
``Nats-Msg-Id`` = `Aggregate.msg_id`. An aggregate is acknowledged locally only once the
destination stored it: a cut link delays aggregates, never loses them (they wait in this
region's log, kept ``reactions.retention_days``), and after it heals the outbox drains. One
aggregate per stream per second per destination: 100,000 taps a second on one stream cost
one message a second per pair of regions. A destination that skipped some (it had no
viewers) reads the origin's running total when a viewer comes (`RegionReactions.totals`), so
nothing is summed from a partial history.

`ReactionResponder` answers other regions' questions from this region's log (one gateway of
the region answers each, by queue group): its own running total of a stream, and its own
aggregates of a stream over a time range. `RegionReactions` asks them (region/reactions.py's
`RemoteReactions`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from nats.aio.client import Client as Nats
from nats.aio.msg import Msg

from chorus.drivers import driver_errors, translated
from chorus.durable import ConsumerSpec, Delivered, DurableWorker, pending
from chorus.metrics import Metrics
from chorus.names import (
    REACTIONS_STREAM,
    RX_TIMELINE_QUEUE,
    RX_TOTALS_QUEUE,
    own_reaction_subjects,
    reaction_outbox_durable,
    reaction_subject,
    reaction_timeline_query,
    reaction_totals_query,
)
from global_.hub import (
    HubMessageError,
    ReactionTimelineAnswer,
    ReactionTimelineQuery,
    ReactionTotalsAnswer,
    ReactionTotalsQuery,
    Rejections,
)
from global_.presence import Answer, PresenceDirectory
from region.reactions import (
    Aggregate,
    Bucket,
    Counts,
    ReactionLog,
    ReactionsUnavailable,
    Window,
    bucketed,
)

log = logging.getLogger(__name__)

BATCH = 128                 # aggregates read and published at once per destination
IN_FLIGHT = 4               # batches a worker publishes before the first is acknowledged
MAX_ACK_PENDING = BATCH * IN_FLIGHT * 2
PUBLISH_TIMEOUT_S = 5.0     # a destination's PubAck, over the slowest link with margin
ACK_WAIT_S = 10.0           # as the comment outbox: a dead gateway's batch moves on after this
BACKOFF_MIN_S = 0.2
BACKOFF_MAX_S = 5.0
TOTALS_TIMEOUT_S = 1.0      # a region's running total, over the slowest link with margin
TIMELINE_TIMEOUT_S = 5.0    # a region's page of a timeline (it reads up to 21,600 aggregates)


def reaction_outbox_spec(region: str, dest: str) -> ConsumerSpec:
    """The consumer of ``region``'s reaction outbox towards ``dest`` (every gateway builds
    this one)."""
    return ConsumerSpec(durable=reaction_outbox_durable(region, dest),
                        filter_subject=own_reaction_subjects(region), ack_wait_s=ACK_WAIT_S,
                        max_ack_pending=MAX_ACK_PENDING, batch=BATCH, in_flight=IN_FLIGHT,
                        stream=REACTIONS_STREAM)


Delivery = Delivered[Aggregate]


@dataclass(frozen=True)
class Forwarding:
    """A batch split into aggregates stored at the destination and aggregates skipped (it
    had no viewers of their stream)."""

    send: tuple[Delivery, ...]
    skip: tuple[Delivery, ...]


def streams_of(deliveries: Iterable[Delivery]) -> list[str]:
    return sorted({d.item.stream for d in deliveries})


def decide(deliveries: Sequence[Delivery], answers: Mapping[str, Answer]) -> Forwarding:
    """An aggregate goes unless the destination answered that it has no viewers of its
    stream (fail open, as comments). Order is kept. Pure."""
    send: list[Delivery] = []
    skip: list[Delivery] = []
    for delivery in deliveries:
        answer = answers.get(delivery.item.stream)
        (send if answer is None or answer.has_viewers else skip).append(delivery)
    return Forwarding(send=tuple(send), skip=tuple(skip))


class ReactionOutbox:
    """This gateway's worker on the reaction outbox towards ``dest``. Run `run` as an owned
    task."""

    def __init__(self, nc: Nats, *, region: str, dest: str, directory: PresenceDirectory,
                 metrics: Metrics) -> None:
        self.region = region
        self.dest = dest
        self.directory = directory
        self.metrics = metrics
        self.js = nc.jetstream(timeout=PUBLISH_TIMEOUT_S)
        self.name = f"reaction outbox to {dest}"
        self.worker = DurableWorker(nc, reaction_outbox_spec(region, dest), region,
                                    self.forward, name=self.name,
                                    backoff_first_s=BACKOFF_MIN_S, backoff_max_s=BACKOFF_MAX_S,
                                    on_retry=lambda: metrics.reaction_forward_failed(dest),
                                    on_bad=metrics.reaction_aggregates_bad,
                                    decode=Aggregate.decode)

    async def run(self) -> None:
        """Forwards until cancelled; survives NATS restarts and a deleted consumer."""
        self.metrics.declare_reaction_destinations((self.dest,))
        await self.worker.run()

    async def forward(self, deliveries: Sequence[Delivery]) -> Sequence[Delivery]:
        """The worker's handler: returns what ``dest`` did not store (to be retried)."""
        # One question about every uncached stream of the batch (never raises).
        answers = await self.directory.viewers_of(streams_of(deliveries), self.dest)
        plan = decide(deliveries, answers)
        if plan.skip:
            self.metrics.reaction_skipped_no_viewers(self.dest, len(plan.skip))
        if not plan.send:
            return ()
        results = await asyncio.gather(*(self._publish(d.item) for d in plan.send),
                                       return_exceptions=True)
        failed: list[Delivery] = []
        reason: ReactionsUnavailable | None = None
        for delivery, result in zip(plan.send, results, strict=True):
            if isinstance(result, ReactionsUnavailable):
                failed.append(delivery)
                reason = reason or result
            elif isinstance(result, BaseException):
                raise result  # a bug, not the destination: it ends the worker
        if len(plan.send) > len(failed):
            self.metrics.reaction_forwarded(self.dest, len(plan.send) - len(failed))
        if reason is not None and len(failed) == len(deliveries):
            raise reason  # nothing finished: the worker retries all and logs why
        return failed

    async def _publish(self, aggregate: Aggregate) -> None:
        subject = reaction_subject(self.dest, aggregate.region, aggregate.stream)
        with translated(ReactionsUnavailable, f"forwarding reactions to {self.dest}"):
            ack = await self.js.publish(subject, aggregate.encode(),
                                        headers={"Nats-Msg-Id": aggregate.msg_id},
                                        timeout=PUBLISH_TIMEOUT_S)
        if ack.domain not in (None, self.dest):
            raise ReactionsUnavailable(f"forwarding reactions to {self.dest}: stored by domain "
                                       f"{ack.domain}, not the destination's")


async def reaction_outbox_depth(nc: Nats, region: str, dest: str) -> int | None:
    """Aggregates of ``region`` waiting for ``dest``; None if unknown."""
    return await pending(nc, reaction_outbox_durable(region, dest), REACTIONS_STREAM)


class ReactionResponder:
    """This region's answers about its own reactions, from its reaction log."""

    def __init__(self, nc: Nats, *, region: str, log: ReactionLog,
                 rejections: Rejections) -> None:
        self.nc = nc
        self.region = region
        self.log = log
        self.rejections = rejections

    async def run(self) -> None:
        """Answers until cancelled; one gateway of the region answers each question."""
        totals = await self.nc.subscribe(reaction_totals_query(self.region),
                                         queue=RX_TOTALS_QUEUE)
        timeline = await self.nc.subscribe(reaction_timeline_query(self.region),
                                           queue=RX_TIMELINE_QUEUE)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._serve(totals.messages, self._totals), name="rx totals")
                tg.create_task(self._serve(timeline.messages, self._timeline),
                               name="rx timeline")
        finally:
            for sub in (totals, timeline):
                with contextlib.suppress(*driver_errors("nats")):
                    await sub.unsubscribe()

    @staticmethod
    async def _serve(messages: AsyncIterator[Msg],
                     answer: Callable[[Msg], Awaitable[None]]) -> None:
        async for msg in messages:
            await answer(msg)

    async def _totals(self, msg: Msg) -> None:
        try:
            query = ReactionTotalsQuery.decode(msg.data)
        except HubMessageError as err:
            self.rejections(err, msg.subject)
            return
        try:
            stored = await self.log.last(self.region, query.stream)
        except ReactionsUnavailable as exc:
            log.warning("reaction totals of %s not answered: %s", query.stream, exc)
            return  # no answer: the asker uses what it has
        answer = ReactionTotalsAnswer(
            region=self.region, stream=query.stream,
            second=stored.aggregate.second if stored else 0,
            total=dict(stored.aggregate.total) if stored else {})
        with contextlib.suppress(*driver_errors("nats")):
            await msg.respond(answer.encode())

    async def _timeline(self, msg: Msg) -> None:
        try:
            query = ReactionTimelineQuery.decode(msg.data)
        except HubMessageError as err:
            self.rejections(err, msg.subject)
            return
        try:
            aggregates = await self.log.read(self.region, query.stream, query.after_s,
                                             query.before_s,
                                             limit=query.before_s - query.after_s)
        except ReactionsUnavailable as exc:
            log.warning("reaction timeline of %s not answered: %s", query.stream, exc)
            return
        answer = ReactionTimelineAnswer(
            region=self.region, stream=query.stream,
            buckets=tuple(bucketed(aggregates, query.resolution_s, query.after_s,
                                   query.before_s)))
        with contextlib.suppress(*driver_errors("nats")):
            await msg.respond(answer.encode())


class RegionReactions:
    """The asking side: region/reactions.py's `RemoteReactions` over the hub. A region that
    does not answer in time, or answers something else, is None (never raises)."""

    def __init__(self, nc: Nats, *, regions: Iterable[str], rejections: Rejections) -> None:
        self.nc = nc
        self.regions = tuple(regions)
        self.rejections = rejections

    async def totals(self, stream: str) -> dict[str, Counts | None]:
        query = ReactionTotalsQuery(stream)
        answers = await asyncio.gather(*(self._total(r, query) for r in self.regions))
        return dict(zip(self.regions, answers, strict=True))

    async def _total(self, region: str, query: ReactionTotalsQuery) -> Counts | None:
        subject = reaction_totals_query(region)
        data = await self._ask(subject, query.encode(), TOTALS_TIMEOUT_S)
        if data is None:
            return None
        try:
            answer = ReactionTotalsAnswer.decode(data)
            if not answer.answers(region, query):
                raise HubMessageError("rx_totals_answer", f"{answer.region!r} answered of "
                                      f"{answer.stream!r}")
        except HubMessageError as err:
            self.rejections(err, subject)
            return None
        return answer.total

    async def timeline(self, stream: str, resolution_s: int, window: Window
                       ) -> dict[str, list[Bucket] | None]:
        query = ReactionTimelineQuery(stream=stream, resolution_s=resolution_s,
                                      after_s=window.after_s, before_s=window.before_s)
        answers = await asyncio.gather(*(self._page(r, query) for r in self.regions))
        return dict(zip(self.regions, answers, strict=True))

    async def _page(self, region: str, query: ReactionTimelineQuery) -> list[Bucket] | None:
        subject = reaction_timeline_query(region)
        data = await self._ask(subject, query.encode(), TIMELINE_TIMEOUT_S)
        if data is None:
            return None
        try:
            answer = ReactionTimelineAnswer.decode(data)
            if not answer.answers(region, query):
                raise HubMessageError("rx_timeline_answer", f"{answer.region!r} answered of "
                                      "another stream or range")
        except HubMessageError as err:
            self.rejections(err, subject)
            return None
        return list(answer.buckets)

    async def _ask(self, subject: str, data: bytes, timeout_s: float) -> bytes | None:
        try:
            reply = await self.nc.request(subject, data, timeout=timeout_s)
        except driver_errors("nats"):
            return None
        return bytes(reply.data)
