"""Forwarding: a region's comments go to the other regions that have viewers, durably.

Each destination region has an **outbox**: a durable JetStream pull consumer ``fwd-<dest>`` on
this region's log. The forwarder reads it in order, skips comments that did not originate
here (they were forwarded to us) and streams nobody watches in ``dest`` (per the presence
directory), and publishes the rest into ``dest``'s log with ``Nats-Msg-Id`` = comment id, so
``dest`` stores each once. A message is acknowledged locally only after ``dest``'s JetStream
acknowledged it; while ``dest`` is unreachable nothing is acknowledged, the forwarder backs
off, and when the link heals the outbox drains in order.

Every gateway of the region runs a forwarder per destination on the same consumer. A
forwarder keeps up to ``IN_FLIGHT`` batches in flight, so that a destination one long round
trip away is not paid a round trip per batch; a batch the destination did not take is
retried by its forwarder (kept "in progress" at JetStream) until it does. Within one
forwarder the publishes leave in order over one connection; across batches and gateways,
and after a retry, ``dest`` may store comments a little out of their origin's order: every
viewer in ``dest`` still sees ``dest``'s one order (its log), and clients render by comment
id within a reorder window (DESIGN G4). Duplicates are impossible within the log's
duplicate window.
The outbox is bounded by the log's retention (region/log_jetstream.py, 7 days).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from dataclasses import dataclass, field

from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import Error as JsError

from chorus.model import Comment
from global_.presence import PresenceDirectory
from region.log_jetstream import STREAM, subject

log = logging.getLogger(__name__)

BATCH = 128                 # comments read and published at once per destination
IN_FLIGHT = 32              # batches a forwarder publishes before the first is acknowledged
PUBLISH_TIMEOUT_S = 5.0     # a destination's PubAck, over the slowest link with margin
# JetStream redelivers a batch that a crashed gateway did not finish after this long; while it
# waits the outbox is stalled (one batch in flight), so keep it short, above one batch's worst
# case (a publish timeout).
ACK_WAIT_S = 10
BACKOFF_MIN_S = 0.2
BACKOFF_MAX_S = 5.0


def consumer_name(dest: str) -> str:
    return f"fwd-{dest}"


@dataclass
class RelayStats:
    """Counters since the process started, per destination region."""

    forwarded: dict[str, int] = field(default_factory=dict)
    skipped_no_viewers: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)

    def add(self, counter: dict[str, int], dest: str, n: int = 1) -> None:
        counter[dest] = counter.get(dest, 0) + n


class Forwarder:
    def __init__(self, nc: Nats, *, region: str, dest: str, directory: PresenceDirectory,
                 stats: RelayStats) -> None:
        self.nc = nc
        self.js = nc.jetstream(timeout=PUBLISH_TIMEOUT_S)
        self.region = region
        self.dest = dest
        self.directory = directory
        self.stats = stats
        self._backoff = BACKOFF_MIN_S

    async def run(self) -> None:
        """Forwards until cancelled; survives NATS restarts and a missing consumer."""
        while True:
            try:
                sub = await self.js.pull_subscribe(
                    f"cmt.{self.region}.>", durable=consumer_name(self.dest), stream=STREAM,
                    config=ConsumerConfig(
                        durable_name=consumer_name(self.dest),
                        ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
                        ack_wait=ACK_WAIT_S, max_ack_pending=BATCH * IN_FLIGHT * 2,
                        filter_subject=f"cmt.{self.region}.>", max_deliver=-1))
                await self._drain(sub)
            except (NatsError, JsError, NatsTimeout, OSError) as exc:
                log.warning("outbox to %s: %s; retrying", self.dest, exc)
                await self._pause()

    async def _drain(self, sub: object) -> None:
        inflight: set[asyncio.Task[None]] = set()
        try:
            while True:
                while len(inflight) >= IN_FLIGHT:
                    done, inflight = await asyncio.wait(
                        inflight, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        task.result()  # a batch's failure surfaces here
                try:
                    msgs = await sub.fetch(BATCH, timeout=1.0)  # type: ignore[attr-defined]
                except NatsTimeout:
                    continue  # nothing new
                inflight.add(asyncio.create_task(self._forward(msgs)))
        finally:
            for task in inflight:
                task.cancel()
            await asyncio.gather(*inflight, return_exceptions=True)

    async def _forward(self, msgs: list[Msg]) -> None:
        ours: list[tuple[Msg, Comment | None]] = []
        for msg in msgs:
            try:
                comment: Comment = Comment.decode(msg.data)
            except ValueError:
                log.error("outbox to %s: dropping an undecodable message", self.dest)
                ours.append((msg, None))
                continue
            # A comment forwarded to us is its origin's to forward.
            ours.append((msg, comment if comment.region == self.region else None))
        # One presence question per stream of the batch, all at once: each costs a round
        # trip to the destination when it is not cached.
        streams = sorted({c.stream for _, c in ours if c is not None})
        answers = dict(zip(streams, await asyncio.gather(
            *(self.directory.viewers(s, self.dest) for s in streams)), strict=True))
        plan: list[tuple[Msg, Comment | None]] = []
        for msg, candidate in ours:
            if candidate is not None and not answers[candidate.stream].has_viewers:
                self.stats.add(self.stats.skipped_no_viewers, self.dest)
                candidate = None
            plan.append((msg, candidate))
        # What goes nowhere is done; the rest is retried here until the destination has it.
        sending: list[tuple[Msg, Comment]] = []
        for msg, target in plan:
            if target is None:
                await msg.ack()
            else:
                sending.append((msg, target))
        while sending:
            # Pipelined: one connection keeps the publishes in order.
            results = await asyncio.gather(*(self._publish(c) for _, c in sending),
                                           return_exceptions=True)
            failed: list[tuple[Msg, Comment]] = []
            for (msg, comment), result in zip(sending, results, strict=True):
                if isinstance(result, BaseException):
                    failed.append((msg, comment))
                    continue
                await msg.ack()
                self.stats.add(self.stats.forwarded, self.dest)
            if not failed:
                break
            # The batch stays ours while we wait (no redelivery to another gateway, whose
            # copies would only be deduplicated), and goes again after a backoff.
            self.stats.add(self.stats.failures, self.dest)
            for msg, _ in failed:
                await msg.in_progress()
            await self._pause()
            sending = failed
        self._backoff = BACKOFF_MIN_S

    async def _publish(self, comment: Comment) -> None:
        ack = await self.js.publish(subject(self.dest, comment.stream), comment.encode(),
                                    headers={"Nats-Msg-Id": comment.id},
                                    timeout=PUBLISH_TIMEOUT_S)
        if ack.domain not in (None, self.dest):
            raise JsError(description=f"stored by domain {ack.domain}, not {self.dest}: the "
                                      "regions' stream subjects overlap")

    async def _pause(self) -> None:
        await asyncio.sleep(self._backoff * (0.5 + random.random()))  # jitter
        self._backoff = min(BACKOFF_MAX_S, self._backoff * 2)


async def outbox_depth(nc: Nats, dest: str) -> int | None:
    """Comments waiting for ``dest`` (not yet acknowledged by it); None if unknown."""
    js = nc.jetstream(timeout=2.0)
    with contextlib.suppress(NatsError, JsError, NatsTimeout):
        info = await js.consumer_info(STREAM, consumer_name(dest))
        return int(info.num_pending or 0) + int(info.num_ack_pending or 0)
    return None
