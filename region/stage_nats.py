"""The sampling stage's NATS side in one gateway (region/stage.py has the rule).

As the region's stage of a stream (its keeper), the gateway publishes what its feed decided
(`StageOut`): each message is queued without blocking and published by one owned loop, in
order. As a follower it holds the subscriptions `TierFeeds.plan` asks for: each stage
subject it must hear, the own subject of each user it holds a session of, and, through the
fanout (`LiveSwitch`), whether it reads a stream's live feed at all. The plan is revisited
when the feeds say it changed and once a second in any case (a subscription that failed is
tried again then).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Protocol

from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from chorus.drivers import driver_errors
from chorus.names import own_subject, stage_subject
from region.stage import StageItem, StageMessage, decode, encode
from region.tiers_feed import StagePlan, TierFeeds

log = logging.getLogger(__name__)

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

    def __init__(self, nc: Nats, *, region: str, max_waiting: int = MAX_WAITING) -> None:
        self.nc = nc
        self.region = region
        self.max_waiting = max_waiting
        self.feeds: TierFeeds | None = None
        self.live: LiveSwitch | None = None
        self.dropped = 0     # messages never published (the queue was full)
        self.rejected = 0    # messages heard that did not decode
        self._waiting: deque[tuple[str, bytes]] = deque()
        self._filled = asyncio.Event()
        self._plan_now = asyncio.Event()
        self._stages: dict[str, Subscription] = {}
        self._own: dict[tuple[str, str], Subscription] = {}
        self._quiet: set[str] = set()

    def bind(self, feeds: TierFeeds, live: LiveSwitch) -> None:
        self.feeds, self.live = feeds, live

    # -- StageOut (region/stage.py): the keeper's side ----------------------------------------

    def shared(self, stream: str, message: StageMessage) -> None:
        self._queue(stage_subject(self.region, stream), encode(message))

    def own(self, stream: str, user: str, item: StageItem) -> None:
        self._queue(own_subject(self.region, stream, user), encode(item))

    def _queue(self, subject: str, data: bytes) -> None:
        if len(self._waiting) >= self.max_waiting:
            # The followers' sessions find the hole through the chain and read the log.
            self._waiting.popleft()
            self.dropped += 1
        self._waiting.append((subject, data))
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
            for subject, data in batch:
                try:
                    await self.nc.publish(subject, data)
                except driver_errors("nats") as exc:
                    # Lost: a hole for the followers (read from the log), or one tick
                    # fewer (the next one comes within a second).
                    self.dropped += 1
                    log.warning("a stage message to %s not published: %s", subject, exc)

    async def _planning(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                # Pacing (and a change of plan), not synchronisation.
                await asyncio.wait_for(self._plan_now.wait(), PLAN_EVERY_S)
            self._plan_now.clear()
            if self.feeds is None or self.live is None:
                continue
            try:
                await self.follow(self.feeds.plan())
            except driver_errors("nats") as exc:
                log.warning("stage subscriptions not brought up to date: %s", exc)

    async def follow(self, plan: StagePlan) -> None:
        """Subscribes and unsubscribes to match ``plan``. Raises the driver's errors (the
        next round tries again)."""
        assert self.live is not None, "bind first"
        added = False
        for stream in set(self._stages) - plan.stages:
            await self._stages.pop(stream).unsubscribe()
        for stream in plan.stages - set(self._stages):
            self._stages[stream] = await self.nc.subscribe(
                stage_subject(self.region, stream), cb=self._on_stage(stream))
            added = True
        for key in set(self._own) - plan.own:
            await self._own.pop(key).unsubscribe()
        for key in plan.own - set(self._own):
            stream, user = key
            self._own[key] = await self.nc.subscribe(
                own_subject(self.region, stream, user), cb=self._on_own(stream, user))
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

    def _decoded(self, msg: Msg) -> StageMessage | None:
        try:
            return decode(msg.data)
        except ValueError as exc:
            self.rejected += 1
            log.warning("dropping a message on %s: %s", msg.subject, exc)
            return None

    def _on_stage(self, stream: str) -> Callable[[Msg], Awaitable[None]]:
        async def on_message(msg: Msg) -> None:
            message = self._decoded(msg)
            if message is not None and self.feeds is not None:
                self.feeds.heard(stream, message)
        return on_message

    def _on_own(self, stream: str, user: str) -> Callable[[Msg], Awaitable[None]]:
        async def on_message(msg: Msg) -> None:
            message = self._decoded(msg)
            if (isinstance(message, StageItem) and message.comment.user == user
                    and message.comment.stream == stream and self.feeds is not None):
                self.feeds.heard_own(stream, user, message)
        return on_message
