"""The sampling stage's NATS side in one gateway (region/stage.py has the rule).

As the region's stage of a stream (its keeper), the gateway publishes what its feed decided
(`StageOut`): each message is queued without blocking and published by one owned loop, in
order. As a follower it holds the subscriptions `TierFeeds.plan` asks for: each stage
subject it must hear, the own subject of each user it holds a session of, and, through the
fanout (`LiveSwitch`), whether it reads a stream's live feed at all. The plan is revisited
when the feeds say it changed and once a second in any case (a subscription that failed is
tried again then).

A session's own subject is not left to the next revision: the fanout awaits `own_ready`
before the session starts (region/fanout.py), so that a comment its author posts at once is
published after the subscription reached the server. Reading the stretch from the log once
the subscription is up would close the same race, but only after the fact (a read of the log
per joining author, and the comment late); waiting costs the join one round trip to the
region's NATS, and only for a user's first session of a stream this gateway follows through
a stage.

What the link publishes, drops, hears and refuses is counted in
``chorus_stage_messages_total{kind,outcome}`` (chorus/metrics.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Literal, Protocol

from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from chorus.drivers import driver_errors
from chorus.metrics import Metrics
from chorus.names import own_subject, stage_subject
from region.stage import StageItem, StageMessage, decode, encode
from region.tiers_feed import TierFeeds

log = logging.getLogger(__name__)

StageKind = Literal["shared", "own"]   # the stage subject, or an author's own subject

MAX_WAITING = 10_000   # messages queued for publishing; past it the oldest go (holes)
PLAN_EVERY_S = 1.0     # the plan is revisited at least this often


class LiveSwitch(Protocol):
    """The fanout's live subscriptions (region/fanout.py)."""

    async def set_live(self, stream: str, on: bool) -> None:
        """Whether this gateway reads ``stream``'s live feed."""
        ...


