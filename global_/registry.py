"""Region registry: every region's health, as its gateways announce it over the hub.

Each gateway publishes a heartbeat on ``chorus.registry.<region>`` every
``limits.health_interval_s``; every gateway of every region listens to ``chorus.registry.*``.
A region is healthy while one of its gateways has announced itself healthy within
``STALE_AFTER`` heartbeat intervals. The bookkeeping (`RegistryState`) is pure.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

SUBJECT_PREFIX = "chorus.registry"
STALE_AFTER = 3  # heartbeat intervals without news before a region counts as down


def subject(region: str) -> str:
    return f"{SUBJECT_PREFIX}.{region}"


@dataclass(frozen=True)
class Heartbeat:
    """One gateway's announcement. ``ts_ms`` is the sender's wall clock (ms since epoch)."""

    region: str
    gateway: str
    healthy: bool
    ts_ms: int
    kind: str = "heartbeat"

    def encode(self) -> bytes:
        return json.dumps({"region": self.region, "gateway": self.gateway,
                           "healthy": self.healthy, "ts_ms": self.ts_ms}).encode()

    @classmethod
    def decode(cls, data: bytes) -> Heartbeat:
        """Raises ValueError on anything that is not a heartbeat."""
        doc: Any = json.loads(data)
        if not isinstance(doc, dict):
            raise ValueError("heartbeat is not an object")
        try:
            return cls(region=str(doc["region"]), gateway=str(doc["gateway"]),
                       healthy=bool(doc["healthy"]), ts_ms=int(doc["ts_ms"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"bad heartbeat: {exc}") from None


@dataclass(frozen=True)
class RegionHealth:
    name: str
    healthy: bool
    last_seen_s: float | None  # seconds since the last heartbeat; None: never heard of
    gateways_healthy: int


@dataclass
class RegistryState:
    """Last heartbeat per (region, gateway), by the receiver's monotonic clock (seconds)."""

    interval_s: float
    seen: dict[tuple[str, str], tuple[float, bool]] = field(default_factory=dict)

    def observe(self, beat: Heartbeat, now: float) -> None:
        self.seen[(beat.region, beat.gateway)] = (now, beat.healthy)

    def urls(self, region: str, now: float) -> tuple[str, ...]:
        """The URLs the region's gateways announced lately (a deployed region announces its
        load balancer's), sorted; empty when none did."""
        fresh_after = now - STALE_AFTER * self.interval_s
        return tuple(sorted({gateway for (name, gateway), (at, _) in self.seen.items()
                             if name == region and at >= fresh_after}))

    def health(self, region: str, now: float) -> RegionHealth:
        fresh_after = now - STALE_AFTER * self.interval_s
        last: float | None = None
        healthy = 0
        for (name, _gateway), (at, ok) in self.seen.items():
            if name != region:
                continue
            last = at if last is None else max(last, at)
            if ok and at >= fresh_after:
                healthy += 1
        return RegionHealth(name=region, healthy=healthy > 0,
                            last_seen_s=None if last is None else round(now - last, 3),
                            gateways_healthy=healthy)
