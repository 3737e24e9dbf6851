"""Presence: how many viewers of a stream a region has right now.

Written only in the viewer's own region (write locally); read by any region that posts to the
stream (read globally, later over the hub). Each gateway reports its own per-stream counts
every ``presence_heartbeat_s``; a report expires after ``presence_ttl_s``, so a crashed
gateway's viewers leave presence within that time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from chorus.errors import Unavailable


class PresenceUnavailable(Unavailable):
    """The presence index did not answer a read or a write."""


class PresenceUnknown(PresenceUnavailable):
    """The presence index was lost (flushed, or restarted empty) and is being rebuilt from
    the gateways' next reports: until every gateway has reported again its counts are too
    low, so it answers no count at all. Whoever decides whether a region has viewers counts
    it as having them (DESIGN G1: fail open)."""


class Presence(Protocol):
    async def report(self, gateway: str, counts: Mapping[str, int], gone: set[str]) -> None:
        """This gateway's viewer counts; ``gone`` lists streams it no longer has viewers of."""
        ...

    async def count(self, stream: str) -> int:
        """Viewers of ``stream`` in this region, over every live gateway. Raises
        `PresenceUnknown` while the index is being rebuilt after a loss."""
        ...

    async def counts(self, streams: Sequence[str]) -> dict[str, int]:
        """`count` of each of ``streams``, in one read of the index (a batched presence
        question from another region). Raises as `count` does."""
        ...

    async def withdraw(self, gateway: str, streams: set[str]) -> None:
        """A gateway shutting down removes its reports at once."""
        ...
