"""The classifier worker: one per gateway, on the durable consumer
``classifier_durable(region)`` of the region's log (chorus/durable.py), so each of the
region's own comments is scored once, by one gateway, after it was stored and delivered:
never on the live path. A flagged comment becomes a moderation decision (retracted or held,
per the stream's policy; nothing when the policy is "off"), made like a moderator's
(region/moderation_service.py), which reaches every viewer in every region.

Each gateway's `Window` sees the comments its worker was handed: with several gateways a
flood is split between them, and its thresholds are per gateway (docs/protocol.md).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

from nats.aio.client import Client as Nats

from chorus.durable import ConsumerSpec, Delivery, DurableWorker
from chorus.metrics import Metrics
from chorus.names import classifier_durable, comment_subjects
from region.classifier import Classifier, HeuristicClassifier, Window
from region.moderation import Action, ModerationState, Outcome, Verdict

BATCH = 128
ACK_WAIT_S = 30.0

Decide = Callable[..., Awaitable[Outcome]]


def classifier_spec(region: str) -> ConsumerSpec:
    return ConsumerSpec(durable=classifier_durable(region),
                        filter_subject=comment_subjects(region), ack_wait_s=ACK_WAIT_S,
                        max_ack_pending=BATCH * 4, batch=BATCH)


class ClassifierWorker:
    """Run `run` as an owned task. ``decide(action, by=, reason=)`` is the decision log's."""

    def __init__(self, nc: Nats, *, region: str, state: ModerationState, decide: Decide,
                 metrics: Metrics, classifier: Classifier | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
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
        await self.worker.run()

    async def handle(self, deliveries: Sequence[Delivery]) -> Sequence[Delivery]:
        """Scores each comment; a decision the log did not take raises `Unavailable` from
        the log (the batch is retried; comments already scored are scored again, which only
        repeats a decision that is already made)."""
        for delivery in deliveries:
            comment = delivery.comment
            if comment.shadow or comment.badge in ("host", "moderator"):
                continue  # shadowed: nobody else sees it; staff: not the classifier's call
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
                              reason=f"score {score.score}: {', '.join(score.reasons)}")
            self.metrics.classifier_flagged.inc()
        return ()
