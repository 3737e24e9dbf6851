"""What an operator sees: /metrics and health details on each gateway's operator listener,
not on the client port, with the latencies of a comment's path filled in by real traffic."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator

import aiohttp
import pytest
import pytest_asyncio

from chorus.cluster.health import wait_until
from chorus.cluster.local import LocalCluster
from tests.integration.test_cell import post, token
from tests.integration.test_global import watchers
from tests.integration.viewers import Poller, SseViewer

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def parse(text: str) -> Samples:
    """Prometheus text format, as (name, labels) -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


async def scrape(http: aiohttp.ClientSession, cluster: LocalCluster, region: str) -> Samples:
    """Every gateway of ``region``, from its operator listener, in one table."""
    out: Samples = {}
    for base in cluster.config.region(region).operator_urls:
        async with http.get(f"{base}/metrics") as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            out.update(parse(await resp.text()))
    return out


async def test_metrics_are_on_the_operator_port_only(cluster: LocalCluster,
                                                      http: aiohttp.ClientSession) -> None:
    region = cluster.config.region("eu-west")
    async with http.get(f"{region.gateway_urls[0]}/metrics") as resp:
        assert resp.status == 404
        assert (await resp.json())["error"]["code"] == "not_found"
    async with http.get(f"{region.operator_urls[1]}/healthz") as resp:
        body = await resp.json()
    assert resp.status == 200 and body["status"] == "ok"
    assert body["region"] == "eu-west" and body["gateway"] == 1
    assert body["loops"]["fanout"] == "running" and body["loops"]["backlog-gauges"] == "running"
    assert body["nats"] and body["redis"] and body["uptime_s"] >= 0


async def test_a_comments_path_is_measured_at_every_step(
        cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    us, eu = cluster.config.region("us-east"), cluster.config.region("eu-west")
    before_us, before_eu = await scrape(http, cluster, "us-east"), await scrape(http, cluster,
                                                                                "eu-west")
    viewers = await watchers(http, cluster, unique, ("us-east", "eu-west"))
    sse = await SseViewer(http, us.gateway_urls[1], unique, token(cluster, "s")).connect()
    poller = await Poller(http, eu.gateway_urls[1], unique, token(cluster, "p")).start()
    try:
        for i in range(5):
            status, _ = await post(http, us.gateway_urls[0], unique, token(cluster, f"o-{i}"),
                                   text=f"measured {i}")
            assert status == 201
        for viewer in (*viewers.values(), sse, poller):
            await viewer.count(5)
        status, _ = await post(http, us.gateway_urls[0], unique, token(cluster, "bad"),
                               text="")
        assert status == 422
        async with http.get(f"{us.gateway_urls[0]}/v1/streams/{unique}/comments",
                            params={"access_token": token(cluster, "h")}) as resp:
            assert resp.status == 200

        async def measured() -> bool:
            a, e = await scrape(http, cluster, "us-east"), await scrape(http, cluster,
                                                                        "eu-west")

            def grew(now: Samples, then: Samples, name: str, n: float, **labels: str) -> bool:
                return total(now, name, **labels) - total(then, name, **labels) >= n

            return all((
                grew(a, before_us, "chorus_post_stored_seconds_count", 5),
                # Same region: the WebSocket viewer and the SSE viewer, 5 comments each.
                grew(a, before_us, "chorus_delivery_seconds_count", 10, origin="us-east"),
                # Across: eu-west's WebSocket viewer got us-east's comments live (a
                # long-poll resumes from its cursor: what it reads back is not observed).
                grew(e, before_eu, "chorus_delivery_seconds_count", 5, origin="us-east"),
                grew(a, before_us, "chorus_forward_seconds_count", 5, dest="eu-west"),
                grew(a, before_us, "chorus_presence_query_seconds_count", 1),
                grew(a, before_us, "chorus_history_page_seconds_count", 1, source="log"),
                grew(a, before_us, "chorus_errors_total", 1, code="invalid"),
                grew(a, before_us, "chorus_connections_opened_total", 1, transport="sse"),
                grew(e, before_eu, "chorus_connections_opened_total", 1, transport="poll"),
            ))
        await wait_until(measured, what="every step of the path observed", timeout_s=20)
        samples = await scrape(http, cluster, "us-east")
        # Same-region objective: 50 ms; to eu-west: 50 ms + both links' one-way latency.
        assert total(samples, "chorus_delivery_objective_seconds", origin="us-east",
                     gateway="0") == pytest.approx(0.05)
        assert total(samples, "chorus_delivery_objective_seconds", origin="eu-west",
                     gateway="0") == pytest.approx(0.05 + (us.link.latency_ms
                                                           + eu.link.latency_ms) / 1000)

        async def sampled() -> bool:
            s = await scrape(http, cluster, "us-east")
            depth = total(s, "chorus_outbox_depth", dest="ap-south", gateway="0")
            healthy = total(s, "chorus_region_healthy", peer="ap-south", gateway="0")
            return not math.isnan(depth) and healthy == 1
        await wait_until(sampled, what="outbox depth sampled, peers healthy", timeout_s=20)
    finally:
        for viewer in viewers.values():
            await viewer.close()
        await sse.close()
        await poller.close()
