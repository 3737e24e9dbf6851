"""region/classifier_worker.py: the worker pauses only once it has caught up."""

from __future__ import annotations

from nats.aio.msg import Msg

from chorus.durable import Delivery
from chorus.model import Comment
from region.classifier_worker import caught_up

COMMENT = Comment("0000000000000001-us-east.0", "s", "us-east", "u", "U", "hello", 1)


def _delivery(reply: str) -> Delivery:
    msg = Msg(None, subject="cmt.us-east.s", reply=reply, data=b"")  # type: ignore[arg-type]
    return Delivery(msg=msg, item=COMMENT)


def test_nothing_waiting_behind_the_last_delivery_is_caught_up() -> None:
    assert caught_up(_delivery("$JS.ACK.COMMENTS.classifier-us-east.1.42.40.1700000000.0"))


def test_a_backlog_behind_it_is_not() -> None:
    # The reply subject's last field is what the consumer still had pending (here with a
    # domain and an account hash, as a newer server spells it).
    assert not caught_up(_delivery(
        "$JS.ACK.us-east.ABC.COMMENTS.classifier-us-east.1.42.40.1700000000.7.tok"))


def test_a_message_without_jetstream_metadata_is_not() -> None:
    assert not caught_up(_delivery(""))
    assert not caught_up(_delivery("_INBOX.x"))
