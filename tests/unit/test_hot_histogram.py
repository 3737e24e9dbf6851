"""The delivery histogram is kept by hand (chorus/metrics.py `HotHistogram`, for its cost):
its exposition must be what prometheus-client's own Histogram writes."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.exposition import generate_latest

from chorus.metrics import PATH_BUCKETS_S, HotHistogram


def test_the_exposition_is_a_prometheus_histograms() -> None:
    mine, theirs = CollectorRegistry(), CollectorRegistry()
    hot = HotHistogram("chorus_delivery_seconds", "doc", ("region", "origin"),
                       buckets=PATH_BUCKETS_S, registry=mine)
    reference = Histogram("chorus_delivery_seconds", "doc", ("region", "origin"),
                          buckets=PATH_BUCKETS_S, registry=theirs)
    for origin in ("us-east", "eu-west"):
        hot.labels("us-east", origin)
        reference.labels("us-east", origin)
    # on bounds, between them, above the last one, and zero
    for seconds in (0.0, 0.0025, 0.003, 0.1, 0.1000001, 299.0, 300.0, 301.0, 5000.0):
        hot.labels("us-east", "us-east").observe(seconds)
        reference.labels("us-east", "us-east").observe(seconds)

    def lines(registry: CollectorRegistry) -> list[str]:
        return [line for line in generate_latest(registry).decode().splitlines()
                if not line.endswith("_created") and "_created{" not in line]

    assert lines(mine) == lines(theirs)
