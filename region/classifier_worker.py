"""The classifier worker: one per region at a time, on the durable consumer
``classifier_durable(region)`` of the region's log (chorus/durable.py), so each of the
region's own comments is scored once, after it was stored and delivered: never on the live
path. A flagged comment becomes a moderation decision (retracted or held, per the stream's
policy; nothing when the policy is "off"), made like a moderator's
(region/moderation_service.py), which reaches every viewer in every region.

A flood must be judged on every comment of the region in one place, so the worker runs only
in the gateway that holds the region's classifier lease (chorus/lease.py, like the outbox's:
another gateway takes over within `LEASE_TTL_S` of a holder's death, within
`LEASE_ACQUIRE_EVERY_S` of a clean stop). The consumer then hands that one worker every
comment, in the log's order, and its `Window` is fed from the consumer alone: each comment
is decoded and observed once per region. Earlier versions ran a worker in every gateway,
split the consumer between them, and had every gateway's window also read the whole live
feed (``live.<region>.>``) to see the comments the other gateways were handed: each comment
was decoded, its headers parsed and its text folded once per gateway, 7-8 % of a busy
gateway's CPU. A new holder's window starts empty, as after a restart: floods are judged on
what it sees from then on.

A hot stream's comments outside the priority lane are stored in the region's hot partitions
(region/log_jetstream.py): the holder runs a worker on each partition's consumer
``hot_classifier_durable(region, k)`` beside the chained log's, every one feeding the same
`Window` (`handle`), so that a flood spread over the partitions is seen whole. The window
takes each comment in the order its worker hands it over (one partition's order; across
partitions, whichever arrives first), stamped with the holder's clock.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable, Sequence

from nats.aio.client import Client as Nats
from nats.errors import NotJSMessageError

from chorus.durable import ConsumerSpec, Delivery, DurableWorker, part_name
from chorus.lease import Lease, LeaseSpec
from chorus.metrics import Metrics
from chorus.model import Comment
from chorus.names import (
    CLASSIFIER_LEASE_KEY,
    classifier_lease_bucket,
    hot_classifier_durable,
    log_stream,
    log_subjects,
)
from region.classifier import Classifier, HeuristicClassifier, Window
from region.moderation import Action, ModerationState, Outcome, Verdict

BATCH = 128
ACK_WAIT_S = 30.0
# A holder that dies is replaced this long after its last renewal at most (one that stops
# cleanly gives the lease back at once, and the next gateway takes it within
# LEASE_ACQUIRE_EVERY_S); what it was handed and did not acknowledge comes back to its
# successor after ACK_WAIT_S. Scoring is not urgent (a comment is already delivered when it
# is scored), so the lease is long and the idle cluster pays one renewal and one attempt to
# take it every 3 s, not every second as the outbox's.
LEASE_TTL_S = 15.0
LEASE_ACQUIRE_EVERY_S = 3.0
# After a batch behind which nothing waited (the worker has caught up), it waits this long
# before it fetches again, so that comments arriving one by one are fetched, scored and
# acknowledged by the dozen: at 1,000 posts/s each fetch came back with one comment, a pull
# request, a delivery and an ack per comment. A backlog is read without pauses. A flood is
# still taken down within a fraction of a second.
PACE_S = 0.1

Decide = Callable[..., Awaitable[Outcome]]


def classifier_spec(region: str, part: int = 0) -> ConsumerSpec:
    """The classifier's consumer on ``region``'s log ``part`` (0: the chained log; 1 to P: a
    hot partition)."""
    return ConsumerSpec(durable=hot_classifier_durable(region, part),
                        filter_subject=log_subjects(region, part), ack_wait_s=ACK_WAIT_S,
                        max_ack_pending=BATCH * 4, batch=BATCH, stream=log_stream(part))


class ClassifierWorker:
    """Run `run` as an owned task. ``decide(action, by=, reason=, wait=)`` is the decision
    log's (`region.moderation.DecisionLog.decide`). ``partitions``: the region's hot log
    partitions, each read by a worker of its own beside the chained log's."""

    def __init__(self, nc: Nats, *, region: str, state: ModerationState, decide: Decide,
                 metrics: Metrics, classifier: Classifier | None = None,
                 clock: Callable[[], float] = time.monotonic, partitions: int = 0) -> None:
        self.nc = nc
        self.region = region
        self.state = state
        self.decide = decide
        self.metrics = metrics
        self.classifier = classifier or HeuristicClassifier()
        self.window = Window()
        self.clock = clock
        # One worker per part of the log, all feeding the one window (`handle`): a flood
        # spread over a hot stream's partitions is still judged whole.
        self.workers = tuple(
            DurableWorker(nc, classifier_spec(region, part), region, self.handle,
                          name=part_name("classifier", part),
                          backoff_first_s=0.5, backoff_max_s=10.0)
            for part in range(partitions + 1))
        self.lease = Lease(nc, LeaseSpec(classifier_lease_bucket(region), CLASSIFIER_LEASE_KEY,
                                         LEASE_TTL_S, acquire_every_s=LEASE_ACQUIRE_EVERY_S),
                           f"{socket.gethostname()}/{os.getpid()}", name="classifier")

    async def run(self) -> None:
        """Scores while this gateway holds the region's classifier lease, until cancelled."""
        await self.lease.run(self._consume)

    async def _consume(self) -> None:
        """Every part's worker at once, under the one lease; the first that fails ends the
        others (and `run`, with its error)."""
        async with asyncio.TaskGroup() as tg:
            for worker in self.workers:
                tg.create_task(worker.run(), name=worker.name)

    def judged(self, comment: Comment) -> bool:
        """Whether the classifier looks at ``comment`` at all: this region's own, not
        shadowed (nobody else sees it), not staff's (not the classifier's call)."""
        return (comment.region == self.region and not comment.shadow
                and comment.badge not in ("host", "moderator"))

    async def handle(self, deliveries: Sequence[Delivery]) -> Sequence[Delivery]:
        """Scores each comment; a decision the log did not take raises `Unavailable` from
        the log (the batch is retried; comments already scored are scored again, which only
        repeats a decision that is already made)."""
        for delivery in deliveries:
            comment = delivery.comment
            if not self.judged(comment):
                continue
            signals = self.window.observe(comment, self.clock())
            score = self.classifier.score(comment, signals)
            self.metrics.classifier_scored.inc()
            if not score.flagged:
                continue
            policy = self.state.policy(comment.stream)
            if policy == "off" or self.state.state_of(comment.stream, comment.id):
                continue
            action: Action = Verdict(stream=comment.stream, comment_id=comment.id,
                                     author=comment.user,
                                     state="retracted" if policy == "retract" else "held")
            await self.decide(action, by="classifier",
                              reason=f"score {score.score}: {', '.join(score.reasons)}",
                              wait=False)
            self.metrics.classifier_flagged.inc()
        if deliveries and caught_up(deliveries[-1]):
            await asyncio.sleep(PACE_S)   # pacing, not synchronisation: see PACE_S
        return ()


def caught_up(delivery: Delivery) -> bool:
    """Whether nothing of the consumer waited behind ``delivery`` when JetStream handed it
    over (its metadata's pending count; False when it has none)."""
    try:
        return delivery.msg.metadata.num_pending == 0
    except (NotJSMessageError, IndexError, ValueError):
        return False
