"""The outbox: a region's comments go, durably, to the other regions that have viewers.

Each destination region has an outbox: a `DurableWorker` (chorus/durable.py) on the durable
consumer ``outbox_durable(dest)`` of this region's log. The worker hands over this region's
own comments in order (comments forwarded to us are their origin's to forward). For each
batch the outbox asks the presence directory whether ``dest`` has viewers of each stream,
decides (`decide`, pure) which comments go and which are skipped, and publishes those that
go into ``dest``'s log with ``Nats-Msg-Id`` = comment id, so ``dest`` stores each once. A
comment is acknowledged locally only after ``dest``'s JetStream acknowledged it; what
``dest`` did not take stays with this gateway ("in progress" at JetStream) and is offered
again after a backoff until it does: when a link heals the outbox drains in order. A
comment offered again is decided again: if ``dest`` has meanwhile said it has no viewers of
the stream, it is skipped, and a viewer who joins there later gets it by bootstrap.

Every gateway of the region runs an outbox per destination on the same consumer. A worker
keeps up to `IN_FLIGHT` batches in flight, so that a destination one long round trip away
is not paid a round trip per batch. Within one worker the publishes leave in order over one
connection; across batches and gateways, and after a retry, ``dest`` may store comments a
little out of their origin's order: every viewer in ``dest`` still sees ``dest``'s one order
(its log), and clients render by comment id within a reorder window (DESIGN G4). Duplicates
are impossible within the log's duplicate window. The outbox is bounded by the log's
retention (region/log_jetstream.py, 7 days) and, in memory, by `MAX_ACK_PENDING`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from nats.aio.client import Client as Nats

from chorus.drivers import translated
from chorus.durable import ConsumerSpec, Delivery, DurableWorker, pending
from chorus.metrics import Metrics
from chorus.model import Comment
from chorus.names import comment_subject, comment_subjects, outbox_durable
from global_.presence import Answer, PresenceDirectory
from region.log import LogUnavailable

BATCH = 128                 # comments read and published at once per destination
IN_FLIGHT = 32              # batches a worker publishes before the first is acknowledged
MAX_ACK_PENDING = BATCH * IN_FLIGHT * 2   # unacknowledged comments over every gateway
PUBLISH_TIMEOUT_S = 5.0     # a destination's PubAck, over the slowest link with margin
# JetStream redelivers a batch that a crashed gateway did not finish after this long; while it
# waits the outbox is stalled (one batch in flight), so keep it short, above one batch's worst
# case (a publish timeout).
ACK_WAIT_S = 10.0
BACKOFF_MIN_S = 0.2
BACKOFF_MAX_S = 5.0


def outbox_spec(region: str, dest: str) -> ConsumerSpec:
    """The consumer of ``region``'s outbox towards ``dest`` (every gateway builds this one)."""
    return ConsumerSpec(durable=outbox_durable(dest), filter_subject=comment_subjects(region),
                        ack_wait_s=ACK_WAIT_S, max_ack_pending=MAX_ACK_PENDING, batch=BATCH,
                        in_flight=IN_FLIGHT)


@dataclass(frozen=True)
class Forwarding:
    """A batch split by what happens to each comment: published to the destination, or
    done without it (it had no viewers of the stream)."""

    send: tuple[Delivery, ...]
    skip: tuple[Delivery, ...]


def streams_of(deliveries: Iterable[Delivery]) -> list[str]:
    """The streams of a batch, each once: one presence question per stream."""
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


class Outbox:
    """This gateway's worker on the outbox towards ``dest``. Run `run` as an owned task."""

    def __init__(self, nc: Nats, *, region: str, dest: str, directory: PresenceDirectory,
                 metrics: Metrics) -> None:
        self.region = region
        self.dest = dest
        self.directory = directory
        self.metrics = metrics
        self.js = nc.jetstream(timeout=PUBLISH_TIMEOUT_S)
        self.name = f"outbox to {dest}"
        self.worker = DurableWorker(nc, outbox_spec(region, dest), region, self.forward,
                                    name=self.name, backoff_first_s=BACKOFF_MIN_S,
                                    backoff_max_s=BACKOFF_MAX_S,
                                    on_retry=lambda: metrics.forward_failed(dest))

    async def run(self) -> None:
        """Forwards until cancelled; survives NATS restarts and a deleted consumer."""
        self.metrics.declare_destinations((self.dest,))
        await self.worker.run()

    async def forward(self, deliveries: Sequence[Delivery]) -> Sequence[Delivery]:
        """The worker's handler: returns what ``dest`` did not store (to be retried)."""
        streams = streams_of(deliveries)
        # One question per stream of the batch, all at once: each costs a round trip to the
        # destination when it is not cached. The directory never raises (no answer: None).
        answers = dict(zip(streams, await asyncio.gather(
            *(self.directory.viewers(s, self.dest) for s in streams)), strict=True))
        plan = decide(deliveries, answers)
        if plan.skip:
            self.metrics.skipped_no_viewers(self.dest, len(plan.skip))
        if not plan.send:
            return ()
        # Pipelined: one connection keeps the publishes in order.
        results = await asyncio.gather(*(self._publish(d.comment) for d in plan.send),
                                       return_exceptions=True)
        failed: list[Delivery] = []
        reason: LogUnavailable | None = None
        for delivery, result in zip(plan.send, results, strict=True):
            if isinstance(result, LogUnavailable):
                failed.append(delivery)
                reason = reason or result
            elif isinstance(result, BaseException):
                raise result  # a bug, not the destination: it ends the worker
        if len(plan.send) > len(failed):
            self.metrics.forwarded(self.dest, len(plan.send) - len(failed))
        if reason is not None and len(failed) == len(deliveries):
            raise reason  # nothing finished: the worker retries all and logs why
        return failed

    async def _publish(self, comment: Comment) -> None:
        with translated(LogUnavailable, f"forwarding to {self.dest}"):
            ack = await self.js.publish(comment_subject(self.dest, comment.stream),
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


async def outbox_depth(nc: Nats, dest: str) -> int | None:
    """Comments waiting for ``dest`` (not yet acknowledged by it); None if unknown."""
    return await pending(nc, outbox_durable(dest))
