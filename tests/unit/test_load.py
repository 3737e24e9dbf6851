"""`chorus load`'s pure parts: bounds, profiles, the transport mix, targets, accounting."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from chorus.config import load_config
from chorus.load import plan, stats
from chorus.load.plan import LoadError, LoadSpec

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("change", [
    {"viewers": plan.MAX_VIEWERS_PER_REGION + 1}, {"posters": 0},
    {"rate": plan.MAX_RATE_PER_REGION * 2}, {"duration_s": plan.MAX_DURATION_S + 1},
    {"streams": 0}, {"profile": "tsunami"}])
def test_a_run_out_of_bounds_is_refused(change: dict[str, object]) -> None:
    with pytest.raises(LoadError):
        LoadSpec(**change).check()  # type: ignore[arg-type]


def test_the_mix_is_normalised_and_followed_by_any_prefix_of_viewers() -> None:
    mix = plan.parse_mix("ws=6,sse=3,poll=1")
    assert dict(mix) == pytest.approx({"ws": 0.6, "sse": 0.3, "poll": 0.1})
    first = [plan.transport_of(i, mix) for i in range(20)]
    assert 10 <= first.count("ws") <= 14 and first.count("poll") >= 1
    with pytest.raises(LoadError):
        plan.parse_mix("ws=1,carrier-pigeon=1")


def test_profiles_over_time() -> None:
    steady = LoadSpec(viewers=10, rate=8, streams=4, duration_s=30)
    assert sum(plan.viewers_at(steady, 0).values()) == 10
    assert sum(plan.rates_at(steady, 29).values()) == pytest.approx(8)
    ramp = LoadSpec(profile="ramp", viewers=100, rate=10, duration_s=100)
    assert sum(plan.viewers_at(ramp, 0).values()) == 10
    assert sum(plan.viewers_at(ramp, 100).values()) == 100
    spike = LoadSpec(profile="spike", viewers=20, rate=10, streams=2, duration_s=30)
    assert plan.viewers_at(spike, 5) == {0: 10, 1: 10}
    assert plan.viewers_at(spike, 15) == {0: 30, 1: 10}  # the viral stream
    assert plan.rates_at(spike, 15)[0] == pytest.approx(5 + plan.SPIKE_FACTOR * 10)
    assert plan.rates_at(spike, 25)[0] == pytest.approx(5)
    churn = LoadSpec(profile="churn", duration_s=50)
    lives = [plan.lifetime_s(churn, random.Random(i)) for i in range(200)]
    assert all(life is not None and life >= 2 for life in lives)
    assert plan.lifetime_s(steady, random.Random(1)) is None


def test_enough_users_post_that_none_is_rate_limited() -> None:
    spec = LoadSpec(profile="spike", rate=10, posters=2)
    users = plan.users_needed(spec, user_rate_per_s=2.0)
    assert 10 * (1 + plan.SPIKE_FACTOR) / users <= 0.8 * 2.0


def test_only_the_regions_yaml_gateways_on_loopback_are_targets() -> None:
    config = load_config(ROOT / "regions.yaml")
    allowed = plan.allowed_targets(config)
    for url in (*config.region("eu-west").gateway_urls, *config.region("eu-west").operator_urls):
        plan.check_target(url, allowed, allow_remote=False)
    for url in ("http://127.0.0.1:6301", "http://10.0.0.8:8101", "http://example.com:8101",
                "http://127.0.0.1:8103"):
        with pytest.raises(LoadError):
            plan.check_target(url, allowed, allow_remote=False)
    remote = frozenset({("gw.example.net", 443)})
    with pytest.raises(LoadError, match="--allow-remote"):
        plan.check_target("https://gw.example.net", remote, allow_remote=False)
    plan.check_target("https://gw.example.net", remote, allow_remote=True)


def test_percentiles_by_nearest_rank() -> None:
    values = [float(v) for v in range(1, 1001)]
    assert stats.percentile(values, 50) == 500
    assert stats.percentile(values, 99.9) == 999
    assert math.isnan(stats.percentile([], 50))


def test_loss_and_duplicates_from_timelines() -> None:
    posts = [stats.Post(n=i, region="us-east", stream=0, began=float(i), acked=i + 0.1)
             for i in range(10)]
    posts.append(stats.Post(n=10, region="us-east", stream=0, began=10.0))  # refused
    stayed = stats.Timeline(region="eu-west", stream=0, transport="ws", joined=2.5)
    for n in (3, 4, 5, 5, 6, 7, 8):   # 9 is missing, 5 came twice, 0-2 were before it joined
        stayed.receive(n)
    left = stats.Timeline(region="eu-west", stream=0, transport="sse", joined=0.0, left=6.0)
    for n in (0, 1, 2):  # owes what was acknowledged by 6 - settle (3 s): 0, 1, 2
        left.receive(n)
    other = stats.Timeline(region="us-east", stream=1, transport="poll", joined=0.0)
    acc = stats.account([stayed, left, other], posts, settle_s=3.0)
    assert acc.expected == 7 + 3
    assert acc.missing == 1 and acc.duplicates == 1 and acc.viewers_with_loss == 1
    assert acc.missing_by_transport == {"ws": 1}
    assert acc.missing_by_path == {("us-east", "eu-west"): 1}
    assert acc.by_region == {"eu-west": stats.RegionLoss(expected=10, missing=1,
                                                          viewers_with_loss=1),
                             "us-east": stats.RegionLoss()}


def test_missing_is_only_what_a_viewer_watched_and_was_not_told_it_lacks() -> None:
    # Posts every second, each acknowledged 0.2 s after it began.
    posts = [stats.Post(n=i, region="eu-west", stream=0, began=float(i), acked=i + 0.2)
             for i in range(20)]
    viewer = stats.Timeline(region="us-east", stream=0, transport="ws", joined=4.5, left=15.0)
    # Before its hello (0-4), acknowledged in the last settle_s before it left (12-14), after
    # it left (15-19): none owed. From 5 to 11 it watched; a gap it was told of covers 8-9.
    viewer.gap(7.5, 9.5)
    for n in (5, 6, 7, 11):
        viewer.receive(n)
    assert stats.expected(viewer, posts, settle_s=3.0) == {5, 6, 7, 10, 11}
    assert stats.gapped(viewer, posts, settle_s=3.0) == {8, 9}
    acc = stats.account([viewer], posts, settle_s=3.0)
    assert (acc.expected, acc.missing, acc.gapped) == (5, 1, 2)   # 10: watched, not told
    assert acc.by_region["us-east"] == stats.RegionLoss(expected=5, missing=1, gapped=2,
                                                        viewers_with_loss=1)
    # A post received inside a gap was delivered after all: owed and not missing.
    viewer.receive(8)
    assert 8 in stats.expected(viewer, posts, settle_s=3.0)
    assert stats.account([viewer], posts, settle_s=3.0).missing == 1


def test_latencies_are_bounded_and_summarised_per_pair() -> None:
    lat = stats.Latencies(max_samples=3)
    for i in range(5):
        lat.add("us-east", "eu-west", i, 0.01 * (i + 1))
    assert lat.kept == 3 and lat.dropped == 2
    row = lat.summary()[("us-east", "eu-west")]
    assert row["n"] == 3 and row["p50"] == pytest.approx(0.02) and row["max"] == pytest.approx(0.03)


def test_a_viewer_leaves_when_it_stopped_watching() -> None:
    # Left when told, on time.
    assert stats.left_at(20.0, run_ended=None, planned=20.0, gave_up_after=None) == 20.0
    # Told late (the run was starved): it left when its life was planned to end.
    assert stats.left_at(24.0, run_ended=None, planned=20.0, gave_up_after=None) == 20.0
    # Gave up reconnecting: it stopped watching when its last connection ended.
    assert stats.left_at(24.0, run_ended=None, planned=30.0, gave_up_after=19.5) == 19.5
    # Still there when the run ended (the run's end is its leaving), or never connected.
    assert stats.left_at(40.0, run_ended=35.0, planned=None, gave_up_after=None) == 35.0
    assert stats.left_at(40.0, run_ended=None, planned=None, gave_up_after=math.inf) == 40.0
