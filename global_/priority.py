"""The priority lane across regions: a hot stream's priority comment goes to the other regions
at once, not behind the outbox's queue.

A region's outbox (global_/outbox.py) forwards its comments in order: when a hot stream posts
thousands a second and a link or a gateway falls behind, a host's comment waits behind every
comment posted before it, seconds at worst. The priority lane (region/sampling.py `priority`)
is for the comments every viewer must see; so when a region stores one of a stream above
the push tier, `PriorityForwarder` also publishes it straight into every other region's log
that has viewers of the stream (the presence directory's cached answer; no answer counts as
watching), with ``Nats-Msg-Id`` = comment id. The outbox still forwards it in its turn, and
the destination's log takes that copy as the duplicate it is: the lane is a shortcut, never
the only way, so a shortcut that fails (a cut link) loses nothing and is not retried.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence

from nats.aio.client import Client as Nats

from chorus.drivers import driver_errors
from chorus.metrics import Metrics
from chorus.model import Comment
from chorus.names import comment_subject
from global_.presence import PresenceDirectory
from global_.tasks import OwnedTasks

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S = 5.0
MAX_IN_FLIGHT = 1000   # shortcuts under way; beyond, a priority comment waits for the outbox


class PriorityForwarder:
    """Run `run` as an owned task; `expedite` never blocks."""

    def __init__(self, nc: Nats, *, region: str, others: Sequence[str],
                 directory: PresenceDirectory, metrics: Metrics) -> None:
        self.region = region
        self.others = tuple(others)
        self.directory = directory
        self.metrics = metrics
        self.js = nc.jetstream(timeout=PUBLISH_TIMEOUT_S)
        self._tasks = OwnedTasks(MAX_IN_FLIGHT)

    def expedite(self, comment: Comment) -> None:
        """Sends ``comment`` (stored in this region's log) to the other regions now."""
        for dest in self.others:
            self._tasks.spawn(self._forward(comment, dest), name=f"priority to {dest}")

    async def _forward(self, comment: Comment, dest: str) -> None:
        answer = await self.directory.viewers(comment.stream, dest)
        if not answer.has_viewers:
            return
        with contextlib.suppress(*driver_errors("nats")):
            # Not stored there now: the outbox forwards it in its turn.
            await self.js.publish(comment_subject(dest, comment.stream), comment.encode(),
                                  headers={"Nats-Msg-Id": comment.id},
                                  timeout=PUBLISH_TIMEOUT_S)
            self.metrics.priority_expedited(dest)

    async def run(self) -> None:
        """Owns the shortcuts under way until cancelled; a bug in one ends it."""
        try:
            await self._tasks.watch()
        finally:
            await self._tasks.close()
