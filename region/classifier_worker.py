"""The classifier worker: one per gateway, on the durable consumer
``classifier_durable(region)`` of the region's log (chorus/durable.py), so each of the
region's own comments is scored once, by one gateway, after it was stored and delivered:
never on the live path. A flagged comment becomes a moderation decision (retracted or held,
per the stream's policy; nothing when the policy is "off"), made like a moderator's
(region/moderation_service.py), which reaches every viewer in every region.

The durable consumer splits the region's comments between its gateways, but a flood must be
judged on all of them: each gateway's `Window` also reads the region's live feed (the log's
RePublish, ``live.<region>.>``, which every gateway can hear), so every gateway's window holds
every comment the region stored, and the consumer only says which gateway decides on which
comment. A window that missed part of the feed (a slow subscriber, a restart) still holds what
its worker was handed. An earlier version fed the window from the consumer alone: with two
gateways a flood of ten was judged as two floods of five, and most of it stayed up.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence

from nats.aio.client import Client as Nats
from nats.aio.msg import Msg

from chorus.drivers import driver_errors
from chorus.durable import ConsumerSpec, Delivery, DurableWorker, decode_comment
from chorus.metrics import Metrics
from chorus.model import Comment
from chorus.names import classifier_durable, comment_subjects, live_subjects
from region.classifier import Classifier, HeuristicClassifier, Window
from region.moderation import Action, ModerationState, Outcome, Verdict

BATCH = 128
ACK_WAIT_S = 30.0
# The live feed's subscription buffers at most this many comments; past it NATS drops them
# (the window is a sample then, and the consumer's own comments are still observed).
FEED_PENDING_MSGS = 20_000

Decide = Callable[..., Awaitable[Outcome]]


def classifier_spec(region: str) -> ConsumerSpec:
    return ConsumerSpec(durable=classifier_durable(region),
                        filter_subject=comment_subjects(region), ack_wait_s=ACK_WAIT_S,
                        max_ack_pending=BATCH * 4, batch=BATCH)


class ClassifierWorker:
    """Run `run` as an owned task. ``decide(action, by=, reason=, wait=)`` is the decision
    log's (`region.moderation.DecisionLog.decide`)."""

    def __init__(self, nc: Nats, *, region: str, state: ModerationState, decide: Decide,
                 metrics: Metrics, classifier: Classifier | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.nc = nc
        self.region = region
        self.state = state
        self.decide = decide
        self.metrics = metrics
        self.classifier = classifier or HeuristicClassifier()
        self.window = Window()
        self.clock = clock
        self.worker = DurableWorker(nc, classifier_spec(region), region, self.handle,
                                    name="classifier", backoff_first_s=0.5,
                                    backoff_max_s=10.0)

    async def run(self) -> None:
        sub = await self.nc.subscribe(live_subjects(self.region), cb=self._on_live,
                                      pending_msgs_limit=FEED_PENDING_MSGS)
        try:
            await self.worker.run()
        finally:
            with contextlib.suppress(*driver_errors("nats")):
                await sub.unsubscribe()

    def judged(self, comment: Comment) -> bool:
        """Whether the classifier looks at ``comment`` at all: this region's own, not
        shadowed (nobody else sees it), not staff's (not the classifier's call)."""
        return (comment.region == self.region and not comment.shadow
                and comment.badge not in ("host", "moderator"))

    async def _on_live(self, msg: Msg) -> None:
        try:
            comment = decode_comment(msg.data)
        except ValueError:
            return  # the log's business (sort_batch terminates it); the window skips it
        if self.judged(comment):
            self.window.observe(comment, self.clock())

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
        return ()
