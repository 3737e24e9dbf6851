"""The chaos drills, run against the test cluster as an SRE runs them against theirs.

Each drill of the catalogue runs in its short form (CI; a few minutes in all), several times
where the loss it guards against was intermittent. The full forms are marked ``drill`` and
run alone: ``./dev test -m drill``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.catalogue import CATALOGUE, STORM
from chaos.drill import FULL, SHORT, run_all, run_drill
from chaos.faults import ClusterFaults, ControlFaults
from chorus.cluster import control
from chorus.cluster.health import wait_until
from chorus.cluster.local import LocalCluster
from chorus.toxiproxy import leaf_proxy_name

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

REGION = "ap-south"
# How many times each short drill runs: the losses these guard against did not happen on
# every run (issue 13: "four runs, four losses" for Redis, one in three for the gateway).
REPEAT = {"redis-loss": 2, "gateway-kill": 2, "nats-freeze": 1, "region-down": 1,
          "region-isolated": 1}
# Drills known to fail, with the reason (an expected failure that still runs: it checks
# nothing is lost or doubled). None now: link-flap held its order bound once one gateway of a
# region forwards to each destination (global_/outbox.py).
KNOWN: dict[str, str] = {}
SHORT_DRILLS = [pytest.param(name, run, id=f"{name}-{run}",
                             marks=[pytest.mark.xfail(reason=KNOWN[name], strict=False)]
                             if name in KNOWN else [])
                for name, spec in CATALOGUE.items() if not spec.needs_cassandra
                for run in range(REPEAT.get(name, 1))]


@pytest.mark.parametrize(("drill", "run"), SHORT_DRILLS)
async def test_short_drill(cluster: LocalCluster, tmp_path: Path, drill: str, run: int) -> None:
    report = await run_drill(cluster.config, ClusterFaults(cluster), drill=drill,
                             region=REGION, options=SHORT, out_dir=tmp_path)
    v = report.verdict
    assert v.acknowledged >= 20 and not v.missing and v.duplicates == 0 and v.gaps == 0, \
        report.text()
    assert report.passed, report.text()
    assert {c.home for c in v.viewers} == set(cluster.config.region_names)
    assert (tmp_path / f"{drill}.json").stat().st_size > 0
    assert (tmp_path / f"{drill}.png").stat().st_size > 0
    # Everything is back as regions.yaml says.
    state = cluster.toxiproxy.state(leaf_proxy_name(REGION))
    assert state.enabled and state.latency_ms == cluster.config.region(REGION).link.latency_ms
    assert all(c.alive for c in cluster.children.values())


async def test_short_reconnect_storm(cluster: LocalCluster, tmp_path: Path) -> None:
    report = await run_drill(cluster.config, ClusterFaults(cluster), drill=STORM,
                             region="eu-west", options=SHORT, out_dir=tmp_path)
    assert report.passed, report.text()
    assert report.extra["health checks failed"] == 0
    assert report.extra["peak connects per second"] > 0


@pytest.mark.cassandra
async def test_short_cassandra_down(archive_cluster: LocalCluster, tmp_path: Path) -> None:
    report = await run_drill(archive_cluster.config, ClusterFaults(archive_cluster),
                             drill="cassandra-down", region=REGION, options=SHORT,
                             has_cassandra=True, out_dir=tmp_path)
    assert report.passed, report.text()


async def test_drills_reach_a_chorus_up_through_its_control_socket(
        cluster: LocalCluster, tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    async with control.serving(cluster, path):
        faults = ControlFaults(cluster.config, path)
        parts = await faults.parts("eu-west")
        assert parts[-2:] == ["eu-west/gateway-0", "eu-west/gateway-1"]
        assert {"eu-west/nats", "eu-west/redis"} <= set(parts)
        await faults.kill("eu-west/gateway-1")
        assert not cluster.child("eu-west/gateway-1").alive
        await faults.start("eu-west/gateway-1")
        child = cluster.child("eu-west/gateway-1")
        assert child.alive
        url = cluster.config.region("eu-west").gateway_urls[1]

        async def healthy() -> bool:
            import aiohttp

            from chorus.cluster.health import http_json

            async with aiohttp.ClientSession() as http:
                body = await http_json(http, f"{url}/healthz")
            return body is not None and body.get("status") == "ok"
        await wait_until(healthy, what="eu-west/gateway-1 back", timeout_s=30,
                         children=[child])


@pytest.mark.drill
async def test_full_catalogue(cluster: LocalCluster, tmp_path: Path) -> None:
    reports = await run_all(cluster.config, ClusterFaults(cluster), region=REGION,
                            options=FULL, out_dir=tmp_path)
    failed = [r.text() for r in reports if not r.passed]
    assert not failed, "\n\n".join(failed)
