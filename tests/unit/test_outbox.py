"""The outbox's forwarding decision, on plain values."""

from __future__ import annotations

from typing import Any, cast

from nats.aio.msg import Msg

from chorus.durable import Delivery
from chorus.model import Comment
from global_.outbox import (
    ACK_WAIT_S,
    BACKOFF_MAX_S,
    BATCH,
    IN_FLIGHT,
    decide,
    outbox_spec,
    streams_of,
)
from global_.presence import Answer


def delivery(i: int, stream: str) -> Delivery:
    comment = Comment(id=f"0000000000{i:03d}-us-east-1", stream=stream, region="us-east",
                      user="u", name="U", text=f"t{i}", ts=i)
    msg = Msg(_client=cast(Any, None), subject=f"cmt.us-east.{stream}", data=comment.encode())
    return Delivery(msg, comment)


def test_comments_go_where_there_are_viewers_and_are_skipped_elsewhere() -> None:
    batch = [delivery(1, "busy"), delivery(2, "empty"), delivery(3, "busy"),
             delivery(4, "empty")]
    plan = decide(batch, {"busy": Answer("eu-west", 4), "empty": Answer("eu-west", 0)})
    assert plan.send == (batch[0], batch[2])  # in the log's order
    assert plan.skip == (batch[1], batch[3])


def test_a_region_that_did_not_answer_counts_as_having_viewers() -> None:
    batch = [delivery(1, "s"), delivery(2, "unasked")]
    plan = decide(batch, {"s": Answer("eu-west", None)})
    assert plan.send == tuple(batch) and plan.skip == ()


def test_an_empty_batch_decides_nothing() -> None:
    plan = decide([], {})
    assert plan.send == () and plan.skip == ()


def test_one_presence_question_per_stream_of_a_batch() -> None:
    batch = [delivery(1, "b"), delivery(2, "a"), delivery(3, "b")]
    assert streams_of(batch) == ["a", "b"]


def test_every_gateway_builds_the_same_consumer_for_a_destination() -> None:
    spec = outbox_spec("us-east", "eu-west")
    assert spec == outbox_spec("us-east", "eu-west")
    assert spec.durable == "fwd-us-east-to-eu-west"
    assert spec.filter_subject == "cmt.us-east.>"
    assert (spec.batch, spec.in_flight, spec.ack_wait_s) == (BATCH, IN_FLIGHT, ACK_WAIT_S)
    assert spec.max_ack_pending == BATCH * IN_FLIGHT * 2
    # A batch kept in progress while it waits must not be handed to another gateway.
    assert BACKOFF_MAX_S * 2 <= spec.ack_wait_s
