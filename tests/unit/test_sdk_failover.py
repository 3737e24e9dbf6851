"""The SDK's failover decisions: how far a history fill goes back, which gateway is next,
when to go back home, and where a post whose outcome is unknown may be retried."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from aiohttp import web

from chorus.model import Comment
from chorus.sdk import ChorusClientError, Client
from chorus.sdk.history import anchor_of
from chorus.sdk.posting import Outcome, Pins, outcome_of, post_targets
from chorus.sdk.regions import Failback, RegionInfo, Rotation

STREAM = "s"


def comment(ms: int, region: str) -> Comment:
    return Comment(f"{ms:012x}0000-{region}.0", STREAM, region, "u", "U", f"c{ms}", ms)


# -- the history fill's anchor ------------------------------------------------------------------


def test_a_fill_goes_back_to_the_origin_the_client_got_least_far_with() -> None:
    # ap-south's link was cut from t=100 s: its viewers kept getting ap-south's comments only.
    held = [comment(t, "us-east") for t in range(90_000, 100_001, 1000)]
    held += [comment(t, "ap-south") for t in range(90_500, 120_001, 1000)]
    anchor = anchor_of(held)
    assert anchor == comment(100_000, "us-east").id


def test_the_anchor_of_one_origin_is_its_newest_comment() -> None:
    held = [comment(t, "us-east") for t in (1000, 3000, 2000)]
    assert anchor_of(held) == comment(3000, "us-east").id
    assert anchor_of([]) is None


def test_an_origin_that_went_quiet_long_ago_does_not_pull_the_fill_back() -> None:
    held = [comment(1_000, "eu-west"), comment(900_000, "us-east"), comment(901_000, "ap-south")]
    assert anchor_of(held, quiet_ms=300_000) == comment(900_000, "us-east").id


# -- which gateway, which region ----------------------------------------------------------------


def test_every_gateway_of_a_region_is_tried_before_it_counts_as_failed() -> None:
    rotation = Rotation(("g0", "g1", "g2", "g3"), failover_after=3, start=1)
    tried = []
    failed = False
    while not failed:
        tried.append(rotation.url())
        failed = rotation.failed()
    assert sorted(tried) == ["g0", "g1", "g2", "g3"]


def test_a_dead_gateway_alone_never_fails_its_region() -> None:
    # Gateway g0 refuses, g1 serves: the rotation alternates, and g1's success resets.
    rotation = Rotation(("g0", "g1"), failover_after=3)
    for _ in range(50):
        if rotation.url() == "g0":
            assert not rotation.failed()
        else:
            rotation.succeeded()


def test_failover_after_counts_when_a_region_has_fewer_gateways() -> None:
    rotation = Rotation(("g0",), failover_after=3)
    assert [rotation.failed() for _ in range(3)] == [False, False, True]


def test_failback_waits_for_healthy_checks_in_a_row() -> None:
    rule = Failback("us-east", after=2)
    assert [rule.observe(x) for x in (True, False, True, True)] == [False, False, False, True]


# -- posts whose outcome is unknown --------------------------------------------------------------


@pytest.mark.parametrize(("status", "sent", "outcome"), [
    (201, True, Outcome.STORED), (200, True, Outcome.STORED),
    (400, True, Outcome.REFUSED), (401, True, Outcome.REFUSED), (422, True, Outcome.REFUSED),
    (429, True, Outcome.NOT_TAKEN),
    (500, True, Outcome.UNKNOWN), (503, True, Outcome.UNKNOWN), (504, True, Outcome.UNKNOWN),
    (None, True, Outcome.UNKNOWN),      # the connection broke after the request left
    (None, False, Outcome.NOT_TAKEN),   # it never connected
])
def test_outcome_of_an_attempt(status: int | None, sent: bool, outcome: Outcome) -> None:
    assert outcome_of(status, sent=sent) is outcome


def test_a_pin_expires_with_the_servers_duplicate_window_and_is_bounded() -> None:
    now = [0.0]
    pins = Pins(ttl_s=600, max_pins=2, clock=lambda: now[0])
    pins.pin("k1", "us-east")
    now[0] = 599
    pins.pin("k1", "us-east")   # a later ambiguous attempt does not extend it
    assert pins.region("k1") == "us-east"
    now[0] = 601
    assert pins.region("k1") is None
    for key in ("a", "b", "c"):
        pins.pin(key, "eu-west")
    assert pins.region("a") is None and pins.region("c") == "eu-west"
    pins.release("c")
    assert pins.region("c") is None


def test_a_pinned_post_goes_only_to_its_region() -> None:
    regions = [RegionInfo("a", ("a0", "a1"), True, 0), RegionInfo("b", ("b0",), True, 0)]
    assert post_targets(regions, "b", None) == [("b", "b0"), ("a", "a0"), ("a", "a1")]
    assert post_targets(regions, "b", "a") == [("a", "a0"), ("a", "a1")]
    assert post_targets(regions, "b", "gone") == []


class Region:
    """A scripted region: ``answers`` are statuses popped one per post (201 by default)."""

    def __init__(self, name: str, regions: list[dict[str, object]]) -> None:
        self.name = name
        self.regions = regions
        self.answers: list[int] = []
        self.keys: list[str] = []
        self.stored: dict[str, Comment] = {}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/v1/regions", self.list_regions)
        app.router.add_get("/healthz", self.healthz)
        app.router.add_post("/v1/streams/{stream}/comments", self.post)
        return app

    async def list_regions(self, request: web.Request) -> web.Response:
        return web.json_response({"region": self.name, "regions": self.regions})

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def post(self, request: web.Request) -> web.Response:
        key = str((await request.json())["client_key"])
        self.keys.append(key)
        status = self.answers.pop(0) if self.answers else 201
        if status == 503:
            # What a gateway answers when its log did not confirm in time; the write lands.
            self.stored.setdefault(key, comment(len(self.stored) + 1, self.name))
            return web.json_response({"error": {"code": "unavailable", "message": "late"}},
                                     status=503)
        first = key in self.stored
        stored = self.stored.setdefault(key, comment(len(self.stored) + 1, self.name))
        return web.json_response(stored.to_json(), status=200 if first else 201)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest_asyncio.fixture
async def two_regions() -> AsyncIterator[tuple[Region, Region, int]]:
    ports = {"a": free_port(), "b": free_port(), "dead": free_port()}
    listing: list[dict[str, object]] = [
        {"name": "a", "urls": [f"http://127.0.0.1:{ports['a']}"], "healthy": True},
        {"name": "b", "urls": [f"http://127.0.0.1:{ports['b']}"], "healthy": True},
    ]
    a, b = Region("a", listing), Region("b", listing)
    runners = []
    for region in (a, b):
        runner = web.AppRunner(region.app())
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", ports[region.name]).start()
        runners.append(runner)
    try:
        yield a, b, ports["dead"]
    finally:
        for runner in runners:
            await runner.cleanup()


async def _client(a: Region) -> Client:
    url = str(a.regions[0]["urls"][0])  # type: ignore[index]
    client = Client([url], token="t", stream=STREAM, prefer="a", backoff_max_s=0.05,
                    failback_every_s=None)
    await client.start()
    return client


async def test_an_ambiguous_503_is_retried_in_the_same_region_only(
        two_regions: tuple[Region, Region, int]) -> None:
    a, b, _ = two_regions
    a.answers = [503, 503]
    client = await _client(a)
    try:
        stored = await client.post("hello", attempts=6)
    finally:
        await client.close()
    assert len(a.keys) == 3 and len(set(a.keys)) == 1
    assert b.keys == []   # a retry in b would have stored a second copy under another id
    assert stored == a.stored[a.keys[0]]


async def test_a_post_whose_region_never_answers_again_says_its_outcome_is_unknown(
        two_regions: tuple[Region, Region, int]) -> None:
    a, b, _ = two_regions
    a.answers = [503] * 10
    client = await _client(a)
    try:
        with pytest.raises(ChorusClientError) as refused:
            await client.post("hello", attempts=4)
        assert refused.value.code == "outcome_unknown"
        key = refused.value.client_key
        assert key is not None and b.keys == []
        # Posting again later with the key goes to the same region, which has it.
        a.answers = []
        again = await client.post("hello", client_key=key)
    finally:
        await client.close()
    assert again == a.stored[key] and b.keys == []


async def test_a_region_that_refuses_connections_is_left_for_another_at_once(
        two_regions: tuple[Region, Region, int]) -> None:
    a, b, dead = two_regions
    client = await _client(a)
    try:
        # a's gateway is gone (nothing listens): the request never left, so b may take it.
        client.regions = [RegionInfo("a", (f"http://127.0.0.1:{dead}",), True, 0),
                          *(r for r in client.regions if r.name == "b")]
        client.region = "a"
        stored = await client.post("hello")
    finally:
        await client.close()
    assert stored.region == "b" and len(b.keys) == 1
