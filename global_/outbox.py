"""The outbox: a region's comments go, durably, to the other regions that have viewers.

Each destination region has an outbox: a `DurableWorker` (chorus/durable.py) on the durable
consumer ``outbox_durable(region, dest)`` of this region's log (a name of its own in every
region: chorus/names.py says why; chorus/durable_migration.py moves an older deployment's
``fwd-<dest>`` consumers to it). The worker hands over this region's
own comments in order (comments forwarded to us are their origin's to forward). For each
batch the outbox asks the presence directory whether ``dest`` has viewers of each stream,
decides (`decide`, pure) which comments go and which are skipped, and publishes those that
go into ``dest``'s log with ``Nats-Msg-Id`` = comment id, so ``dest`` stores each once. A
comment is acknowledged locally only after ``dest``'s JetStream acknowledged it; what
``dest`` did not take stays with this gateway ("in progress" at JetStream) and is offered
again after a backoff until it does, at the head of the line (later batches wait behind it
rather than overtake it): when a link heals the outbox drains in order. A comment offered
again is not decided again (asking a destination behind a cut link costs the whole presence
query timeout); one that JetStream redelivers to another gateway is.

A hot stream's comments outside the priority lane are stored in the region's hot partitions
(region/log_jetstream.py), not in the chained log: each partition ``k`` has an outbox of its
own towards each destination (`outboxes`: a consumer ``hot_outbox_durable(region, dest, k)``
and a lease of its own, so that a hot stream's forwards spread over the region's gateways),
which publishes into ``dest``'s partition of the comment's id (`part_of`), where late join
(global_/bootstrap.py) stores its copy of the same comment too: ``dest``'s duplicate window
for that partition makes the two one, and ``dest`` delivers it out of the chain, as its
origin did. Order is kept per origin partition as far as the destination's live feed goes
(a hot stream has no one order across partitions; clients order by comment id within their
reorder window). A destination's depth is the sum of its outboxes'
(`outbox_depth`). A gateway holding more than its share of the region's outbox leases gives
some back to the others (global_/outbox_share.py).

Every gateway of the region runs an outbox per destination, and one of them at a time
forwards: the one holding the destination's lease (chorus/lease.py; the others wait to take
it over). Gateways that share a durable consumer share no order: JetStream hands a batch to
each gateway waiting (round robin), so two gateways forwarding at once interleave their
batches, and a batch that one of them retries after a cut is overtaken by what the other
sends meanwhile (a link cut and healed every 2 s scrambled a region's order by 12 to 33 s).
Releasing a failed batch (NAK) would not help: the server redelivers released messages in
the order they were released, again split among whichever gateways are waiting. Within the
forwarding gateway the batches go in the order they were fetched (`Line`): batches in flight
together queue their publishes in that order (one still waiting for its presence answers is
not overtaken by a younger one whose answers were cached), a batch waits behind an older one
being retried, and a retry sends one comment first so that a link
coming back in the middle of a batch cannot store its end before its start. A worker keeps
up to `IN_FLIGHT` batches in flight, so that a destination one long round trip away is not
paid a round trip per batch. Every viewer in ``dest`` sees ``dest``'s one order (its log)
and clients render by comment id within a reorder window (DESIGN G4); duplicates are
impossible within the log's duplicate window. The outbox is bounded by the log's retention
(region/log_jetstream.py, 7 days) and, in memory, by `MAX_ACK_PENDING`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from nats.aio.client import Client as Nats

from chorus.backoff import Backoff
from chorus.drivers import driver_errors, translated
from chorus.durable import ConsumerSpec, Delivery, DurableWorker, part_name, pending_all
from chorus.durable_migration import adopt_until_done
from chorus.lease import Lease, LeaseSpec
from chorus.metrics import Metrics
from chorus.model import Comment
from chorus.names import (
    hot_outbox_durable,
    hot_outbox_lease_key,
    legacy_outbox_durable,
    log_stream,
    log_subject,
    log_subjects,
    outbox_lease_bucket,
)
from global_.outbox_share import SHED_CHECK_S, SHED_IDLE_S, STEP_BACK_S, Share
from global_.presence import Answer, PresenceDirectory
from region.log import LogUnavailable, part_of

log = logging.getLogger(__name__)

BATCH = 128                 # comments read and published at once per destination
IN_FLIGHT = 32              # batches a worker publishes before the first is acknowledged
MAX_ACK_PENDING = BATCH * IN_FLIGHT * 2   # unacknowledged comments over every gateway
# A destination's PubAck, over the slowest link (a 480 ms round trip) with a wide margin. A
# publish that met a cut link is lost in it and only this timeout says so: the comments of a
# flapping link wait this long for each cut they meet, so it is kept short.
PUBLISH_TIMEOUT_S = 2.0
# JetStream redelivers a batch that a crashed gateway did not finish after this long; while it
# waits the outbox is stalled (one batch in flight), so keep it short, above one batch's worst
# case (a publish timeout).
ACK_WAIT_S = 10.0
# Between attempts at a destination that did not take a batch. Short and nearly regular: only
# the batch at the head of the line retries (the others wait behind it), and an attempt at a
# cut link fails at once (no responders) and costs nothing, so a link that is back is used
# within a fraction of a second. (With a link cut and healed every 2 s, batches retrying on
# their own with a ceiling of 5 s arrived 33 s out of their origin's order.)
BACKOFF_MIN_S = 0.1
BACKOFF_MAX_S = 0.25
CALM_S = 3.0   # after an outage, one batch in flight at a time for this long
# One gateway of the region forwards to a destination at a time. A holder that dies stops
# the region's forwards to that destination for up to this long (plus a second to notice);
# its unacknowledged batch comes back after ACK_WAIT_S, so up to ACK_WAIT_S - LEASE_TTL_S
# after what its successor sent meanwhile: a gateway's crash is the one case the lease does
# not keep in order. A lease longer than ACK_WAIT_S plus one renewal would keep even that in
# order, at the price of a longer stop.
LEASE_TTL_S = 5.0


def outbox_spec(region: str, dest: str, part: int = 0) -> ConsumerSpec:
    """The consumer of ``region``'s outbox towards ``dest`` on the log's ``part`` (0: the
    chained log; 1 to P: a hot partition). Every gateway builds this one."""
    return ConsumerSpec(durable=hot_outbox_durable(region, dest, part),
                        filter_subject=log_subjects(region, part), ack_wait_s=ACK_WAIT_S,
                        max_ack_pending=MAX_ACK_PENDING, batch=BATCH, in_flight=IN_FLIGHT,
                        stream=log_stream(part))


@dataclass(frozen=True)
class Forwarding:
    """A batch split by what happens to each comment: published to the destination, or
    done without it (it had no viewers of the stream)."""

    send: tuple[Delivery, ...]
    skip: tuple[Delivery, ...]


def streams_of(deliveries: Iterable[Delivery]) -> list[str]:
    """The streams of a batch, each once: what its presence question asks about."""
    return sorted({d.comment.stream for d in deliveries})


def decide(deliveries: Sequence[Delivery], answers: Mapping[str, Answer]) -> Forwarding:
    """A comment goes unless the destination answered that it has no viewers of its stream:
    a stream with no answer, or an unanswered question, goes (fail open). Order is kept."""
    send: list[Delivery] = []
    skip: list[Delivery] = []
    for delivery in deliveries:
        answer = answers.get(delivery.comment.stream)
        (send if answer is None or answer.has_viewers else skip).append(delivery)
    return Forwarding(send=tuple(send), skip=tuple(skip))


class Line:
    """One outbox's batches in the order they were handed over (the log's order), from
    `enter` to `leave`. A batch that must not overtake the ones before it awaits `first`.
    Batches in flight together publish in the line's order: each awaits `turn` (every older
    batch has queued its publishes, `sent`, or left) before it queues its own; they wait for
    their presence answers side by side, but one whose streams were cached does not go ahead
    of an older one still waiting for an answer. ``retrying``: how many batches are on the
    retry path now."""

    def __init__(self) -> None:
        self._next = 0
        self._open: dict[int, asyncio.Event] = {}
        self._sent: dict[int, asyncio.Event] = {}
        self.retrying = 0

    def enter(self) -> int:
        """The batch's place in the line (its ticket)."""
        ticket = self._next
        self._next += 1
        self._open[ticket] = asyncio.Event()
        self._sent[ticket] = asyncio.Event()
        return ticket

    def sent(self, ticket: int) -> None:
        """``ticket``'s publishes are queued on the connection (or it sends nothing)."""
        event = self._sent.get(ticket)
        if event is not None:
            event.set()

    def leave(self, ticket: int) -> None:
        self.sent(ticket)
        self._sent.pop(ticket, None)
        self._open.pop(ticket).set()

    def __len__(self) -> int:
        return len(self._open)

    async def first(self, ticket: int) -> None:
        """Returns once every batch that entered before ``ticket`` has left."""
        await _older(self._open, ticket)

    async def turn(self, ticket: int) -> None:
        """Returns once every batch that entered before ``ticket`` has queued its publishes
        (or left)."""
        await _older(self._sent, ticket)


