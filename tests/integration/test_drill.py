"""The chaos drills, run against the test cluster as an SRE runs them against theirs."""

from __future__ import annotations

import pytest

from chaos.drill import run_drill
from chorus.cluster.local import LocalCluster
from chorus.toxiproxy import leaf_proxy_name

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


@pytest.mark.parametrize("drill", ["link-cut", "link-slow"])
async def test_a_drill_passes_and_reports_every_client(cluster: LocalCluster,
                                                       drill: str) -> None:
    report = await run_drill(cluster.config, drill=drill, region="ap-south", seconds=3,
                             rate=10, latency_ms=300)
    assert report.passed, report.text()
    assert report.posted >= 50
    assert {c.region for c in report.clients} == set(cluster.config.region_names)
    assert all(c.received == report.posted for c in report.clients)
    # The link is back as regions.yaml says.
    state = cluster.toxiproxy.state(leaf_proxy_name("ap-south"))
    assert state.enabled and state.latency_ms == cluster.config.region("ap-south").link.latency_ms
