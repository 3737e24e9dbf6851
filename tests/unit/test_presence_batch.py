"""Batched presence questions: the messages, and the cache whose recent "no viewers" stands in
for a late answer. How the directory asks (one question per batch, the per-stream question
for older regions, the stand-in) is tested on real NATS: tests/integration/
test_presence_batch.py."""

from __future__ import annotations

import pytest

from global_.hub import HubMessageError, PresenceBatchAnswer, PresenceBatchQuery
from global_.presence import STALE_FACTOR, Answer, PresenceCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


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


def test_a_batch_answer_may_be_unknown_for_every_stream_asked_and_nothing_else() -> None:
    query = PresenceBatchQuery(("s1", "s2"))
    unknown = PresenceBatchAnswer(region="eu-west", viewers=None)
    assert unknown.encode() == b'{"region": "eu-west", "viewers": null}'
    assert PresenceBatchAnswer.decode(unknown.encode()) == unknown
    assert unknown.answers("eu-west", query) and not unknown.answers("ap-south", query)
    # null is accepted for the whole answer only; an answer on older code refuses it.
    for bad in (b'{"region": "eu-west", "viewers": {"s1": null}}',
                b'{"region": null, "viewers": null}', b'{"region": "eu-west"}',
                b'{"region": "eu-west", "viewers": [null]}'):
        with pytest.raises(HubMessageError) as caught:
            PresenceBatchAnswer.decode(bad)
        assert caught.value.kind == "presence_batch_answer"


def test_the_cache_keeps_an_answer_for_last_known_only_within_the_stale_window() -> None:
    clock = Clock()
    cache = PresenceCache(ttl_s=2.0, clock=clock, stale_s=STALE_FACTOR * 2.0)
    cache.put("s", Answer("eu-west", 0))
    clock.now = 2.5
    assert cache.get("s", "eu-west") is None
    assert cache.last_known("s", "eu-west") == Answer("eu-west", 0)
    clock.now = 10.5
    assert cache.last_known("s", "eu-west") is None


def test_an_unknown_answer_is_kept_briefly_and_ends_the_stand_in_of_an_older_no_viewers(
        ) -> None:
    clock = Clock()
    cache = PresenceCache(ttl_s=2.0, clock=clock, stale_s=STALE_FACTOR * 2.0,
                          unknown_ttl_s=1.0)
    cache.put("s", Answer("eu-west", 0))
    clock.now = 1.0
    unknown = Answer("eu-west", None, unknown=True)
    assert unknown.has_viewers
    cache.put("s", unknown)
    assert cache.get("s", "eu-west") == unknown and cache.ttl_of(unknown) == 1.0
    clock.now = 2.5   # past the unknown's life: asked again, and believed when it is back
    assert cache.get("s", "eu-west") is None
    # What stands in for a question left unanswered now says "viewers", not the old "0".
    last = cache.last_known("s", "eu-west")
    assert last is not None and last.has_viewers
    with pytest.raises(ValueError):
        Answer("eu-west", 3, unknown=True)
