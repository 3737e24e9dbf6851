"""Every metric a gateway process exports, registered in one place (prometheus-client).

A gateway builds one `Metrics` (its own registry, so that several gateways in one process,
as in a benchmark, never share counters) and hands each component the object; components
only increment. ``/metrics`` renders the registry. Labels are bounded: region, gateway,
destination region, a fixed kind; never a stream or a user id.
"""

from __future__ import annotations

from collections.abc import Callable

import prometheus_client
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import generate_latest

# The `_created` series double every counter for no use of ours.
prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]

CONTENT_TYPE = prometheus_client.CONTENT_TYPE_LATEST


class Metrics:
    """This gateway's metrics. ``region`` and ``gateway`` label every series."""

    def __init__(self, region: str, gateway: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        base = ("region", "gateway")
        ids = (region, gateway)
        r = self.registry

        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, base, registry=r)

        self._connections = Gauge("chorus_connections", "Open viewer connections.", base,
                                  registry=r)
        self._connections_ids = ids
        self.slow_consumers = counter(
            "chorus_slow_consumers", "Connections cut because their send queue overflowed."
        ).labels(*ids)
        self.entries_delivered = counter(
            "chorus_entries_delivered", "Live log entries offered to this gateway's sessions."
        ).labels(*ids)
        self.presence_queries = counter(
            "chorus_presence_queries", "Presence questions sent to other regions."
        ).labels(*ids)
        self.bootstraps = counter(
            "chorus_bootstraps", "Late-join bootstraps of a stream from other regions."
        ).labels(*ids)
        per_dest = (*base, "dest")
        self._forwarded = Counter("chorus_forwarded", "Comments stored by a destination "
                                  "region's log.", per_dest, registry=r)
        self._skipped = Counter("chorus_forward_skipped_no_viewers", "Comments not forwarded: "
                                "the destination had no viewers of the stream.", per_dest,
                                registry=r)
        self._forward_failures = Counter("chorus_forward_failures", "Outbox batches that a "
                                         "destination did not take (retried).", per_dest,
                                         registry=r)
        self.archive_written = counter(
            "chorus_archive_written", "Comments this gateway wrote to the archive.").labels(*ids)
        self.archive_failures = counter(
            "chorus_archive_failures", "Archive writes that failed (retried).").labels(*ids)
        self.archive_bad = counter(
            "chorus_archive_bad", "Log messages that were not comments (dropped).").labels(*ids)
        self._hub_rejected = Counter("chorus_hub_messages_rejected", "Hub messages that could "
                                     "not be decoded, by kind (logged, never read as an "
                                     "answer).", (*base, "kind"), registry=r)
        self._ids = ids

    def track_connections(self, count: Callable[[], int]) -> None:
        """The connections gauge reads ``count()`` at each scrape."""
        self._connections.labels(*self._connections_ids).set_function(count)

    def forwarded(self, dest: str, n: int = 1) -> None:
        self._forwarded.labels(*self._ids, dest).inc(n)

    def skipped_no_viewers(self, dest: str, n: int = 1) -> None:
        self._skipped.labels(*self._ids, dest).inc(n)

    def forward_failed(self, dest: str) -> None:
        self._forward_failures.labels(*self._ids, dest).inc()

    def declare_destinations(self, dests: tuple[str, ...]) -> None:
        """Makes every destination's series exist at zero from the start."""
        for dest in dests:
            for family in (self._forwarded, self._skipped, self._forward_failures):
                family.labels(*self._ids, dest)

    def hub_rejected(self, kind: str) -> None:
        self._hub_rejected.labels(*self._ids, kind).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
