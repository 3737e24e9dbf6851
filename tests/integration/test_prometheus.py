"""`chorus up --with-prometheus`: a real Prometheus scrapes every gateway's operator
listener and loads the alert rules of ops/prometheus/alerts.yml."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from chorus.cluster import prometheus
from chorus.cluster.health import wait_until
from chorus.cluster.local import LocalCluster

pytestmark = pytest.mark.integration


async def test_prometheus_scrapes_every_gateway_and_loads_the_rules(
        cluster: LocalCluster) -> None:
    child = await cluster.start_prometheus()
    base = prometheus.url(cluster.config)
    gateways = sum(r.gateways for r in cluster.config.regions)
    try:
        async with aiohttp.ClientSession() as http:
            async def api(path: str, **params: str) -> Any:
                async with http.get(f"{base}/api/v1/{path}", params=params) as resp:
                    body = await resp.json()
                assert body["status"] == "success", body
                return body["data"]

            async def all_up() -> bool:
                targets = (await api("targets"))["activeTargets"]
                return (len(targets) == gateways
                        and all(t["health"] == "up" for t in targets))
            await wait_until(all_up, what="every gateway scraped", timeout_s=60,
                             children=[child])
            result = (await api("query", query="chorus_connections"))["result"]
            assert {(s["metric"]["region"], s["metric"]["gateway"]) for s in result} == {
                (r.name, str(i)) for r in cluster.config.regions for i in range(r.gateways)}
            rules = [rule["name"] for g in (await api("rules"))["groups"]
                     for rule in g["rules"]]
            assert "ChorusDeliveryP99OverObjective" in rules and len(rules) >= 5
    finally:
        await child.stop()
        cluster.children.pop(prometheus.NAME, None)
