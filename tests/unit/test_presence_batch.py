"""Batched presence questions: one per outbox batch, the per-stream question for older
regions, and a recent "no viewers" standing in for a late answer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from chorus.metrics import Metrics
from global_.hub import (
    HubMessageError,
    PresenceAnswer,
    PresenceBatchAnswer,
    PresenceBatchQuery,
    PresenceQuery,
    Rejections,
)
from global_.presence import STALE_FACTOR, Answer, PresenceCache, PresenceDirectory


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeNats:
    """A region answering batched questions (or not: ``batched=False`` is older code, and
    ``silent`` answers nothing in time); counts the questions of each kind."""

    def __init__(self, viewers: dict[str, int], *, batched: bool = True) -> None:
        self.viewers = viewers
        self.batched = batched
        self.silent = False
        self.batches: list[tuple[str, ...]] = []
        self.singles = 0

    async def request(self, subject: str, data: bytes, **options: Any) -> Any:
        region = subject.rsplit(".", 1)[1]
        await asyncio.sleep(0)  # a round trip
        if self.silent:
            raise NatsTimeout
        if ".qb." in subject:
            if not self.batched:
                raise NoRespondersError
            query = PresenceBatchQuery.decode(data)
            self.batches.append(query.streams)
            payload = PresenceBatchAnswer(
                region=region, viewers={s: self.viewers.get(s, 0) for s in query.streams}
            ).encode()
        else:
            single = PresenceQuery.decode(data)
            self.singles += 1
            payload = PresenceAnswer(region=region, stream=single.stream,
                                     viewers=self.viewers.get(single.stream, 0)).encode()

        class Reply:
            data = payload
        return Reply()


def directory(nc: FakeNats) -> PresenceDirectory:
    metrics = Metrics("us-east", "0")
    return PresenceDirectory(nc, regions=("eu-west",), cache_ms=2000,  # type: ignore[arg-type]
                             timeout_ms=500, metrics=metrics, rejections=Rejections(metrics))


def test_batch_messages_round_trip_and_reject_what_they_do_not_promise() -> None:
    query = PresenceBatchQuery(("s1", "s2"))
    assert PresenceBatchQuery.decode(query.encode()) == query
    answer = PresenceBatchAnswer(region="eu-west", viewers={"s1": 0, "s2": 3})
    assert PresenceBatchAnswer.decode(answer.encode()) == answer
    assert answer.answers("eu-west", query)
    assert not answer.answers("ap-south", query)
    assert not PresenceBatchAnswer(region="eu-west", viewers={"s1": 0}).answers("eu-west",
                                                                               query)
    for bad in (b'{"streams": []}', b'{"streams": "s1"}', b'{"streams": ["no spaces"]}',
                b'{"streams": [' + b",".join([b'"s"'] * 257) + b"]}", b"[]"):
        with pytest.raises(HubMessageError):
            PresenceBatchQuery.decode(bad)
    for bad in (b'{"region": "eu-west", "viewers": {"s1": -1}}',
                b'{"region": "eu-west", "viewers": {"s1": true}}',
                b'{"region": "eu-west", "viewers": []}', b'{"viewers": {}}'):
        with pytest.raises(HubMessageError):
            PresenceBatchAnswer.decode(bad)


async def test_one_question_per_batch_shared_by_concurrent_batches_then_cached() -> None:
    nc = FakeNats({"s1": 2})
    d = directory(nc)
    first, second = await asyncio.gather(d.viewers_of(["s1", "s2", "s1"], "eu-west"),
                                         d.viewers_of(["s2", "s3"], "eu-west"))
    assert first == {"s1": Answer("eu-west", 2), "s2": Answer("eu-west", 0)}
    assert second == {"s2": Answer("eu-west", 0), "s3": Answer("eu-west", 0)}
    assert nc.batches == [("s1", "s2"), ("s3",)]   # s2 asked once, shared
    await d.viewers_of(["s1", "s2", "s3"], "eu-west")
    assert len(nc.batches) == 2                    # then from the cache
    assert nc.singles == 0


async def test_a_region_on_older_code_is_asked_one_stream_at_a_time() -> None:
    nc = FakeNats({"s1": 1}, batched=False)
    d = directory(nc)
    assert await d.viewers_of(["s1", "s2"], "eu-west") == {
        "s1": Answer("eu-west", 1), "s2": Answer("eu-west", 0)}
    assert nc.singles == 2
    await d.viewers_of(["s3"], "eu-west")
    assert nc.singles == 3   # not asked a batch again for a while: no wasted round trip


async def test_a_late_answer_leaves_a_recent_no_viewers_standing_but_fails_open_else(
) -> None:
    nc = FakeNats({"watched": 4})
    d = directory(nc)
    clock = Clock()
    d.cache.clock = clock
    await d.viewers_of(["quiet", "watched"], "eu-west")
    clock.now = 3.0       # both expired (2 s), within the stale window
    nc.silent = True      # the region is overloaded: nothing answers in time
    answers = await d.viewers_of(["quiet", "watched", "new"], "eu-west")
    assert answers["quiet"] == Answer("eu-west", 0)       # not forwarded for nothing
    assert answers["watched"].has_viewers and answers["new"].has_viewers
    d.cache.invalidate("quiet", "eu-west")                # a viewer joined there
    assert (await d.viewers_of(["quiet"], "eu-west"))["quiet"].viewers is None
    await asyncio.sleep(0)


def test_the_cache_keeps_an_answer_for_last_known_only_within_the_stale_window() -> None:
    clock = Clock()
    cache = PresenceCache(ttl_s=2.0, clock=clock, stale_s=STALE_FACTOR * 2.0)
    cache.put("s", Answer("eu-west", 0))
    clock.now = 2.5
    assert cache.get("s", "eu-west") is None
    assert cache.last_known("s", "eu-west") == Answer("eu-west", 0)
    clock.now = 10.5
    assert cache.last_known("s", "eu-west") is None
