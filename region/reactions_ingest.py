"""Taking reactions: the kind checked at once, the user's bucket and the count in one Redis round
trip per tick for everything the gateway took in that tick.

A tap (a ``react`` frame, a ``POST .../reactions``) waits at most one tick (``limits.tick_ms``)
with the others taken meanwhile; `ReactionIngest.run` hands each batch to the region's
counters (region/reactions_redis.py), so a gateway's Redis load follows its ticks, not its
taps. An HTTP request is answered once its tap is counted (202) or refused (429 with
Retry-After; 503 when Redis did not answer and nothing was counted); a WebSocket client gets
an ``error`` frame only when a tap is refused (a counted tap shows in the next ``reactions``
frame).

Bounded: at most `MAX_WAITING` taps wait for a tick; past that a tap is refused with 503 (the
gateway is saturated: retry), which keeps memory flat under any flood. One round trip counts
at most `MAX_BATCH` taps (a longer queue takes several, back to back), so no single script
holds Redis for long.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chorus.metrics import Metrics
from region.errors import ApiError, ErrorCode
from region.reactions import Counted, ReactionCounter, ReactionsUnavailable, Tap, by_user

log = logging.getLogger(__name__)

MAX_WAITING = 50_000   # taps waiting for the next tick on one gateway
MAX_BATCH = 5_000      # taps counted in one Redis round trip


@dataclass(frozen=True)
class Verdict:
    """What became of one tap: counted in ``second`` (0 when refused), else refused with
    ``error``."""

    second: int = 0
    error: ApiError | None = None


def verdicts(taps: Sequence[Tap], counted: Counted, *, rate_per_s: float,
             burst: int) -> list[Verdict]:
    """Each tap's verdict from what the counters answered for its user (`by_user` order):
    the user's first ``admitted`` taps were counted, the rest refused. Pure."""
    out: list[Verdict] = [Verdict()] * len(taps)
    for (user, indexes), admitted, retry_ms in zip(by_user(taps), counted.admitted,
                                                  counted.retry_ms, strict=True):
        for n, i in enumerate(indexes):
            if n < admitted:
                out[i] = Verdict(second=counted.second)
            else:
                out[i] = Verdict(error=ApiError(
                    ErrorCode.RATE_LIMITED, f"too many reactions from {user} (limit "
                    f"{rate_per_s:g}/s, burst {burst})", retry_after_s=max(retry_ms, 1) / 1000))
    return out


class ReactionIngest:
    """``kinds``: what a tap may be (``reactions.kinds``); ``tick_s``: how long a tap waits
    for the others of its batch; ``shard``: where this gateway's first batch goes (the next
    goes to the next shard)."""

    def __init__(self, counter: ReactionCounter, *, kinds: Sequence[str], rate_per_s: float,
                 burst: int, tick_s: float, shard: int, metrics: Metrics,
                 max_waiting: int = MAX_WAITING) -> None:
        self.counter = counter
        self.kinds = tuple(kinds)
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.tick_s = tick_s
        self.shard = shard
        self.metrics = metrics
        self.max_waiting = max_waiting
        self._taps: list[Tap] = []
        self._waiters: list[asyncio.Future[Verdict]] = []
        self._wake = asyncio.Event()

    def check_kind(self, kind: str) -> None:
        """ApiError 422 unless ``kind`` is one of ``reactions.kinds``."""
        if kind not in self.kinds:
            self.metrics.reactions_refused("invalid")
            raise ApiError(ErrorCode.INVALID, f"unknown reaction kind {kind[:32]!r} (this "
                                              f"server takes: {', '.join(self.kinds)})")

    def take(self, tap: Tap) -> asyncio.Future[Verdict]:
        """Queues ``tap`` for the next tick; its verdict comes in the future. ApiError at once
        for an unknown kind (422) or a full queue (503)."""
        self.check_kind(tap.kind)
        if len(self._taps) >= self.max_waiting:
            self.metrics.reactions_refused("overloaded")
            raise ApiError(ErrorCode.UNAVAILABLE, "this gateway has too many reactions "
                                                  "waiting; retry", retry_after_s=1)
        waiter: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        self._taps.append(tap)
        self._waiters.append(waiter)
        self._wake.set()
        return waiter

    async def react(self, tap: Tap) -> int:
        """Counts ``tap``; returns the second it was counted in. ApiError when refused."""
        verdict = await self.take(tap)
        if verdict.error is not None:
            raise verdict.error
        return verdict.second

    def on_refused(self, waiter: asyncio.Future[Verdict],
                   tell: Callable[[ApiError], None]) -> None:
        """Calls ``tell`` with the refusal, if ``waiter``'s tap is refused (a WebSocket
        client is told; a counted tap needs no answer)."""
        def done(f: asyncio.Future[Verdict]) -> None:
            error = None if f.cancelled() else f.result().error
            if error is not None:
                tell(error)
        waiter.add_done_callback(done)

    async def run(self) -> None:
        """Counts a batch per tick until cancelled; the gateway owns this task. Waiters still
        queued when it ends are cancelled (their requests end with the gateway)."""
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._taps:
                    await self.flush()
                # Pacing, not synchronisation: taps arriving meanwhile make the next batch.
                await asyncio.sleep(self.tick_s)
        finally:
            for waiter in self._waiters:
                waiter.cancel()

    async def flush(self) -> None:
        """Counts what is queued now (at most `MAX_BATCH` taps), in one round trip."""
        if not self._taps:
            return
        taps, waiters = self._taps[:MAX_BATCH], self._waiters[:MAX_BATCH]
        del self._taps[:MAX_BATCH], self._waiters[:MAX_BATCH]
        shard, self.shard = self.shard, self.shard + 1
        try:
            counted = await self.counter.count(taps, shard=shard)
        except ReactionsUnavailable as exc:
            log.warning("%d reactions not counted: %s", len(taps), exc)
            self.metrics.reactions_refused("unavailable", len(taps))
            error = ApiError(ErrorCode.UNAVAILABLE, "the region's Redis is not answering; "
                                                    "nothing was counted, retry",
                             retry_after_s=1)
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(Verdict(error=error))
            return
        results = verdicts(taps, counted, rate_per_s=self.rate_per_s, burst=self.burst)
        accepted = sum(1 for v in results if v.error is None)
        self.metrics.reactions_accepted(accepted)
        if accepted < len(results):
            self.metrics.reactions_refused("rate_limited", len(results) - accepted)
        for waiter, verdict in zip(waiters, results, strict=True):
            if not waiter.done():   # its request went away meanwhile
                waiter.set_result(verdict)