class StageLink:
    """One gateway's stage publisher and follower subscriptions. `bind` the feeds and the
    fanout (each is built with the other's help), then run `run` as an owned task."""

    def __init__(self, nc: Nats, *, region: str, metrics: Metrics | None = None,
                 max_waiting: int = MAX_WAITING) -> None:
        self.nc = nc
        self.region = region
        # None: counted in a registry nobody exports (a benchmark's link).
        self.metrics = metrics if metrics is not None else Metrics(region, "")
        self.max_waiting = max_waiting
        self.feeds: TierFeeds | None = None
        self.live: LiveSwitch | None = None
        self._waiting: deque[tuple[StageKind, str, bytes]] = deque()
        self._filled = asyncio.Event()
        self._plan_now = asyncio.Event()
        self._stages: dict[str, Subscription] = {}
        self._own: dict[tuple[str, str], Subscription] = {}
        self._quiet: set[str] = set()
        # Held while subscriptions are made or dropped and while the plan they follow is read:
        # `own_ready` and a round of `follow` never subscribe one subject twice, and a round
        # never drops what a session made ready after the round read its plan.
        self._subscribing = asyncio.Lock()

    def bind(self, feeds: TierFeeds, live: LiveSwitch) -> None:
        self.feeds, self.live = feeds, live

    # -- StageOut (region/stage.py): the keeper's side ----------------------------------------

    def shared(self, stream: str, message: StageMessage) -> None:
        self._queue("shared", stage_subject(self.region, stream), encode(message))

    def own(self, stream: str, user: str, item: StageItem) -> None:
        self._queue("own", own_subject(self.region, stream, user), encode(item))

    def _queue(self, kind: StageKind, subject: str, data: bytes) -> None:
        if len(self._waiting) >= self.max_waiting:
            # The followers' sessions find the hole through the chain and read the log.
            lost, _, _ = self._waiting.popleft()
            self.metrics.stage_messages(lost, "dropped")
        self._waiting.append((kind, subject, data))
        self._filled.set()

    def replan(self) -> None:
        """The feeds' plan may have changed (`TierFeeds` ``on_plan``)."""
        self._plan_now.set()

    # -- the loops ------------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._publishing(), name="stage publishing")
                tg.create_task(self._planning(), name="stage subscriptions")
        finally:
            for sub in [*self._stages.values(), *self._own.values()]:
                with contextlib.suppress(*driver_errors("nats")):
                    await sub.unsubscribe()

    async def _publishing(self) -> None:
        while True:
            await self._filled.wait()
            self._filled.clear()
            batch, self._waiting = self._waiting, deque()
            # Counted once a batch: a keeper publishes an own item per comment it leaves out.
            published = {"shared": 0, "own": 0}
            for kind, subject, data in batch:
                try:
                    await self.nc.publish(subject, data)
                    published[kind] += 1
                except driver_errors("nats") as exc:
                    # Lost: a hole for the followers (read from the log), or one tick
                    # fewer (the next one comes within a second).
                    self.metrics.stage_messages(kind, "dropped")
                    log.warning("a stage message to %s not published: %s", subject, exc)
            for subject_kind, n in published.items():
                if n:
                    self.metrics.stage_messages(subject_kind, "published", n)

    async def _planning(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                # Pacing (and a change of plan), not synchronisation.
                await asyncio.wait_for(self._plan_now.wait(), PLAN_EVERY_S)
            self._plan_now.clear()
            if self.feeds is None or self.live is None:
                continue
            try:
                await self.follow()
            except driver_errors("nats") as exc:
                log.warning("stage subscriptions not brought up to date: %s", exc)

    async def follow(self) -> None:
        """Subscribes and unsubscribes to match the feeds' plan (`TierFeeds.plan`). Raises
        the driver's errors (the next round tries again)."""
        assert self.feeds is not None and self.live is not None, "bind first"
        added = False
        async with self._subscribing:
            plan = self.feeds.plan()
            for stream in set(self._stages) - plan.stages:
                await self._stages.pop(stream).unsubscribe()
            for stream in plan.stages - set(self._stages):
                self._stages[stream] = await self.nc.subscribe(
                    stage_subject(self.region, stream), cb=self._on_stage(stream))
                added = True
            for key in set(self._own) - plan.own:
                await self._own.pop(key).unsubscribe()
            for key in plan.own - set(self._own):
                await self._subscribe_own(*key)
                added = True
        if added:
            # The server has them once flush returns: from here on nothing the stage
            # publishes passes this gateway by (an author's own comment included).
            await self.nc.flush()
        for stream in plan.quiet - self._quiet:
            await self.live.set_live(stream, False)
            self._quiet.add(stream)
        for stream in self._quiet - plan.quiet:
            await self.live.set_live(stream, True)
            self._quiet.discard(stream)

    async def own_ready(self, stream: str, user: str) -> None:
        """Returns once the region's stage of ``stream`` reaches this gateway with ``user``'s
        own items, when this gateway follows the stream through a stage (the fanout awaits
        it before the user's session starts); at once otherwise. Never raises: a NATS
        failure is logged, and the next round of the plan subscribes (the author then sees a
        comment posted meanwhile on resume, as before this wait)."""
        if self.feeds is None or not self.feeds.wants_own(stream, user):
            return
        try:
            async with self._subscribing:
                if (stream, user) not in self._own:
                    await self._subscribe_own(stream, user)
            # Even when a round of the plan subscribed it: that round may still be flushing.
            await self.nc.flush()
        except driver_errors("nats") as exc:
            log.warning("%s's own items of %s not subscribed before the session: %s",
                        user, stream, exc)

    async def _subscribe_own(self, stream: str, user: str) -> None:
        self._own[(stream, user)] = await self.nc.subscribe(
            own_subject(self.region, stream, user), cb=self._on_own(stream, user))

    def _decoded(self, msg: Msg, kind: StageKind) -> StageMessage | None:
        try:
            message = decode(msg.data)
        except ValueError as exc:
            self.metrics.stage_messages(kind, "rejected")
            log.warning("dropping a message on %s: %s", msg.subject, exc)
            return None
        return message

    def _on_stage(self, stream: str) -> Callable[[Msg], Awaitable[None]]:
        async def on_message(msg: Msg) -> None:
            message = self._decoded(msg, "shared")
            if message is not None and self.feeds is not None:
                self.metrics.stage_messages("shared", "received")
                self.feeds.heard(stream, message)
        return on_message

    def _on_own(self, stream: str, user: str) -> Callable[[Msg], Awaitable[None]]:
        async def on_message(msg: Msg) -> None:
            message = self._decoded(msg, "own")
            if message is None or self.feeds is None:
                return
            if (isinstance(message, StageItem) and message.comment.user == user
                    and message.comment.stream == stream):
                self.metrics.stage_messages("own", "received")
                self.feeds.heard_own(stream, user, message)
            else:
                # Well formed, but not an item of this user's comment on this stream.
                self.metrics.stage_messages("own", "rejected")
                log.warning("dropping a message on %s: not %s's item of %s", msg.subject,
                            user, stream)
        return on_message
