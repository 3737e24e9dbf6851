"""The local cluster's real servers: health, cross-region JetStream, requests over the hub,
and links cut, restored and slowed through toxiproxy."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp
import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client as Nats
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import StreamConfig

from chorus.cluster import health
from chorus.cluster.local import LocalCluster
from chorus.config import Config

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def conns(cluster: LocalCluster) -> AsyncIterator[dict[str, Nats]]:
    """One NATS connection per region, to that region's own server."""
    out = {r.name: await nats.connect(r.nats_url, max_reconnect_attempts=-1,
                                      reconnect_time_wait=0.2)
           for r in cluster.config.regions}
    yield out
    for nc in out.values():
        await nc.close()


async def test_every_part_of_every_region_is_healthy(cluster: LocalCluster) -> None:
    status = await health.probe(cluster.config, with_cassandra=False)
    assert status.healthy, status.as_json()
    assert [r.name for r in status.regions] == ["us-east", "eu-west", "ap-south"]


async def test_gateways_list_every_region_with_urls_and_health(cluster: LocalCluster) -> None:
    config = cluster.config
    url = config.region("ap-south").gateway_urls[1]

    expected = {r.name: list(r.gateway_urls) for r in config.regions}

    async def all_heard() -> bool:
        body = await health.http_json(session, f"{url}/v1/regions")
        return bool(body) and all(r["healthy"] for r in body["regions"]) and {
            r["name"]: r["urls"] for r in body["regions"]} == expected

    async with aiohttp.ClientSession() as session:
        # Heartbeats cross the hub every health_interval_s, each gateway on its own clock: a
        # region is healthy at its first gateway's beat, and lists every gateway once each
        # has beaten.
        await health.wait_until(all_heard, what="every gateway's heartbeat", timeout_s=10)
        body = await health.http_json(session, f"{url}/v1/regions")
    assert body["region"] == "ap-south"
    assert {r["name"]: r["urls"] for r in body["regions"]} == {
        r.name: list(r.gateway_urls) for r in config.regions}


async def test_jetstream_publish_is_acked_by_the_other_regions_domain(
        conns: dict[str, Nats], unique: str) -> None:
    eu = conns["eu-west"].jetstream()
    await eu.add_stream(StreamConfig(name=unique, subjects=[f"{unique}.eu-west.>"],
                                     duplicate_window=60))
    try:
        # From us-east, address eu-west's JetStream through its domain, over the hub.
        us_to_eu = conns["us-east"].jetstream(domain="eu-west")
        subject = f"{unique}.eu-west.comments"
        # The new stream's interest reaches us-east over the leaf links a moment later; until
        # then a publish finds no responder. Wait with a probe message of its own subject.
        await _wait_reachable(conns["us-east"], f"{unique}.eu-west.probe")
        ack = await us_to_eu.publish(subject, b"hello", headers={"Nats-Msg-Id": "c-1"},
                                     timeout=5)
        assert ack.domain == "eu-west" and ack.stream == unique and not ack.duplicate
        again = await us_to_eu.publish(subject, b"hello", headers={"Nats-Msg-Id": "c-1"},
                                       timeout=5)
        assert again.duplicate and again.seq == ack.seq
        info = await eu.stream_info(unique)
        assert info.state.messages == 2  # the probe and one comment, not two
    finally:
        await eu.delete_stream(unique)


async def _answer(conns: dict[str, Nats], unique: str) -> list[object]:
    subs = []
    for name, nc in conns.items():
        async def reply(msg: object, name: str = name) -> None:
            await msg.respond(name.encode())  # type: ignore[attr-defined]
        subs.append(await nc.subscribe(f"{unique}.ping.{name}", cb=reply))
    for nc in conns.values():
        await nc.flush()
    return subs


async def _reachable(nc: Nats, subject: str, wait_s: float = 2.0) -> bool:
    try:
        await nc.request(subject, b"", timeout=wait_s)
    except (NoRespondersError, NatsTimeout):
        return False
    return True


