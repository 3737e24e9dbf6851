"""`chorus load` against the real cluster: every transport, every region pair measured,
timelines accounted, a report with its plots."""

from __future__ import annotations

from pathlib import Path

import pytest

from chorus.cluster.local import LocalCluster
from chorus.load.plan import LoadSpec
from chorus.load.run import Run, text, write_report

pytestmark = pytest.mark.integration


async def test_a_short_run_measures_every_region_pair(cluster: LocalCluster,
                                                       tmp_path: Path) -> None:
    spec = LoadSpec(profile="steady", viewers=6, posters=2, rate=3.0, duration_s=8.0,
                    streams=2, mix=(("ws", 0.5), ("sse", 0.3), ("poll", 0.2)), drain_s=10.0)
    run = Run(cluster.config, spec, seed=7,
              pids=lambda: {n: c.pid for n, c in cluster.children.items()})
    report = await run.run()
    regions = cluster.config.region_names
    assert set(report["latency_ms"]) == {f"{o} -> {r}" for o in regions for r in regions}
    assert report["posts"]["acked"] >= 0.8 * 3.0 * 8.0 * len(regions)
    # Every viewer's timeline is accounted; a loss is reported (and fails `chorus load`),
    # a duplicate never happens.
    assert report["loss"]["expected"] > 0
    assert report["loss"]["duplicates"] == 0
    assert report["viewers"]["opened"] == 6 * len(regions)
    assert set(report["server"]) >= set(regions)
    files = write_report(report, run, tmp_path)
    assert all(f.stat().st_size > 0 for f in files)
    assert {f.name for f in files} >= {"report.json", "latency.png", "server.png"}


async def test_a_churn_run_loses_nothing(cluster: LocalCluster) -> None:
    # Viewers living 2 s and more join and leave all along, in every region, over every
    # transport, and posts come to the last second of the run. More viewers per gateway than
    # one user may open connections (limits.max_connections_per_user): each is a user of its
    # own, as in a real audience, so none is refused and nothing is resumed.
    config = cluster.config
    gateways = min(config.region(r).gateways for r in config.region_names)
    viewers = gateways * config.limits.max_connections_per_user + 4   # 24 on regions.yaml
    spec = LoadSpec(profile="churn", viewers=viewers, posters=2, rate=3.0, duration_s=12.0,
                    streams=3, mix=(("ws", 0.5), ("sse", 0.3), ("poll", 0.2)), drain_s=10.0)
    run = Run(config, spec, seed=11)
    report = await run.run()
    loss = report["loss"]
    regions = config.region_names
    assert report["viewers"]["opened"] > viewers * len(regions)   # they came and went
    assert report["viewers"]["cuts"] == {} and report["viewers"]["reconnects"] == 0
    # A refusal is no loss (and is reported by status); most posts are acknowledged.
    assert report["posts"]["acked"] >= 0.8 * report["posts"]["sent"], report["posts"]
    assert set(loss["by_region"]) == set(regions)
    assert all(row["expected"] > 0 for row in loss["by_region"].values())
    assert (loss["missing"], loss["duplicates"]) == (0, 0), loss
    assert loss["gapped"] == 0 and loss["gaps_said"] == 0   # nothing here may cause a gap
    assert all(f"viewers in {r}: " in text(report) for r in regions)
