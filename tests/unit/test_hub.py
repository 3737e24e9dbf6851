"""The hub protocol: every message round-trips, keeps its wire JSON, and rejects what is
malformed; a receiver counts and logs rejections without flooding the log."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from chorus.errors import ChorusError
from chorus.metrics import Metrics
from chorus.model import Comment
from global_.hub import (
    Heartbeat,
    HubMessage,
    HubMessageError,
    Kind,
    LogThrottle,
    PresenceAnswer,
    PresenceChange,
    PresenceQuery,
    RecentReply,
    RecentRequest,
    Rejections,
    decode,
)


def comment(i: int, region: str = "us-east", stream: str = "s1") -> Comment:
    return Comment(id=f"0000000000{i:03d}-{region}-1", stream=stream, region=region,
                   user=f"u{i}", name=f"User {i}", text=f"text {i}", ts=1_700_000_000_000 + i)


MESSAGES: list[tuple[HubMessage, dict[str, Any]]] = [
    (PresenceQuery("s1"), {"stream": "s1"}),
    (PresenceAnswer("eu-west", "s1", 3), {"region": "eu-west", "stream": "s1", "viewers": 3}),
    (PresenceAnswer("eu-west", "s1", 0), {"region": "eu-west", "stream": "s1", "viewers": 0}),
    # "Unknown": the region's presence is away or being rebuilt.
    (PresenceAnswer("eu-west", "s1", None),
     {"region": "eu-west", "stream": "s1", "viewers": None}),
    (PresenceChange("ap-south", "s-2", 1),
     {"region": "ap-south", "stream": "s-2", "viewers": 1}),
    (RecentRequest("s1", 1_700_000_000_000), {"stream": "s1", "since_ms": 1_700_000_000_000}),
    (RecentReply("us-east", (comment(1), comment(2))),
     {"region": "us-east", "comments": [comment(1).to_json(), comment(2).to_json()]}),
    (RecentReply("us-east", ()), {"region": "us-east", "comments": []}),
    (RecentReply("us-east", (comment(1), comment(2)), hot=frozenset({comment(2).id})),
     {"region": "us-east", "comments": [comment(1).to_json(), comment(2).to_json()],
      "hot": [comment(2).id]}),
    (Heartbeat("us-east", "http://127.0.0.1:8080", True, 123),
     {"region": "us-east", "gateway": "http://127.0.0.1:8080", "healthy": True, "ts_ms": 123}),
]


@pytest.mark.parametrize(("message", "wire"), MESSAGES, ids=lambda m: getattr(m, "kind", None))
def test_every_message_round_trips_with_the_wire_json_of_earlier_versions(
        message: HubMessage, wire: dict[str, Any]) -> None:
    # Earlier versions wrote json.dumps(wire): the very bytes, so both can talk mid-upgrade.
    assert message.encode() == json.dumps(wire).encode()
    assert type(message).decode(json.dumps(wire).encode()) == message
    assert decode(message.kind, message.encode()) == message


def test_unknown_keys_are_ignored_so_a_newer_sender_can_add_some() -> None:
    data = json.dumps({"stream": "s1", "priority": "high"}).encode()
    assert PresenceQuery.decode(data) == PresenceQuery("s1")


NESTED = b'{"stream": ' + b"[" * 5000 + b"]" * 5000 + b"}"
HUGE = b'{"region": "a", "stream": "s", "viewers": ' + b"9" * 5000 + b"}"

MALFORMED: list[tuple[Kind, bytes]] = [
    ("presence_query", b"not json"),
    ("presence_query", b"\xff\xfe"),
    ("presence_query", b"[]"),
    ("presence_query", b"{}"),
    ("presence_query", b'{"stream": 7}'),
    ("presence_query", b'{"stream": ""}'),
    ("presence_query", b'{"stream": "x\\n"}'),        # a trailing newline is no stream id
    ("presence_query", b'{"stream": "a.b"}'),         # nor is a subject token separator
    ("presence_query", NESTED),
    ("presence_answer", b'{"region": "eu-west", "stream": "s"}'),
    ("presence_answer", b'{"region": "eu-west", "stream": "s", "viewers": "3"}'),
    ("presence_answer", b'{"region": "eu-west", "stream": "s", "viewers": true}'),
    ("presence_answer", b'{"region": "eu-west", "stream": "s", "viewers": -1}'),
    ("presence_answer", b'{"region": "eu-west", "stream": "s", "viewers": 1.5}'),
    ("presence_answer", b'{"regions": "eu-west", "stream": "s", "viewers": 0}'),
    ("presence_answer", HUGE),
    ("presence_answer", b'{"region": null, "stream": "s", "viewers": null}'),
    ("presence_answer", b'{"region": "eu-west", "viewers": null}'),
    ("presence_answer", b'{"region": "eu-west", "stream": "s", "viewers": [null]}'),
    ("presence_answer", b'{"region": "eu-west", "stream": "s", "viewers": {}}'),
    ("presence_change", b'{"region": "eu-west", "stream": "s", "viewers": null}'),  # only answers
    ("presence_change", b'{"region": null, "stream": "s", "viewers": 0}'),
    ("presence_change", b'{"region": "eu-west", "viewers": 0}'),
    ("recent_request", b'{"stream": "s"}'),
    ("recent_request", b'{"stream": "s", "since_ms": "yesterday"}'),
    ("recent_reply", b'{"region": "us-east"}'),
    ("recent_reply", b'{"region": "us-east", "comments": {}}'),
    ("recent_reply", b'{"region": "us-east", "comments": [{"id": "x"}]}'),
    ("recent_reply", b'{"comments": []}'),
    ("heartbeat", b'{"region": "a"}'),
    ("heartbeat", b'{"region": "a", "gateway": "g", "healthy": "yes", "ts_ms": 1}'),
    ("heartbeat", b'{"region": "a", "gateway": "g", "healthy": 1, "ts_ms": 1}'),
    ("heartbeat", b'{"region": "a", "gateway": "g", "healthy": true, "ts_ms": null}'),
]


@pytest.mark.parametrize(("kind", "data"), MALFORMED)
def test_malformed_messages_raise_hub_message_error_with_their_kind(kind: Kind,
                                                                    data: bytes) -> None:
    with pytest.raises(HubMessageError) as caught:
        decode(kind, data)
    assert caught.value.kind == kind
    assert isinstance(caught.value, ChorusError)


def test_an_answer_must_answer_the_question_asked() -> None:
    query = PresenceQuery("s1")
    assert PresenceAnswer("eu-west", "s1", 2).answers("eu-west", query)
    assert not PresenceAnswer("ap-south", "s1", 2).answers("eu-west", query)
    assert not PresenceAnswer("eu-west", "s2", 2).answers("eu-west", query)
    assert PresenceAnswer("eu-west", "s1", None).answers("eu-west", query)
    assert not PresenceAnswer("eu-west", "s2", None).answers("eu-west", query)


def test_a_recent_reply_holds_only_the_answering_regions_comments_of_the_stream() -> None:
    request = RecentRequest("s1", 0)
    assert RecentReply("us-east", (comment(1),)).answers("us-east", request)
    assert RecentReply("us-east", ()).answers("us-east", request)
    assert not RecentReply("eu-west", (comment(1),)).answers("us-east", request)
    assert not RecentReply("us-east", (comment(1, region="eu-west"),)).answers("us-east",
                                                                               request)
    assert not RecentReply("us-east", (comment(1, stream="s2"),)).answers("us-east", request)


@pytest.mark.parametrize(("hot", "reason"), [
    ("x", "'hot' is not a list of comment ids"),
    ([1], "'hot' is not a list of comment ids"),
    (["0000000000009-us-east-1"], "'hot' names a comment the reply does not carry")])
def test_a_recent_reply_names_as_hot_only_comments_it_carries(hot: Any, reason: str) -> None:
    wire = {"region": "us-east", "comments": [comment(1).to_json()], "hot": hot}
    with pytest.raises(HubMessageError, match=reason):
        RecentReply.decode(json.dumps(wire).encode())


def test_the_log_throttle_lets_one_line_per_key_through_and_counts_the_rest() -> None:
    now = [0.0]
    throttle = LogThrottle(every_s=10.0, clock=lambda: now[0])
    assert throttle.admit("heartbeat") == 0
    assert throttle.admit("heartbeat") is None
    assert throttle.admit("recent_reply") == 0  # each key on its own
    now[0] = 5.0
    assert throttle.admit("heartbeat") is None
    now[0] = 10.0
    assert throttle.admit("heartbeat") == 2
    assert throttle.admit("heartbeat") is None


def rejected(metrics: Metrics, kind: str) -> float:
    value = metrics.registry.get_sample_value(
        "chorus_hub_messages_rejected_total", {"region": "us-east", "gateway": "0",
                                               "kind": kind})
    return value or 0.0


def test_rejections_are_all_counted_and_logged_at_most_once_per_interval(
        caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    metrics = Metrics("us-east", "0")
    reject = Rejections(metrics, every_s=10.0, clock=lambda: now[0])
    error = HubMessageError("presence_answer", "no 'viewers'")
    with caplog.at_level(logging.WARNING, logger="global_.hub"):
        for _ in range(1000):
            reject(error, "chorus.presence.q.eu-west")
        now[0] = 11.0
        reject(error, "chorus.presence.q.eu-west")
    assert rejected(metrics, "presence_answer") == 1001
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert "999 more" in lines[1]
