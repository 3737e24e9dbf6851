"""A stream's tier: the hysteresis of regions.yaml's thresholds, the rate it follows, and how
regions agree on it (one leader applies the hysteresis, everyone else repeats it)."""

from __future__ import annotations

import pytest

from chorus.config import Tiers
from region.tiers import (
    Notice,
    RateMeter,
    Reading,
    StreamBuckets,
    Tier,
    TierBoard,
    decide,
    next_tier,
    stream_bucket,
    warm,
)

TIERS = Tiers(sampled_enter_viewers=100, sampled_exit_viewers=80,
              sampled_enter_rate_per_s=50.0, sampled_exit_rate_per_s=30.0,
              sampled_per_viewer_per_s=5, snapshot_enter_viewers=1000,
              snapshot_exit_viewers=800, hot_stream_rate_per_s=16000.0,
              hot_stream_burst=32000, hot_stream_shards=16)


def walk(readings: list[tuple[int, float]], start: Tier = "push") -> list[Tier]:
    tier = start
    out = []
    for viewers, rate in readings:
        tier = next_tier(tier, Reading(viewers, rate), TIERS)
        out.append(tier)
    return out


def test_a_stream_needs_both_many_viewers_and_many_comments_to_leave_push() -> None:
    assert walk([(10_000, 10.0)]) == ["push"]       # a huge audience, a few comments
    assert walk([(10, 10_000.0)]) == ["push"]       # a flood nobody watches
    assert walk([(100, 50.0)]) == ["sampled"]
    assert walk([(1000, 50.0)]) == ["snapshot"]     # straight to the top tier


def test_a_stream_hovering_at_a_threshold_does_not_flap() -> None:
    # Around the entry thresholds, inside the dead band: once in, it stays in.
    hovering = [(100, 50.0), (95, 45.0), (99, 49.0), (81, 31.0), (100, 50.0), (85, 35.0)]
    assert walk(hovering) == ["sampled"] * len(hovering)
    # ... and once out, it stays out until it crosses the entry threshold again.
    assert walk([(99, 49.0), (95, 45.0), (81, 31.0)], start="push") == ["push"] * 3


def test_a_stream_leaves_below_either_exit_threshold() -> None:
    assert walk([(100, 50.0), (79, 50.0)]) == ["sampled", "push"]
    assert walk([(100, 50.0), (100, 29.0)]) == ["sampled", "push"]
    assert walk([(1000, 50.0), (799, 50.0), (799, 50.0)]) == ["snapshot", "sampled",
                                                              "sampled"]
    assert walk([(1000, 50.0), (900, 50.0)]) == ["snapshot", "snapshot"]
    assert walk([(1000, 50.0), (1000, 20.0)]) == ["snapshot", "push"]


def test_only_warm_streams_take_part_in_the_agreement() -> None:
    assert not warm(14.0, "push", TIERS)
    assert warm(15.0, "push", TIERS)
    assert warm(0.0, "sampled", TIERS)  # it must be able to leave


def test_the_rate_is_an_average_of_whole_seconds() -> None:
    meter = RateMeter(window_s=2)
    for i in range(30):
        meter.observe(100.0 + i / 30)    # 30 in second 100
    for i in range(10):
        meter.observe(101.0 + i / 10)    # 10 in second 101
    assert meter.rate(101.5) == 15.0     # seconds 99 and 100; 101 is not over
    assert meter.rate(102.0) == 20.0     # seconds 100 and 101
    assert meter.rate(110.0) == 0.0


def notice(region: str, tier: Tier, stream: str = "s", viewers: int = 0) -> Notice:
    return Notice(region=region, stream=stream, tier=tier, viewers=viewers, rate_per_s=0)


