"""The ops dashboard's pure pieces (chorus/cluster/ops.py): NATS durations, stream rates,
the busiest streams."""

from __future__ import annotations

import pytest

from chorus.cluster.ops import StreamRates, busiest, go_duration_ms


@pytest.mark.parametrize(("text", "ms"), [("21.203515ms", 21.203515), ("15µs", 0.015),
                                          ("1.5s", 1500.0), ("1m2s", 62_000.0),
                                          ("800ns", 0.0008), ("0s", 0.0)])
def test_go_durations(text: str, ms: float) -> None:
    assert go_duration_ms(text) == pytest.approx(ms)


@pytest.mark.parametrize("text", ["", "ms", "12", "1.5 s", "-3ms", "3msx"])
def test_not_go_durations(text: str) -> None:
    assert go_duration_ms(text) is None


def test_rates_over_the_window() -> None:
    rates = StreamRates(window_s=5.0)
    assert rates.observe("us-east", {"a": 10}, now=100.0) == {}
    assert rates.observe("us-east", {"a": 12, "b": 1}, now=101.0) == {"a": 2.0}
    assert rates.observe("us-east", {"a": 20, "b": 3}, now=102.0) == {"a": 5.0}
    # Past the window the oldest readings go: the rate is over the last five seconds.
    for t, n in ((103.0, 20), (104.0, 20), (105.0, 20), (106.0, 30), (107.0, 30)):
        last = rates.observe("us-east", {"a": n}, now=t)
    assert last == {"a": pytest.approx(10 / 5)}


def test_a_wiped_log_gives_no_rate_and_regions_are_apart() -> None:
    rates = StreamRates()
    rates.observe("us-east", {"a": 50}, now=1.0)
    rates.observe("eu-west", {"a": 1}, now=1.0)
    assert rates.observe("us-east", {"a": 3}, now=2.0) == {}
    assert rates.observe("eu-west", {"a": 4}, now=2.0) == {"a": 3.0}


def test_busiest_by_rate_then_comments() -> None:
    counts = {"us-east": {"quiet": 900, "hot": 100, "new": 5},
              "eu-west": {"hot": 100, "other": 2}}
    rates = {"us-east": {"hot": 40.0, "quiet": 0.0}, "eu-west": {"hot": 41.0, "other": 1.0}}
    assert busiest(rates, counts) == ["hot", "other", "quiet", "new"]
    assert busiest(rates, counts, limit=2) == ["hot", "other"]
    assert busiest({}, {}) == []
