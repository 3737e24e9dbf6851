"""What the post and fanout paths were made cheaper with must answer exactly as before: the
token cache (region/auth.py `VerifiedTokens`) and a comment's JSON (chorus/model.py). The
presence directory's one question per (stream, region) (global_/presence.py) is asked on
real NATS: tests/integration/test_presence_batch.py."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest

import region.auth
from chorus.model import Comment
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

