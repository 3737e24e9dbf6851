"""Bans of earlier versions, carried over into the one moderation state.

Before moderation was one state for every region, a region's bans were two sets in its own
Redis, ``chorus:banned`` and ``chorus:shadowbanned``, that the admission script read and that
nothing lifts any more. The script no longer reads them; instead, when a gateway starts, it
carries what is left in them over: once its copy of the moderation state is loaded, each user
in a set becomes a ban (or shadow ban) decided by ``carry-over``, which holds in every region
and is lifted like any other, and then leaves the set. An empty set is gone (Redis drops it),
so a carried-over region costs later starts two SSCANs of nothing.

Several gateways may carry the same user at once: the ban is then decided twice, which adds an
audit record and changes nothing else. A gateway that stops half way leaves the rest in the
set for the next start. A user who already has that standing (a ban without an end, or a
shadow ban) only leaves the set.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis

from chorus.backoff import Backoff
from chorus.drivers import describe, driver_errors
from chorus.model import is_user_id
from region.moderation import (
    ModerationState,
    ModerationUnavailable,
    Outcome,
    Restrict,
    RestrictKind,
)

log = logging.getLogger(__name__)

OLD_SETS: tuple[tuple[str, RestrictKind], ...] = (
    ("chorus:banned", "ban"), ("chorus:shadowbanned", "shadow"))
SCAN_COUNT = 500
BY = "carry-over"

Decide = Callable[..., Awaitable[Outcome]]


class OldBans:
    """``ready`` returns once the gateway's moderation state is loaded (the decision log's
    `ready`); ``decide`` is the decision log's."""

    def __init__(self, redis: aioredis.Redis, *, region: str, state: ModerationState,
                 decide: Decide, ready: Callable[[], Awaitable[None]],
                 clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000) -> None:
        self.redis = redis
        self.region = region
        self.state = state
        self.decide = decide
        self.ready = ready
        self.clock_ms = clock_ms

    async def run(self) -> None:
        """Carries the old bans over (retrying until it could), then has nothing more to do
        until the gateway stops."""
        backoff = Backoff(1.0, 30.0)
        while True:
            try:
                carried = await self.carry_over()
                break
            except ModerationUnavailable as exc:
                log.warning("carrying old bans over: %s; retrying", exc)
            except driver_errors("redis") as exc:
                log.warning("carrying old bans over: Redis: %s; retrying", describe(exc))
            await backoff.wait()
        if carried:
            log.warning("carried %d bans of the old Redis sets over into the moderation "
                        "state of every region", carried)
        await asyncio.Event().wait()  # done; the gateway cancels this with the rest

    async def carry_over(self) -> int:
        """How many users were carried over. Raises ModerationUnavailable or Redis's errors;
        what was carried before stays carried."""
        await self.ready()
        carried = 0
        for key, kind in OLD_SETS:
            async for raw in self.redis.sscan_iter(key, count=SCAN_COUNT):
                user = raw.decode() if isinstance(raw, bytes) else str(raw)
                if not is_user_id(user):
                    log.warning("dropping %r from %s: not a user id", user[:80], key)
                elif not self._has(user, kind):
                    await self.decide(Restrict(user=user, kind=kind, active=True), by=BY,
                                      reason=f"{key} of {self.region}", wait=False)
                    carried += 1
                await self.redis.srem(key, raw)  # type: ignore[misc]
        return carried

    def _has(self, user: str, kind: RestrictKind) -> bool:
        standing = self.state.standing(user, self.clock_ms())
        if kind == "ban":
            return standing.banned and standing.until_ms is None
        return standing.shadow
