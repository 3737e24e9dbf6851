"""Viewer counts: distinct users, so one user's extra connections count once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from chorus.config import Limits
from region.fanout import Fanout


def fanout() -> Fanout:
    unused = cast(Any, None)
    return Fanout(unused, region="us-east", gateway="us-east.0", limits=Limits(),
                  presence=unused, cache=unused, hooks=unused, metrics=unused)


@dataclass(eq=False)   # each one a connection of its own, as sessions are
class FakeSession:
    stream: str
    user: str


def session(stream: str, user: str) -> Any:
    return FakeSession(stream, user)


def test_a_user_with_many_connections_is_one_viewer() -> None:
    f = fanout()
    f.sessions["s"] = {session("s", "ana") for _ in range(2000)} | {session("s", "bob")}
    f.sessions["t"] = {session("t", "ana")}
    f.lease("s", "ana")      # also polling: still ana
    f.lease("s", "cy")       # a poller between polls
    assert f.counts() == {"s": 3, "t": 1}
