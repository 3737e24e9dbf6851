"""Feeds the thread index (region/replies.py) from the region's log: the log re-publishes
every comment it stores on ``live.<region>.>``, and the gateway of the region that takes a
comment's share of that feed (region/fanout.py's `share_live`, queue group ``live-share``, the
replay cache's too) indexes it if it is a reply, its own region's or one forwarded to it.

The feed is a core NATS subscription: a reply re-published while no gateway listened (all of
them restarting) is not indexed by it; its thread is rebuilt from the log when read while
the index holds none of it (`Replies.thread`). Replies wait at most one tick and are written
in one Redis round trip per tick; while Redis does not answer at most `PENDING_MAX` wait
(past it, newer ones are dropped and counted in the log line that says Redis is back: their
threads miss them, unless the index held none of a thread, which is then read from the log).
"""

from __future__ import annotations

import asyncio
import logging

from chorus.backoff import Backoff
from region.log import Entry
from region.replies import RepliesUnavailable, ThreadIndex, indexable

log = logging.getLogger(__name__)

PENDING_MAX = 10_000


class ReplyFeed:
    def __init__(self, *, index: ThreadIndex, tick_s: float) -> None:
        self.index = index
        self.tick_s = tick_s
        self.dropped = 0
        self.failing = False
        self._pending: list[Entry] = []
        self._arrived = asyncio.Event()

    async def run(self) -> None:
        """Indexes what `offer` was handed until cancelled."""
        backoff = Backoff(0.2, 5.0)
        while True:
            await self._arrived.wait()
            self._arrived.clear()
            await asyncio.sleep(self.tick_s)  # pacing: one write per tick, not per reply
            if await self.flush():
                backoff.reset()
            else:
                await backoff.wait()

    def offer(self, entry: Entry) -> None:
        """One comment of the region's share of the live feed: kept for the next write if it
        is a reply the index holds (and there is room)."""
        if not indexable(entry.comment):
            return
        if len(self._pending) >= PENDING_MAX:
            self.dropped += 1  # logged when the index answers again
            return
        self._pending.append(entry)
        self._arrived.set()

    async def flush(self) -> bool:
        """Writes what waits; False when the index did not take it (it waits again, at the
        head of the line, within the bound)."""
        batch, self._pending = self._pending, []
        if not batch:
            return True
        try:
            await self.index.add(batch)
        except RepliesUnavailable as exc:
            room = PENDING_MAX - len(self._pending)
            self.dropped += max(0, len(batch) - room)
            self._pending[:0] = batch[:room]
            self._arrived.set()
            if not self.failing:
                log.warning("indexing %d replies failed (%s); retrying with backoff",
                            len(batch), exc)
            self.failing = True
            return False
        if self.failing:
            log.warning("the thread index answers again; %d replies were dropped meanwhile "
                        "(their threads miss them)", self.dropped)
            self.failing, self.dropped = False, 0
        return True
