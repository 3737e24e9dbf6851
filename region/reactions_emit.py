"""Emitting aggregates: each closed second of each stream becomes one `Aggregate` in the
region's reaction log, emitted by one gateway of the region.

Every gateway runs an `Emitter`. Just after each second's boundary (`AFTER_BOUNDARY_S`: the
seconds it claims close on the boundary, so an idle gateway asks once a second and a
reactions frame is at most about a second late) it claims closed seconds from the counters
(region/reactions_redis.py: a lease, so one gateway takes each; a gateway that dies holding
one leaves it to another after the lease), builds each one's aggregate on the stream's
previous one (its running total) and appends it, conditionally on that previous one still
being the newest (region/reactions_jetstream.py). Seconds of one stream are emitted in order;
when another gateway emitted meanwhile the append reports it and the emitter reads the newest
again. What could not be stored (the log is down) stays leased and is claimed again after
the lease, by whichever gateway comes first: a second is late, never lost, while its counters
live (`COUNTER_TTL_S`). Deduplication across gateways is the log's ``Nats-Msg-Id``
(`Aggregate.msg_id` = ``region:stream:second``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from chorus.backoff import Backoff
from chorus.metrics import Metrics
from region.reactions import (
    Closed,
    ReactionCounter,
    ReactionLog,
    ReactionsUnavailable,
    Stored,
    next_aggregate,
)

log = logging.getLogger(__name__)

# How long after a second's boundary a gateway looks for the seconds closed: a little, for
# the counters' clock (Redis's TIME decides which second a tap is in) being a little behind
# the gateway's.
AFTER_BOUNDARY_S = 0.05
RETRY_S = 0.1         # the first wait after the counters or the log did not answer
CLAIM_LIMIT = 500     # seconds claimed at once (streams x seconds)
MAX_MOVES = 5         # conditional appends retried after another gateway moved a stream on
KNOWN_STREAMS = 10_000  # newest aggregates remembered, saving a read per second per stream


def by_stream(closed: Sequence[Closed]) -> list[list[Closed]]:
    """Claimed seconds grouped by stream, each group oldest first. Pure."""
    groups: dict[str, list[Closed]] = {}
    for c in closed:
        groups.setdefault(c.stream, []).append(c)
    return [sorted(group, key=lambda c: c.second) for group in groups.values()]


def until_next_claim(now: float, after_s: float = AFTER_BOUNDARY_S) -> float:
    """Seconds from ``now`` (Unix time) to ``after_s`` past the next second's boundary, or
    past the current one while that is still ahead (a pass that ended just after a boundary
    does not skip the second that closed on it). Pure."""
    due = math.floor(now - after_s) + 1 + after_s
    return max(0.0, due - now)


class Emitter:
    def __init__(self, counter: ReactionCounter, log: ReactionLog, *, region: str,
                 metrics: Metrics, after_s: float = AFTER_BOUNDARY_S,
                 clock: Callable[[], float] = time.time) -> None:
        self.counter = counter
        self.log = log
        self.region = region
        self.metrics = metrics
        self.after_s = after_s
        self.clock = clock
        self._newest: OrderedDict[str, Stored] = OrderedDict()

    async def run(self) -> None:
        """Emits until cancelled; the gateway owns this task."""
        backoff = Backoff(RETRY_S, 5.0)
        failing = False
        while True:
            try:
                emitted = await self.once()
            except ReactionsUnavailable as exc:
                if not failing:
                    log.warning("reaction aggregates not emitted: %s; retrying", exc)
                failing = True
                await backoff.wait()
                continue
            if failing:
                log.warning("reaction aggregates emitted again")
                failing = False
                backoff.reset()
            if emitted < CLAIM_LIMIT:
                # Pacing, not synchronisation: nothing more closes before the next boundary
                # (a full claim may have left more: it is asked again at once).
                await asyncio.sleep(until_next_claim(self.clock(), self.after_s))

    async def once(self) -> int:
        """Claims closed seconds and emits them; how many were claimed. Raises
        `ReactionsUnavailable` when the counters did not answer."""
        claimed = await self.counter.claim(CLAIM_LIMIT)
        if not claimed:
            return 0
        done = await asyncio.gather(*(self._emit_stream(group)
                                      for group in by_stream(claimed)))
        await self.counter.done([c for group in done for c in group])
        return len(claimed)

    async def _emit_stream(self, seconds: list[Closed]) -> list[Closed]:
        """Emits a stream's seconds in order; returns those stored (or found stored)."""
        out = []
        for closed in seconds:
            try:
                if closed.counts and not await self._emit(closed):
                    break
            except ReactionsUnavailable as exc:
                log.warning("aggregate of %s at %d not stored (%s); it stays leased and is "
                            "emitted again", closed.stream, closed.second, exc)
                break
            out.append(closed)
        return out

    async def _emit(self, closed: Closed) -> bool:
        for _ in range(MAX_MOVES):
            last = self._newest.get(closed.stream)
            if last is None:
                last = await self.log.last(self.region, closed.stream)
                if last is not None and last.aggregate.second == closed.second:
                    return True  # emitted by a gateway whose lease ran out before it was done
            aggregate = next_aggregate(self.region, closed.stream, closed.second,
                                       closed.counts, last.aggregate if last else None)
            appended = await self.log.append(aggregate,
                                             expected_last_seq=last.seq if last else 0)
            if appended.outcome == "moved":
                self._newest.pop(closed.stream, None)
                continue
            if appended.outcome == "stored":
                self._remember(Stored(appended.seq, aggregate))
                self.metrics.reaction_aggregates_emitted()
            else:
                self._newest.pop(closed.stream, None)  # stored before: read it next time
            return True
        log.warning("aggregate of %s at %d not stored: the stream moved on %d times in a "
                    "row; it stays leased", closed.stream, closed.second, MAX_MOVES)
        return False

    def _remember(self, stored: Stored) -> None:
        stream = stored.aggregate.stream
        self._newest[stream] = stored
        self._newest.move_to_end(stream)
        while len(self._newest) > KNOWN_STREAMS:
            self._newest.popitem(last=False)
