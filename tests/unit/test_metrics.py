"""The metrics registry: every series named once, labels bounded, latencies observed."""

from __future__ import annotations

import math
import time

from chorus.metrics import OTHER, Metrics
from chorus.model import Comment

REGIONS = ("us-east", "eu-west", "ap-south")


def metrics() -> Metrics:
    m = Metrics("us-east", "0")
    m.declare_regions(REGIONS)
    m.declare_destinations(("eu-west", "ap-south"))
    return m


def sample(m: Metrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, {"region": "us-east", "gateway": "0", **labels})


def comment(region: str, age_ms: int) -> Comment:
    return Comment(id=f"{region}-1", stream="s", region=region, user="u", name="u",
                   text="hi", ts=int(time.time() * 1000) - age_ms)


def test_written_comments_are_observed_per_origin_region() -> None:
    m = metrics()
    m.comments_written([comment("us-east", 20), comment("eu-west", 120),
                        comment("eu-west", 130)])
    assert sample(m, "chorus_delivery_seconds_count", origin="us-east") == 1
    assert sample(m, "chorus_delivery_seconds_count", origin="eu-west") == 2
    # 20 ms old: inside the 25 ms bucket, outside the 10 ms one.
    assert sample(m, "chorus_delivery_seconds_bucket", origin="us-east", le="0.025") == 1
    assert sample(m, "chorus_delivery_seconds_bucket", origin="us-east", le="0.01") == 0


def test_a_region_not_in_the_config_is_counted_as_other() -> None:
    m = metrics()
    for i in range(50):
        m.comments_written([comment(f"stray-{i}", 5)])
        m.forward_latency(f"stray-{i}", 0.1)
        m.outbox_depth(f"stray-{i}", 3)
    assert sample(m, "chorus_delivery_seconds_count", origin=OTHER) == 50
    assert sample(m, "chorus_forward_seconds_count", dest=OTHER) == 50
    text = m.render().decode()
    assert "stray" not in text


def test_a_clock_behind_the_origins_counts_as_no_delay() -> None:
    m = metrics()
    m.comments_written([comment("eu-west", -5000)])
    assert sample(m, "chorus_delivery_seconds_sum", origin="eu-west") == 0


def test_every_series_exists_from_the_start() -> None:
    m = metrics()
    for name, labels in (
            ("chorus_slow_consumers_total", {}), ("chorus_entries_delivered_total", {}),
            ("chorus_presence_queries_total", {}), ("chorus_bootstraps_total", {}),
            ("chorus_forwarded_total", {"dest": "eu-west"}),
            ("chorus_forward_skipped_no_viewers_total", {"dest": "eu-west"}),
            ("chorus_forward_failures_total", {"dest": "ap-south"}),
            ("chorus_archive_written_total", {}), ("chorus_archive_failures_total", {}),
            ("chorus_archive_bad_total", {}), ("chorus_post_stored_seconds_count", {}),
            ("chorus_delivery_seconds_count", {"origin": "ap-south"}),
            ("chorus_forward_seconds_count", {"dest": "eu-west"}),
            ("chorus_presence_query_seconds_count", {"dest": "ap-south"}),
            ("chorus_presence_unknown_total", {"dest": "ap-south"}),
            ("chorus_history_page_seconds_count", {"source": "archive"}),
            ("chorus_archive_write_seconds_count", {}),
            ("chorus_connections_opened_total", {"transport": "sse"})):
        assert sample(m, name, **labels) == 0, name
    # The process's own CPU and memory (no gateway labels: Prometheus adds the instance).
    assert m.registry.get_sample_value("process_resident_memory_bytes") is not None


def test_unknown_backlogs_are_nan_and_known_ones_numbers() -> None:
    m = metrics()
    m.outbox_depth("eu-west", None)
    m.outbox_depth("ap-south", 12)
    m.archive_lag(None)
    depth = sample(m, "chorus_outbox_depth", dest="eu-west")
    assert depth is not None and math.isnan(depth)
    assert sample(m, "chorus_outbox_depth", dest="ap-south") == 12
    lag = sample(m, "chorus_archive_lag")
    assert lag is not None and math.isnan(lag)


def test_objectives_and_peer_health_come_from_what_the_gateway_is_given() -> None:
    m = metrics()
    m.set_objectives({"us-east": 0.05, "eu-west": 0.09}, outbox_alert_depth=10000)
    healthy = {"us-east": (True, 2), "eu-west": (False, 0), "ap-south": (True, 1)}
    m.track_regions(REGIONS, lambda peer: healthy[peer])
    assert sample(m, "chorus_delivery_objective_seconds", origin="eu-west") == 0.09
    assert sample(m, "chorus_outbox_alert_depth") == 10000
    assert sample(m, "chorus_region_healthy", peer="eu-west") == 0
    assert sample(m, "chorus_region_gateways_healthy", peer="us-east") == 2
    healthy["eu-west"] = (True, 2)  # read at each scrape
    assert sample(m, "chorus_region_healthy", peer="eu-west") == 1


def test_presence_questions_count_the_unanswered() -> None:
    m = metrics()
    m.presence_query("eu-west", 0.004, answered=True)
    m.presence_query("eu-west", 0.5, answered=False)
    assert sample(m, "chorus_presence_query_seconds_count", dest="eu-west") == 2
    assert sample(m, "chorus_presence_unanswered_total", dest="eu-west") == 1
    m.presence_query("eu-west", 0.004, answered=True, unknown=True)  # rebuilding there
    assert sample(m, "chorus_presence_query_seconds_count", dest="eu-west") == 3
    assert sample(m, "chorus_presence_unanswered_total", dest="eu-west") == 1
    assert sample(m, "chorus_presence_unknown_total", dest="eu-west") == 1


def test_errors_are_counted_by_code() -> None:
    m = metrics()
    m.error("rate_limited")
    m.error("rate_limited")
    m.error("invalid")
    assert sample(m, "chorus_errors_total", code="rate_limited") == 2
    assert sample(m, "chorus_errors_total", code="invalid") == 1


def test_two_gateways_in_one_process_keep_their_own_counts() -> None:
    a, b = Metrics("us-east", "0"), Metrics("us-east", "1")
    a.post_stored(0.002)
    assert a.registry.get_sample_value(
        "chorus_post_stored_seconds_count", {"region": "us-east", "gateway": "0"}) == 1
    assert b.registry.get_sample_value(
        "chorus_post_stored_seconds_count", {"region": "us-east", "gateway": "1"}) == 0
