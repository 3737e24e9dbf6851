"""The ops dashboard's pure pieces (chorus/cluster/ops.py): NATS durations, stream rates,
the busiest streams, the drills it offers and how it runs one."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from chaos.catalogue import CATALOGUE, STORM
from chorus.cluster.ops import (
    PROGRESS_LINES,
    DrillRun,
    OpsDashboard,
    StreamRates,
    busiest,
    drill_names,
    go_duration_ms,
)
from chorus.config import Config, load_config

ROOT = Path(__file__).resolve().parents[2]


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


def test_every_drill_of_the_catalogue_is_offered() -> None:
    assert set(drill_names()) == {*CATALOGUE, STORM}
    # cassandra-down kills a Cassandra node: only a cluster that runs them offers it.
    assert set(drill_names(with_cassandra=False)) == (
        {n for n, d in CATALOGUE.items() if not d.needs_cassandra} | {STORM})
    assert "cassandra-down" not in drill_names(with_cassandra=False)


def test_a_running_drill_keeps_its_latest_progress_lines() -> None:
    run = DrillRun(drill="region-down", region="ap-south", seconds=8.0, started_at=0.0)
    for i in range(PROGRESS_LINES + 5):
        run.note(f"line {i}")
    assert run.progress == [f"line {i}" for i in range(5, PROGRESS_LINES + 5)]


@dataclass
class _Cluster:
    config: Config
    with_cassandra: bool

    def set_link(self, region_name: str, **change: Any) -> None:
        raise AssertionError("no link is changed here")


@dataclass
class _Report:
    passed: bool

    def text(self) -> str:
        return "the summary"


@dataclass
class _Runner:
    calls: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, config: Config, **kwargs: Any) -> _Report:
        self.calls.append(kwargs)
        kwargs["progress"]("t=  1.0 s  posted 4 (acked 4)")
        return _Report(passed=kwargs["drill"] != "nats-freeze")


async def test_a_drill_runs_with_what_it_needs_and_reports_progress_then_its_verdict() -> None:
    runner = _Runner()
    dashboard = OpsDashboard(_Cluster(load_config(ROOT / "regions.yaml"), True),
                             drill_runner=runner)
    run = DrillRun(drill="cassandra-down", region="eu-west", seconds=10.0, started_at=0.0)
    await dashboard._drill(run)
    assert runner.calls[0]["has_cassandra"] is True
    assert (run.state, run.report, run.progress) == ("passed", "the summary",
                                                     ["t=  1.0 s  posted 4 (acked 4)"])
    failed = DrillRun(drill="nats-freeze", region="eu-west", seconds=5.0, started_at=0.0)
    await dashboard._drill(failed)
    assert "has_cassandra" not in runner.calls[1] and failed.state == "failed"
