"""Viewer counts of the other regions, read globally for the ``viewers`` frame and
``GET /v1/streams/{stream}``.

`GlobalCounts` is region/fanout.py's `RegionCounts`: it asks the presence directory
(global_/presence.py), the same questions and the same cache that decide a comment's forward,
so counting costs no round trip that forwarding does not already make: for all the streams a
gateway shows, one question per other region per half ``presence_cache_ms`` at most (the
directory asks about many streams at once, and renews answers ahead of their expiry).
Nothing here costs anything per viewer.

A region that does not answer keeps its last known count for `STALE_AFTER_S` (`CountBook`,
pure), so a slow or cut link does not make the global count drop and jump back; after that
it is left out (and the frame's ``regions`` shows which regions were counted).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from global_.presence import PresenceDirectory

STALE_AFTER_S = 30.0      # a region's last count is shown this long after its last answer
MAX_ENTRIES = 100_000     # (stream, region) counts kept


@dataclass
class CountBook:
    """Each (stream, region)'s last answered count and when it came, by ``clock``. Pure.
    Bounded by ``max_entries``: when full, the stalest half goes."""

    stale_after_s: float = STALE_AFTER_S
    clock: Callable[[], float] = time.monotonic
    max_entries: int = MAX_ENTRIES
    _entries: dict[tuple[str, str], tuple[float, int]] = field(default_factory=dict)

    def put(self, stream: str, region: str, viewers: int) -> None:
        if len(self._entries) >= self.max_entries and (stream, region) not in self._entries:
            for key, _ in sorted(self._entries.items(), key=lambda kv: kv[1][0])[
                    : self.max_entries // 2]:
                del self._entries[key]
        self._entries[(stream, region)] = (self.clock(), viewers)

    def get(self, stream: str, region: str) -> int | None:
        """The last count still fresh enough to show; None: unknown."""
        hit = self._entries.get((stream, region))
        if hit is None:
            return None
        at, viewers = hit
        if self.clock() - at > self.stale_after_s:
            del self._entries[(stream, region)]
            return None
        return viewers


class GlobalCounts:
    """The other regions' viewer counts of a stream, as this gateway last heard them."""

    def __init__(self, directory: PresenceDirectory, regions: Iterable[str],
                 book: CountBook | None = None) -> None:
        self.directory = directory
        self.regions = tuple(regions)
        self.book = book or CountBook()

    async def counts(self, stream: str) -> dict[str, int]:
        """Each other region's viewers of ``stream``; a region neither answering now nor
        heard from within `STALE_AFTER_S` is left out. Never raises."""
        return (await self.counts_of([stream]))[stream]

    async def counts_of(self, streams: Sequence[str]) -> dict[str, dict[str, int]]:
        """`counts` of each of ``streams``, with at most one question per region."""
        per_region = await asyncio.gather(*(self.directory.viewers_of(streams, r)
                                             for r in self.regions))
        out: dict[str, dict[str, int]] = {stream: {} for stream in streams}
        for region, answers in zip(self.regions, per_region, strict=True):
            for stream in streams:
                answer = answers.get(stream)
                if answer is not None and answer.viewers is not None:
                    self.book.put(stream, region, answer.viewers)
                known = self.book.get(stream, region)
                if known is not None:
                    out[stream][region] = known
        return out
