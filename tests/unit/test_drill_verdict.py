"""A drill's verdict and reports from recorded values, and the faults of a deployment's
hooks file, without a cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chaos.catalogue import CATALOGUE, STORM
from chaos.experiment import experiment
from chaos.faults import DrillError, HookFaults
from chaos.report import DrillReport, per_second
from chaos.verdict import Arrival, Bounds, Post, ViewerEnd, judge, lateness, percentile


def cid(ms: int, region: str = "us-east") -> str:
    return f"{ms:012x}0000-{region}.0"


POSTS = [Post("a", "us-east", "acked", cid(1)), Post("b", "eu-west", "acked", cid(2, "eu-west")),
         Post("c", "us-east", "unknown")]


def end(name: str, timeline: list[tuple[str, str]], **kw: object) -> ViewerEnd:
    fields: dict[str, object] = {"home": "us-east", "region": "us-east", "gaps": 0,
                                 "failovers": 0, "failbacks": 0} | kw
    return ViewerEnd(name=name, timeline=tuple(timeline), **fields)  # type: ignore[arg-type]


def test_a_drill_passes_when_every_viewer_has_every_acknowledged_comment_once() -> None:
    full = [(cid(1), "a"), (cid(2, "eu-west"), "b")]
    verdict = judge(POSTS, [end("v1", full), end("v2", full)], [])
    assert verdict.passed, verdict.reasons
    assert (verdict.acknowledged, verdict.unknown, verdict.refused) == (2, 1, 0)


def test_missing_comments_are_listed_by_id() -> None:
    verdict = judge(POSTS, [end("v1", [(cid(1), "a")])], [])
    assert not verdict.passed and verdict.missing == [cid(2, "eu-west")]
    assert verdict.viewers[0].missing == [cid(2, "eu-west")]


def test_a_post_stored_twice_under_two_ids_is_rendered_twice() -> None:
    # The ambiguous-503 loss: the retry in another region stored "c" again under a new id.
    timeline = [(cid(1), "a"), (cid(2, "eu-west"), "b"), (cid(3), "c"), (cid(4, "eu-west"), "c")]
    verdict = judge(POSTS, [end("v1", timeline)], [])
    assert not verdict.passed and verdict.duplicates == 1


def test_gaps_fail_the_drill() -> None:
    full = [(cid(1), "a"), (cid(2, "eu-west"), "b")]
    assert not judge(POSTS, [end("v1", full, gaps=1)], []).passed


def test_failover_bound_over_the_dead_regions_viewers() -> None:
    full = [(cid(1), "a"), (cid(2, "eu-west"), "b")]
    fast = [end(f"v{i}", full, home="ap-south", region="us-east", failovers=1,
                failover_s=3.0) for i in range(4)]
    bounds = Bounds(viewers_fail_over_from="ap-south")
    assert judge(POSTS, fast, [], bounds).passed
    stuck = [*fast, end("v9", full, home="ap-south", region=None, failover_s=None)]
    assert not judge(POSTS, stuck, [], bounds).passed


def test_viewers_that_did_not_come_home_fail_a_gateway_drill() -> None:
    full = [(cid(1), "a"), (cid(2, "eu-west"), "b")]
    away = end("v1", full, home="eu-west", region="us-east")
    assert not judge(POSTS, [away], [], Bounds(viewers_stay_home=True)).passed


def test_lateness_and_disorder_by_origin() -> None:
    arrivals = [Arrival("v", 1.0, cid(1000), "us-east", 50.0),
                Arrival("v", 2.0, cid(9000), "us-east", 80.0),
                Arrival("v", 9.0, cid(2000), "us-east", 7000.0)]
    late, disorder = lateness(arrivals)
    assert late == {"us-east": 7000.0} and disorder == {"us-east": 7000.0}
    bounds = Bounds(max_late_ms=5000, max_disorder_ms=5000)
    verdict = judge([], [], arrivals, bounds)
    assert sum("out of its origin's order" in r for r in verdict.reasons) == 1


def test_percentile_nearest_rank() -> None:
    assert percentile([], 99) is None
    assert percentile([float(i) for i in range(1, 101)], 99) == 99.0


def test_the_report_writes_text_json_and_a_png(tmp_path: Path) -> None:
    full = [(cid(1), "a"), (cid(2, "eu-west"), "b")]
    verdict = judge(POSTS, [end("v1", full)], [])
    report = DrillReport(drill="redis-loss", region="us-east", seconds=8, stream="s",
                         target="local cluster", verdict=verdict, steady_before=[],
                         steady_after=[], recovered_s=1.5, converged_s=0.2,
                         windows=[(3.0, 11.0, "FLUSHALL")])
    assert "PASSED" in report.text()
    arrivals = [Arrival("v1", 3.5, cid(1), "us-east", 20.0)]
    paths = report.write(tmp_path, arrivals, {"v1": "us-east"})
    doc = json.loads(paths[0].read_text())
    assert doc["passed"] and doc["verdict"]["acknowledged"] == 2
    assert paths[1].read_bytes()[:4] == b"\x89PNG"
    assert per_second(arrivals, {"v1": "us-east"}) == {"us-east": {3: [20.0]}}


def test_every_drill_is_a_chaos_toolkit_experiment() -> None:
    for name in (*CATALOGUE, STORM):
        doc = experiment(name, region="ap-south", hooks="hooks.yaml")
        assert doc["steady-state-hypothesis"]["probes"]
        action = doc["method"][0]["provider"]
        assert action["type"] == "process" and name in action["arguments"]
        assert "--hooks" in action["arguments"]


def test_a_hooks_file_names_only_known_hooks(tmp_path: Path) -> None:
    good = tmp_path / "hooks.yaml"
    good.write_text("hooks:\n  kill: 'true {part}'\n  start: 'true'\n")
    faults = HookFaults.load(good)
    assert faults.missing({"kill", "start", "freeze"}) == ["freeze"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("hooks:\n  reboot: 'true'\n")
    with pytest.raises(DrillError, match="unknown hooks"):
        HookFaults.load(bad)


async def test_hooks_run_with_their_values_quoted(tmp_path: Path) -> None:
    log = tmp_path / "log"
    faults = HookFaults({"kill": f"echo kill {{part}} in {{region}} >> {log}",
                         "parts": "printf 'r/nats\\nr/gateway-0\\n'",
                         "slow_link": f"echo {{latency_ms}} >> {log}",
                         "freeze": "exit 3"})
    await faults.kill("us-east/redis; rm -rf /")
    await faults.link("us-east", latency_ms=300)
    assert log.read_text().splitlines() == ["kill us-east/redis; rm -rf / in us-east", "300"]
    assert await faults.parts("r") == ["r/nats", "r/gateway-0"]
    with pytest.raises(DrillError, match="exited 3"):
        await faults.freeze("us-east/nats")
    with pytest.raises(DrillError, match="no `thaw`"):
        await faults.thaw("us-east/nats")


def test_frames_the_sdk_could_not_read_fail_the_drill() -> None:
    # A skipped frame may have carried comments: the server and the SDK disagree.
    full = [(cid(1), "a"), (cid(2, "eu-west"), "b")]
    verdict = judge(POSTS, [end("v1", full, malformed=3)], [])
    assert not verdict.passed and verdict.viewers[0].malformed == 3


def test_workload_texts_are_distinct_to_the_moderation_classifier() -> None:
    # The classifier folds digits away and collapses doubled letters across spaces: "comment
    # 1" and "comment 2" were one flood, and so were "pass slow" and "pass low".
    from chorus.phrases import WORDS, phrase
    from region.classifier import fingerprint
    from region.moderation_prefilter import fold

    assert all(len(fingerprint(w)) == 4 for w in WORDS) and len(set(WORDS)) == 64
    for base in (0, 1 << 39, (1 << 40) - 1500):   # where workloads' seeds put them
        texts = [f"{phrase(base + n)}, says us-east" for n in range(3000)]
        assert len({fingerprint(t) for t in texts}) == 3000
        assert len({" ".join(fold(t)) for t in texts}) == 3000
        probes = [f"probe {phrase(base + (1 << 41) + n)} from us-east" for n in range(100)]
        assert len({fingerprint(t) for t in probes}) == 100


def test_every_viewer_posts_within_half_its_rate_limit() -> None:
    from chaos.workload import viewers_needed
    from chorus.config import load_config

    config = load_config(Path(__file__).parents[2] / "regions.yaml")  # 2/s per user, 3 regions
    assert viewers_needed(config, viewers_per_region=2, rate=12.0) == 4    # 1/s each
    assert viewers_needed(config, viewers_per_region=4, rate=30.0) == 10
    assert viewers_needed(config, viewers_per_region=4, rate=3.0) == 4
