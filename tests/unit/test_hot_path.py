"""What the post and fanout paths were made cheaper with must answer exactly as before: the
token cache (region/auth.py `VerifiedTokens`), a comment's JSON (chorus/model.py), and the
presence directory's one question per (stream, region) (global_/presence.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import pytest

import region.auth
from chorus.metrics import Metrics
from chorus.model import Comment
from global_.hub import PresenceAnswer, PresenceQuery, Rejections
from global_.presence import PresenceDirectory
from region.auth import VerifiedTokens, issue_token, verify_token
from region.errors import ApiError, ErrorCode

SECRET = "s" * 40
LEEWAY_S = 5


def cache(**options: Any) -> VerifiedTokens:
    return VerifiedTokens(lambda token: region.auth.verify_token(SECRET, token),
                          leeway_s=LEEWAY_S, **options)


def test_a_verified_token_is_answered_from_memory_with_the_same_claims(
        monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = cache()
    token = issue_token(SECRET, "ana", roles=("moderator",))
    first = tokens.verify(token)
    assert first == verify_token(SECRET, token)
    calls: list[str] = []
    monkeypatch.setattr(region.auth, "verify_token",
                        lambda *args, **kwargs: calls.append("verified"))
    assert tokens.verify(token) == first
    assert calls == []


def test_an_expired_token_is_verified_again_even_when_remembered(
        monkeypatch: pytest.MonkeyPatch) -> None:
    now = [time.time()]
    tokens = cache(clock=lambda: now[0])
    token = issue_token(SECRET, "ana", ttl_s=60, now=now[0])
    exp = tokens.verify(token).exp
    now[0] = exp + LEEWAY_S - 0.5
    assert tokens.verify(token).user == "ana"      # within the leeway, as verify_token

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ApiError(ErrorCode.UNAUTHENTICATED, "the token has expired")
    monkeypatch.setattr(region.auth, "verify_token", refuse)
    now[0] = exp + LEEWAY_S
    with pytest.raises(ApiError) as info:
        tokens.verify(token)
    assert "expired" in info.value.message


@pytest.mark.parametrize("token", [None, "", "a.b.c", "not a token"])
def test_bad_tokens_are_refused_every_time_and_never_remembered(token: str | None) -> None:
    tokens = cache()
    for _ in range(2):
        with pytest.raises(ApiError):
            tokens.verify(token)
    assert len(tokens) == 0


def test_the_cache_is_bounded() -> None:
    tokens = cache(max_entries=10)
    for i in range(25):
        tokens.verify(issue_token(SECRET, f"u{i}"))
    assert len(tokens) <= 10


def test_a_comments_json_is_what_asdict_gives_in_the_same_order() -> None:
    comment = Comment(id="01", stream="s", region="us-east", user="u", name="n", text="t",
                      ts=1, reply_to="00", badge="host", shadow=True)
    assert list(comment.to_json().items()) == list(dataclasses.asdict(comment).items())


class FakeNats:
    """Answers presence questions after ``delay_s``; counts them."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.asked = 0

    async def request(self, subject: str, data: bytes, **options: Any) -> Any:
        self.asked += 1
        query = PresenceQuery.decode(data)
        await asyncio.sleep(self.delay_s)  # a round trip to the other region
        region = subject.rsplit(".", 1)[1]

        class Reply:
            data = PresenceAnswer(region=region, stream=query.stream, viewers=2).encode()
        return Reply()


async def test_concurrent_askers_of_one_uncached_answer_share_one_question() -> None:
    nc = FakeNats(delay_s=0.01)
    metrics = Metrics("us-east", "0")
    directory = PresenceDirectory(nc, regions=("eu-west",), cache_ms=2000,  # type: ignore[arg-type]
                                  timeout_ms=500, metrics=metrics,
                                  rejections=Rejections(metrics))
    answers = await asyncio.gather(*(directory.viewers("s1", "eu-west") for _ in range(20)),
                                   directory.viewers("s2", "eu-west"))
    assert {a.viewers for a in answers} == {2}
    assert nc.asked == 2            # one per (stream, region), not one per caller
    await directory.viewers("s1", "eu-west")
    assert nc.asked == 2            # then from the cache