async def _older(events: dict[int, asyncio.Event], ticket: int) -> None:
    """Waits for the event of every ticket before ``ticket``."""
    # Tickets only grow: the older batches open now are all there will ever be.
    for event in [e for t, e in events.items() if t < ticket]:
        await event.wait()


class Outbox:
    """This gateway's worker on the outbox towards ``dest`` of the log's ``part`` (0: the
    chained log; 1 to P: a hot partition, forwarded to ``dest``'s same partition under a
    lease of its own). Run `run` as an owned task."""

    def __init__(self, nc: Nats, *, region: str, dest: str, directory: PresenceDirectory,
                 metrics: Metrics, part: int = 0, partitions: int = 0,
                 share: Share | None = None) -> None:
        self.region = region
        self.share = share        # None: contend for the lease and never give it back
        self.dest = dest
        self.part = part
        self.partitions = partitions
        self.directory = directory
        self.metrics = metrics
        self.js = nc.jetstream(timeout=PUBLISH_TIMEOUT_S)
        self.name = part_name(f"outbox to {dest}", part)
        self.worker = DurableWorker(nc, outbox_spec(region, dest, part), region, self.forward,
                                    name=self.name, backoff_first_s=BACKOFF_MIN_S,
                                    backoff_max_s=BACKOFF_MAX_S,
                                    on_retry=lambda: metrics.forward_failed(dest),
                                    hold=self._holding)
        self.lease = Lease(nc, LeaseSpec(outbox_lease_bucket(region),
                                         hot_outbox_lease_key(dest, part), LEASE_TTL_S),
                           f"{socket.gethostname()}/{os.getpid()}", name=self.name)
        if share is not None:
            share.add(self.lease)
        self._line = Line()
        self._failing = False             # logged once per outage, not once per attempt
        self._calm_until = 0.0            # monotonic time until which one batch at a time
        self._busy_at = -math.inf         # monotonic time of the last batch (give-back rule)

    async def run(self) -> None:
        """Forwards while this gateway holds the destination's lease, until cancelled;
        survives NATS restarts and a deleted consumer."""
        self.metrics.declare_destinations((self.dest,))
        if not self.part:   # the partitions are newer than the legacy names
            await adopt_until_done(self.worker.nc, self.worker.spec,
                                   legacy_outbox_durable(self.dest), self.name)
        if self.share is None:
            await self.lease.run(self.worker.run)
            return
        while True:
            contend = asyncio.ensure_future(self.lease.run(self.worker.run))
            try:
                shed = await self._until_shed(contend)
            finally:
                # Cancelled while holding, the lease gives its key back, and the worker hands
                # JetStream what it had not finished (chorus/durable.py).
                contend.cancel()
                await asyncio.gather(contend, return_exceptions=True)
            if not shed:
                contend.result()      # the work ended: a bug surfaces here
                return
            log.info("%s: lease given back (this gateway held more than its share)",
                     self.name)
            await asyncio.sleep(STEP_BACK_S)   # the others' turn (outbox_share.py)

    async def _until_shed(self, contend: asyncio.Future[None]) -> bool:
        """Waits until ``contend`` ends (False) or its lease is to be given back (True). A
        lease is given back only when its outbox has had no batch for `SHED_IDLE_S`: what a
        stopped worker hands back to JetStream is released batch by batch, and batches
        released together could come back to the next holder out of their order; and a
        lease in use would pause its destination's comments until the next holder takes it
        (up to a second). So the leases spread while the region is quiet, and a flood is
        forwarded where it started."""
        assert self.share is not None
        while not contend.done():
            await asyncio.wait({contend}, timeout=SHED_CHECK_S)
            if (not contend.done() and not len(self._line)
                    and time.monotonic() - self._busy_at > SHED_IDLE_S
                    and self.share.shed(self.lease)):
                return True
        return False

    async def forward(self, deliveries: Sequence[Delivery]) -> Sequence[Delivery]:
        """The worker's handler. A batch that ``dest`` did not take is retried here, in the
        line's order: it waits for the older batches to be done, and younger ones wait for
        it (`Line`), so that ``dest`` stores this region's comments in their order whatever
        the link does (DESIGN G4). Everything waiting is kept "in progress" at JetStream
        meanwhile. Returns () (all done); raises only for a bug."""
        self._busy_at = time.monotonic()
        ticket = self._line.enter()
        try:
            rest, reason = await self._forward_once(ticket, deliveries)
            if rest:
                await self._retry(ticket, deliveries, rest, reason)
            return ()
        finally:
            self._line.leave(ticket)

    async def _retry(self, ticket: int, batch: Sequence[Delivery], rest: Sequence[Delivery],
                     reason: str) -> None:
        """Sends ``rest`` (what ``dest`` did not store of ``batch``) until it is stored,
        once the older batches are done."""
        self._line.retrying += 1
        try:
            if not self._failing:
                self._failing = True
                log.warning("%s: %d comments not stored (%s); retrying in order, later "
                            "batches wait", self.name, len(rest), reason)
            # The batches before this one hold older comments: they go first.
            # (The whole batch is kept alive: the worker acknowledges it when it is done.)
            await self._keep_alive(batch, self._line.first(ticket))
            backoff = Backoff(BACKOFF_MIN_S, BACKOFF_MAX_S)
            while rest:
                self.metrics.forward_failed(self.dest)
                await self._keep_alive(batch, backoff.wait())
                # Decided already: sent again without asking the destination's presence,
                # which a cut link leaves unanswered for the whole query timeout.
                rest, reason = await self._publish_probed(rest)
            # Back, but maybe only for a moment (a flapping link): one batch at a time for
            # a while, so that a batch that meets the next cut is not overtaken by the ones
            # sent beside it.
            self._calm_until = time.monotonic() + CALM_S
            if self._failing and self._line.retrying == 1:
                self._failing = False
                log.warning("%s: going again (%d batches were waiting behind)", self.name,
                            len(self._line) - 1)
        finally:
            self._line.retrying -= 1

    def _holding(self) -> bool:
        """The worker's ``hold``: fetch nothing new while a batch is retried, and keep one
        batch in flight for `CALM_S` after (chorus/durable.py says why)."""
        return self._line.retrying > 0 or time.monotonic() < self._calm_until

    async def _keep_alive(self, deliveries: Sequence[Delivery], wait: Awaitable[object]
                          ) -> None:
        """Awaits ``wait``, telling JetStream every third of `ACK_WAIT_S` that the batch is
        still being worked on (else it would hand it to another gateway)."""
        task = asyncio.ensure_future(wait)
        try:
            while not (await asyncio.wait({task}, timeout=ACK_WAIT_S / 3))[0]:
                for delivery in deliveries:
                    with contextlib.suppress(*driver_errors("nats")):
                        await delivery.msg.in_progress()
            task.result()
        finally:
            task.cancel()

    async def _forward_once(self, ticket: int, deliveries: Sequence[Delivery]
                            ) -> tuple[list[Delivery], str]:
        """One attempt: what ``dest`` did not store, and why (in words)."""
        # One question for every uncached stream of the batch (a round trip to the
        # destination). The directory never raises (no answer: None).
        answers = await self.directory.viewers_of(streams_of(deliveries), self.dest)
        plan = decide(deliveries, answers)
        if plan.skip:
            self.metrics.skipped_no_viewers(self.dest, len(plan.skip))
        if not plan.send:
            self._line.sent(ticket)
            return [], ""
        if self._line.retrying:
            # An older batch is being retried (or this one's elders are still out): sent now,
            # this one could reach ``dest`` before them.
            await self._keep_alive(deliveries, self._line.first(ticket))
        # Older batches still waiting for their presence answers publish first.
        await self._keep_alive(deliveries, self._line.turn(ticket))
        return await self._publish_all(plan.send, ticket)

    async def _publish_probed(self, send: Sequence[Delivery]) -> tuple[list[Delivery], str]:
        """A retry: one comment first, then the rest. All at once, an attempt that meets the
        link coming back could have its first publishes refused (no route yet) and its later
        ones stored: the batch's end before its start."""
        failed, reason = await self._publish_all(send[:1])
        if failed:
            return list(send), reason
        return await self._publish_all(send[1:])

    async def _publish_all(self, send: Sequence[Delivery], ticket: int | None = None
                           ) -> tuple[list[Delivery], str]:
        """Publishes ``send``; what ``dest`` did not store, and why (in words). With
        ``ticket``, tells the line once the publishes are queued."""
        # Pipelined: one connection keeps the publishes in order. The tasks run in the order
        # they are made, and each queues its publish on the connection in its first step, so
        # once they are made a younger batch's tasks can only come after them.
        tasks = [asyncio.ensure_future(self._publish(d.comment)) for d in send]
        if ticket is not None:
            self._line.sent(ticket)
        results = await asyncio.gather(*tasks, return_exceptions=True)
        failed: list[Delivery] = []
        reason = ""
        for delivery, result in zip(send, results, strict=True):
            if isinstance(result, LogUnavailable):
                failed.append(delivery)
                reason = reason or str(result)
            elif isinstance(result, BaseException):
                raise result  # a bug, not the destination: it ends the worker
        if len(send) > len(failed):
            self.metrics.forwarded(self.dest, len(send) - len(failed))
        return failed, reason

    async def _publish(self, comment: Comment) -> None:
        with translated(LogUnavailable, f"forwarding to {self.dest}"):
            # A hot partition's comment goes to the destination's partition of its id.
            part = part_of(comment.id, self.partitions) if self.part else 0
            ack = await self.js.publish(log_subject(self.dest, part, comment.stream),
                                        comment.encode(), headers={"Nats-Msg-Id": comment.id},
                                        timeout=PUBLISH_TIMEOUT_S)
        if ack.domain not in (None, self.dest):
            # Stored, but in the wrong region: keep retrying (and saying so) rather than
            # count it as delivered.
            raise LogUnavailable(f"forwarding to {self.dest}: stored by domain {ack.domain}, "
                                 "not the destination's; the regions' stream subjects overlap")
        # From its post to the destination's acknowledgment (a cut link's wait included).
        self.metrics.forward_latency(self.dest, max(0, time.time_ns() // 1_000_000
                                                    - comment.ts) / 1000)


def outboxes(nc: Nats, *, region: str, dest: str, partitions: int,
             directory: PresenceDirectory, metrics: Metrics, share: Share | None = None
             ) -> tuple[Outbox, ...]:
    """Every outbox of ``region`` towards ``dest``: the chained log's and one per hot
    partition (1 to ``partitions``), each with its consumer and its lease (spread over the
    region's gateways by ``share``, global_/outbox_share.py)."""
    return tuple(Outbox(nc, region=region, dest=dest, directory=directory, metrics=metrics,
                        part=part, partitions=partitions, share=share)
                 for part in range(partitions + 1))


async def outbox_depth(nc: Nats, region: str, dest: str, partitions: int = 0) -> int | None:
    """Comments of ``region`` (whose NATS ``nc`` is connected to) waiting for ``dest`` (not
    yet acknowledged by it), over the chained log and its ``partitions`` hot partitions;
    None if unknown."""
    return await pending_all(nc, ((hot_outbox_durable(region, dest, part), log_stream(part))
                                  for part in range(partitions + 1)))