def test_every_gateway_delivers_the_tier_of_the_smallest_region_heard_lately() -> None:
    board = TierBoard("eu-west", stale_after_s=2.0)
    assert board.tier("s", 0.0) == "push"                          # nobody announces it
    board.observe(notice("us-east", "sampled"), 0.0)
    assert board.tier("s", 1.0) == "sampled"
    board.observe(notice("ap-south", "push"), 1.0)                 # ap-south < us-east:
    assert board.tier("s", 1.5) == "push"                          # its word counts
    assert board.leader("s", 1.5, taking_part=True) == "ap-south"
    assert board.tier("s", 2.8) == "push"                          # us-east is stale now
    assert board.notice("s", 2.8) == notice("ap-south", "push")
    assert board.tier("s", 10.0) == "push"                         # everyone went quiet
    assert board.notice("s", 10.0) is None


def test_only_the_leader_applies_the_hysteresis() -> None:
    hot = Reading(viewers=500, rate_per_s=100.0)
    leader, follower = TierBoard("ap-south"), TierBoard("us-east")
    # The leader decides from what it holds; a follower repeats the leader's word.
    assert decide(leader, "s", hot, TIERS, 0.0) == "sampled"
    leader.observe(notice("ap-south", "sampled"), 0.0)
    follower.observe(notice("ap-south", "sampled"), 0.0)
    cold = Reading(viewers=0, rate_per_s=0.0)
    assert decide(follower, "s", cold, TIERS, 0.5) == "sampled"   # not its call
    # In the dead band the leader stays: two regions never settle on different tiers.
    band = Reading(viewers=90, rate_per_s=40.0)
    assert decide(leader, "s", band, TIERS, 0.5) == "sampled"
    assert decide(follower, "s", band, TIERS, 0.5) == "sampled"


def test_when_the_leader_goes_quiet_the_next_region_leads_from_where_it_was() -> None:
    board = TierBoard("us-east", stale_after_s=2.0)
    board.observe(notice("ap-south", "sampled"), 0.0)
    board.observe(notice("us-east", "sampled"), 2.5)   # its own, every round
    band = Reading(viewers=90, rate_per_s=40.0)
    # ap-south (the leader) is cut off: us-east leads, from the tier it had adopted.
    assert board.leader("s", 3.0, taking_part=True) == "us-east"
    assert decide(board, "s", band, TIERS, 3.0) == "sampled"
    board.observe(notice("us-east", "push"), 3.0)
    assert board.tier("s", 3.0) == "push"
    # When ap-south is heard again, its word is the stream's tier again.
    board.observe(notice("ap-south", "sampled"), 4.0)
    assert board.tier("s", 4.0) == "sampled"


def test_the_board_describes_a_stream_for_its_api_and_forgets_the_stalest() -> None:
    board = TierBoard("us-east", max_streams=4)
    board.observe(notice("us-east", "sampled", viewers=123), 0.0)
    assert board.describe("s", 0.0) == {
        "tier": "sampled", "tier_reading": {"viewers": 123, "rate_per_s": 0,
                                            "leader": "us-east"}}
    assert board.describe("other", 0.0) == {"tier": "push"}
    for i in range(10):
        board.observe(notice("us-east", "sampled", stream=f"x{i}"), 1.0 + i)
    assert len(board._notices) <= 4
    assert "x9" in board.hot(10.0)


def test_a_hot_streams_bucket_is_scaled_and_spread_over_shards() -> None:
    assert stream_bucket("s", "push", TIERS) is None   # the stream's own, as before tiers
    picked = [stream_bucket("s", "sampled", TIERS, pick=lambda n, i=i: i % n)
              for i in range(32)]
    assert {b.key for b in picked if b} == {f"chorus:rl:s:s:{i}" for i in range(16)}
    bucket = picked[0]
    assert bucket is not None
    assert bucket.rate_per_s * 16 == TIERS.hot_stream_rate_per_s
    assert bucket.burst * 16 == TIERS.hot_stream_burst


@pytest.mark.parametrize(("tier", "hot"), [("push", False), ("sampled", True),
                                           ("snapshot", True)])
def test_the_ingest_picks_the_bucket_of_the_agreed_tier(tier: Tier, hot: bool) -> None:
    board = TierBoard("us-east")
    buckets = StreamBuckets(board, TIERS, clock=lambda: 0.0)
    assert buckets.bucket("s") is None
    board.observe(notice("us-east", tier), 0.0)
    assert (buckets.bucket("s") is not None) is hot
