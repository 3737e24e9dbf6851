"""A region answers a batched presence question from its presence index in Redis, and still
answers the per-stream question that regions on older code ask; and the asking side
(global_/presence.py `PresenceDirectory`) shares its questions, falls back for older code and
stands a recent "no viewers" in for a late answer (never for a region that said its counts
are unknown), against regions scripted on the real hub."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from chorus.cluster.local import LocalCluster
from chorus.metrics import Metrics
from chorus.names import presence_batch_query, presence_query
from global_.hub import (
    PresenceAnswer,
    PresenceBatchAnswer,
    PresenceBatchQuery,
    PresenceQuery,
    Rejections,
)
from global_.presence import Answer, PresenceDirectory
from tests.integration.test_global import close_all, watchers

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_a_batched_question_is_answered_for_every_stream_and_the_old_one_too(
        cluster: LocalCluster, http: aiohttp.ClientSession, unique: str) -> None:
    viewers = await watchers(http, cluster, unique, ("eu-west",))
    hub = await nats.connect(f"nats://{cluster.config.hub.host}:{cluster.config.hub.client_port}")
    try:
        query = PresenceBatchQuery((unique, f"{unique}-quiet"))
        reply = await hub.request(presence_batch_query("eu-west"), query.encode(), timeout=2)
        answer = PresenceBatchAnswer.decode(reply.data)
        assert answer.answers("eu-west", query)
        assert answer.viewers == {unique: 1, f"{unique}-quiet": 0}
        reply = await hub.request(presence_query("eu-west"), PresenceQuery(unique).encode(),
                                  timeout=2)
        assert PresenceAnswer.decode(reply.data).viewers == 1
    finally:
        await hub.close()
        await close_all(viewers)


# -- the asking side, against regions scripted on the hub ---------------------------------------


class ScriptedRegion:
    """A region on the real hub that answers presence questions with ``viewers``, as
    global_/presence.py's responder would: batched ones (unless ``batched`` is False: older
    code, with no responder for them, so NATS says there is none) and one stream at a time.
    ``silent``: it hears the questions and answers none in time; ``unknown``: it answers that
    its counts are incomplete (its presence is rebuilding). Counts the questions."""

    def __init__(self, nc: Nats, name: str, viewers: dict[str, int], *,
                 batched: bool = True) -> None:
        self.nc = nc
        self.name = name
        self.viewers = viewers
        self.batched = batched
        self.silent = False
        self.unknown = False
        self.batches: list[tuple[str, ...]] = []
        self.singles = 0
        self._subs: list[Subscription] = []

    async def __aenter__(self) -> ScriptedRegion:
        self._subs.append(await self.nc.subscribe(presence_query(self.name), cb=self._single))
        if self.batched:
            self._subs.append(await self.nc.subscribe(presence_batch_query(self.name),
                                                      cb=self._batch))
        await self.nc.flush()  # the server knows the responders before anyone asks
        return self

    async def __aexit__(self, *exc: object) -> None:
        for sub in self._subs:
            await sub.unsubscribe()

    async def _batch(self, msg: Msg) -> None:
        query = PresenceBatchQuery.decode(msg.data)
        self.batches.append(query.streams)
        if not self.silent:
            answer = PresenceBatchAnswer(region=self.name, viewers=None if self.unknown else {
                s: self.viewers.get(s, 0) for s in query.streams})
            await msg.respond(answer.encode())

    async def _single(self, msg: Msg) -> None:
        query = PresenceQuery.decode(msg.data)
        self.singles += 1
        if not self.silent:
            viewers = None if self.unknown else self.viewers.get(query.stream, 0)
            await msg.respond(PresenceAnswer(region=self.name, stream=query.stream,
                                             viewers=viewers).encode())


@pytest_asyncio.fixture
async def hub(cluster: LocalCluster) -> AsyncIterator[Nats]:
    nc = await nats.connect(f"nats://{cluster.config.hub.host}:{cluster.config.hub.client_port}")
    try:
        yield nc
    finally:
        await nc.close()


def directory(nc: Nats, region: str, timeout_ms: int = 2000,
              metrics: Metrics | None = None) -> PresenceDirectory:
    metrics = metrics or Metrics("us-east", "0")
    return PresenceDirectory(nc, regions=(region,), cache_ms=2000, timeout_ms=timeout_ms,
                             metrics=metrics, rejections=Rejections(metrics))


async def test_concurrent_askers_of_one_uncached_answer_share_one_question(
        hub: Nats, unique: str) -> None:
    s1, s2 = f"{unique}-1", f"{unique}-2"
    async with ScriptedRegion(hub, unique, {s1: 2, s2: 2}) as region:
        d = directory(hub, unique)
        answers = await asyncio.gather(*(d.viewers(s1, unique) for _ in range(20)),
                                       d.viewers(s2, unique))
        assert {a.viewers for a in answers} == {2}
        assert region.singles == 2      # one per (stream, region), not one per caller
        await d.viewers(s1, unique)
        assert region.singles == 2      # then from the cache


async def test_one_question_per_batch_shared_by_concurrent_batches_then_cached(
        hub: Nats, unique: str) -> None:
    s1, s2, s3 = (f"{unique}-{i}" for i in (1, 2, 3))
    async with ScriptedRegion(hub, unique, {s1: 2}) as region:
        d = directory(hub, unique)
        first, second = await asyncio.gather(d.viewers_of([s1, s2, s1], unique),
                                             d.viewers_of([s2, s3], unique))
        assert first == {s1: Answer(unique, 2), s2: Answer(unique, 0)}
        assert second == {s2: Answer(unique, 0), s3: Answer(unique, 0)}
        assert region.batches == [(s1, s2), (s3,)]   # s2 asked once, shared
        await d.viewers_of([s1, s2, s3], unique)
        assert len(region.batches) == 2               # then from the cache
        assert region.singles == 0


async def test_a_region_on_older_code_is_asked_one_stream_at_a_time(
        hub: Nats, unique: str) -> None:
    s1, s2, s3 = (f"{unique}-{i}" for i in (1, 2, 3))
    async with ScriptedRegion(hub, unique, {s1: 1}, batched=False) as region:
        d = directory(hub, unique)
        assert await d.viewers_of([s1, s2], unique) == {s1: Answer(unique, 1),
                                                        s2: Answer(unique, 0)}
        assert region.singles == 2
        await d.viewers_of([s3], unique)
        assert region.singles == 3   # not asked a batch again for a while: no wasted round trip


async def test_a_region_nobody_answers_for_is_not_taken_for_older_code(
        hub: Nats, unique: str) -> None:
    # A cut link: no responder for anything. Once the region is back it is asked in batches
    # at once, not one stream at a time for a minute.
    s1, s2 = f"{unique}-1", f"{unique}-2"
    d = directory(hub, unique)
    answers = await d.viewers_of([s1, s2], unique)
    assert all(a.viewers is None and a.has_viewers for a in answers.values())   # fail open
    async with ScriptedRegion(hub, unique, {s1: 3}) as region:
        d.cache.invalidate(s1, unique)
        d.cache.invalidate(s2, unique)
        assert await d.viewers_of([s1, s2], unique) == {s1: Answer(unique, 3),
                                                        s2: Answer(unique, 0)}
        assert region.batches == [(s1, s2)] and region.singles == 0


async def test_a_late_answer_leaves_a_recent_no_viewers_standing_but_fails_open_else(
        hub: Nats, unique: str) -> None:
    quiet, watched, new = f"{unique}-quiet", f"{unique}-watched", f"{unique}-new"
    async with ScriptedRegion(hub, unique, {watched: 4}) as region:
        d = directory(hub, unique, timeout_ms=300)
        now = [0.0]
        d.cache.clock = lambda: now[0]
        await d.viewers_of([quiet, watched], unique)
        now[0] = 3.0          # both expired (2 s), within the stale window
        region.silent = True  # the region is overloaded: nothing answers in time
        answers = await d.viewers_of([quiet, watched, new], unique)
        assert answers[quiet] == Answer(unique, 0)           # not forwarded for nothing
        assert answers[watched].has_viewers and answers[new].has_viewers
        d.cache.invalidate(quiet, unique)                   # a viewer joined there
        assert (await d.viewers_of([quiet], unique))[quiet].viewers is None


async def test_an_unknown_answer_fails_open_at_once_and_no_old_no_viewers_stands_in(
        hub: Nats, unique: str) -> None:
    quiet, other = f"{unique}-quiet", f"{unique}-other"
    async with ScriptedRegion(hub, unique, {}) as region:
        metrics = Metrics("us-east", "0")
        metrics.declare_regions((unique,))
        metrics.declare_destinations((unique,))
        # Had the region stayed silent, each question would end only at this timeout, and
        # unanswered: the answers below say it came, and said "unknown".
        d = directory(hub, unique, timeout_ms=60_000, metrics=metrics)
        now = [0.0]
        d.cache.clock = lambda: now[0]
        assert await d.viewers_of([quiet], unique) == {quiet: Answer(unique, 0)}
        now[0] = 3.0            # expired (2 s): asked again
        region.unknown = True   # its Redis lost presence: rebuilding
        answers = await d.viewers_of([quiet, other], unique)
        assert all(a.unknown and a.viewers is None and a.has_viewers
                   for a in answers.values())   # the old "0" does not stand in
        assert (await d.viewers(other, unique)).unknown   # the per-stream question too
        assert region.batches[-1] == (quiet, other) and region.singles == 0  # cached
        assert unknown_total(metrics, unique) == 1
        assert unanswered_total(metrics, unique) == 0
        # Then the region falls silent, past the unknown's short life: what stands in is
        # "viewers", not the "0" it said before it lost its presence.
        now[0] = 4.5
        region.silent = True
        d.timeout_s = 0.3
        assert (await d.viewers_of([quiet], unique))[quiet].has_viewers
        # Its presence rebuilt, it is believed as soon as the unknown has expired.
        now[0] = 6.0
        region.silent = region.unknown = False
        assert await d.viewers_of([quiet], unique) == {quiet: Answer(unique, 0)}


def unknown_total(metrics: Metrics, dest: str) -> float | None:
    return metrics.registry.get_sample_value(
        "chorus_presence_unknown_total", {"region": "us-east", "gateway": "0", "dest": dest})


def unanswered_total(metrics: Metrics, dest: str) -> float | None:
    return metrics.registry.get_sample_value(
        "chorus_presence_unanswered_total", {"region": "us-east", "gateway": "0", "dest": dest})