async def test_each_region_reaches_every_other_over_the_hub(
        conns: dict[str, Nats], unique: str) -> None:
    await _answer(conns, unique)
    for source, nc in conns.items():
        for target in conns:
            subject = f"{unique}.ping.{target}"
            # Interest crosses the leaf links a moment after subscribing.
            await _wait_reachable(nc, subject)
            reply = await nc.request(subject, b"", timeout=5)
            assert reply.data.decode() == target, (source, target)


async def _wait_reachable(nc: Nats, subject: str, timeout_s: float = 15.0) -> None:
    async def check() -> bool:
        return await _reachable(nc, subject, wait_s=1.0)
    await health.wait_until(check, what=f"a responder on {subject}", timeout_s=timeout_s)


async def test_a_cut_link_isolates_the_region_and_restore_heals_it(
        cluster: LocalCluster, conns: dict[str, Nats], unique: str) -> None:
    await _answer(conns, unique)
    subject = f"{unique}.ping.eu-west"
    await _wait_reachable(conns["us-east"], subject)
    cluster.set_link("eu-west", enabled=False)
    try:
        async def unreachable() -> bool:
            return not await _reachable(conns["us-east"], subject, wait_s=1.0)
        await health.wait_until(unreachable, what="eu-west cut off", timeout_s=15)
        # eu-west still serves itself.
        assert await _reachable(conns["eu-west"], subject)
    finally:
        cluster.set_link("eu-west", enabled=True)
    await _wait_reachable(conns["us-east"], subject, timeout_s=30)


async def test_link_latency_shows_in_the_round_trip(
        cluster: LocalCluster, conns: dict[str, Nats], unique: str) -> None:
    await _answer(conns, unique)
    us, ap = cluster.config.region("us-east"), cluster.config.region("ap-south")
    subject = f"{unique}.ping.ap-south"
    await _wait_reachable(conns["us-east"], subject)

    async def best_rtt_ms() -> float:
        samples = []
        for _ in range(5):
            began = time.perf_counter()
            await conns["us-east"].request(subject, b"", timeout=5)
            samples.append((time.perf_counter() - began) * 1000)
        return min(samples)

    configured = 2 * (us.link.latency_ms + ap.link.latency_ms)
    base = await best_rtt_ms()
    # Jitter is +/-, so the best of a few samples sits within it of the configured value.
    jitter = 2 * (us.link.jitter_ms + ap.link.jitter_ms)
    assert base >= configured - jitter, (base, configured)
    cluster.set_link("ap-south", latency_ms=ap.link.latency_ms + 150)
    try:
        slowed = await best_rtt_ms()
    finally:
        cluster.set_link("ap-south", latency_ms=ap.link.latency_ms,
                         jitter_ms=ap.link.jitter_ms)
    # 150 ms more each way: no round trip is faster than the configured one plus 300 ms. (A
    # difference against the baseline is no bound: processing time varies with load.)
    assert slowed >= configured + 300 - jitter, (base, slowed, configured)


def test_relocated_config_shares_no_port_with_the_repo(cluster_config: Config,
                                                       repo_config: Config) -> None:
    from chorus.config import bound_ports

    repo = {p for _, p, _ in bound_ports(repo_config)}
    assert not repo & {p for _, p, _ in bound_ports(cluster_config)}


async def test_a_killed_gateway_is_seen_down_and_comes_back(cluster: LocalCluster) -> None:
    region = cluster.config.region("us-east")
    name = f"{region.name}/gateway-1"
    url = region.gateway_urls[1]
    cluster.child(name).kill()
    async with aiohttp.ClientSession() as session:
        assert await health.http_json(session, f"{url}/healthz") is None
        await cluster.restart(name)

        async def up() -> bool:
            return await health.http_json(session, f"{url}/healthz") is not None
        await health.wait_until(up, what=name, timeout_s=20,
                                children=[cluster.child(name)])
    status = await health.probe(cluster.config, with_cassandra=False)
    assert status.healthy

