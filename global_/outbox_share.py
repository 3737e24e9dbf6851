"""The region's outbox leases spread over its gateways.

A region forwards to each destination through 1 + P outboxes (the chained log's and one per
hot partition, global_/outbox.py), each under a lease of its own (chorus/lease.py). Every
gateway contends for every lease, so whichever gateway starts first takes them all, and one
core forwards everything the region sends (docs/design.md, "Where it stops"). A lease is
never taken from its holder: a gateway that holds more than its share gives one back
instead (`Share.shed`), steps back for `STEP_BACK_S` while the others (who contend about once
a second) take it, and contends again afterwards, so that a lease nobody else took is back
with it after that pause rather than left without a holder.

Its share is the region's leases divided by its gateways (`fair_share`, rounded up), the
gateways counted from the registry's heartbeats; when that count is unknown (0) a gateway
takes itself for the only one and gives nothing back. A lease is given back at most once per
`SHED_EVERY_S` per gateway: the others have time to take it before the next one goes, and a
gateway that counts gateways that do not contend (an older version during a rollout) gives a
lease back only that often, each time paying its destination a pause of `STEP_BACK_S` at
most. Giving a lease back is a clean stop of that outbox's worker, the handover a gateway's
restart makes, done only when that outbox has had no batch for `SHED_IDLE_S`
(global_/outbox.py): a destination's backlog, or a flood, is forwarded where it is, without
the pause of a handover, and the leases spread while the region is quiet (before a hot
stream's flood, its partitions' outboxes are idle and spread).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Protocol

SHED_CHECK_S = 1.0   # how often a holder compares what its gateway holds with its share
SHED_EVERY_S = 3.0   # a gateway gives back at most one lease per this long
STEP_BACK_S = 3.0    # a lease given back is contended for again after this
SHED_IDLE_S = 10.0   # only a lease whose outbox had no batch for this long is given back


class Held(Protocol):
    """What the share reads of a lease (chorus/lease.py's `Lease`)."""

    @property
    def held(self) -> bool: ...


def fair_share(leases: int, gateways: int) -> int:
    """The most leases a gateway keeps when ``gateways`` share ``leases`` (0 gateways:
    unknown, counted as 1)."""
    return math.ceil(leases / max(1, gateways))


def over_share(held: int, leases: int, gateways: int) -> bool:
    """Whether a gateway holding ``held`` of ``leases`` holds more than its share."""
    return held > fair_share(leases, gateways)


def to_shed(leases: Sequence[Held], gateways: int) -> Held | None:
    """The lease a gateway gives back now, if it holds more than its share: the last one it
    holds (in the order of ``leases``, so that its outboxes agree on one)."""
    held = [lease for lease in leases if lease.held]
    if not held or not over_share(len(held), len(leases), gateways):
        return None
    return held[-1]


class Share:
    """One gateway's outbox leases (every one of the region's: every gateway runs them all).
    ``gateways``: how many gateways the region has now (0: unknown)."""

    def __init__(self, gateways: Callable[[], int],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.gateways = gateways
        self.clock = clock
        self.leases: list[Held] = []
        self._shed_at = -math.inf

    def add(self, lease: Held) -> None:
        self.leases.append(lease)

    def shed(self, lease: Held) -> bool:
        """Whether ``lease`` is the one to give back now (it is then counted as given)."""
        now = self.clock()
        if now - self._shed_at < SHED_EVERY_S:
            return False
        if to_shed(self.leases, self.gateways()) is not lease:
            return False
        self._shed_at = now
        return True
