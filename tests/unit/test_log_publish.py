"""region/log_publish.py: acks read as JetStream writes them, and the publisher's bookkeeping
(each ack to its own caller, one timer for the timeouts) on a stand-in connection that records
what was published. The same publisher against a real NATS: tests/integration/
test_log_publish.py."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from region import log_publish
from region.log_publish import Ack, AckedPublisher, AckError, parse_ack


def test_an_ack_and_a_duplicate() -> None:
    assert parse_ack(b'{"stream":"COMMENTS","domain":"us-east","seq":7}') == Ack(7, False)
    assert parse_ack(b'{"stream":"COMMENTS","seq":7,"duplicate":true}') == Ack(7, True)


@pytest.mark.parametrize(("data", "status", "says"), [
    (b"", "503", "no stream captures"),
    (b"", "408", "status 408"),
    (b'{"error":{"code":400,"err_code":10060,"description":"expected stream does not match"}}',
     None, "expected stream does not match"),
    (b'{"error":"bad"}', None, "bad"),
    (b"not json", None, "not JSON"),
    (b"[1]", None, "not a JSON object"),
    (b'{"stream":"COMMENTS"}', None, "no sequence"),
    (b'{"seq":true}', None, "no sequence"),
])
def test_what_is_not_an_ack(data: bytes, status: str | None, says: str) -> None:
    with pytest.raises(AckError, match=says):
        parse_ack(data, status)


class Msg:
    def __init__(self, subject: str, data: bytes) -> None:
        self.subject, self.data, self.headers = subject, data, None


class Sub:
    async def unsubscribe(self) -> None:
        pass


class Recording:
    """What of a NATS connection the publisher uses; publishes are recorded, not sent."""

    def __init__(self, fail: bool = False) -> None:
        self.published: list[tuple[str, bytes, str]] = []
        self.fail = fail
        self.cb: Any = None
        self.changed = asyncio.Event()

    def new_inbox(self) -> str:
        return "_INBOX.test"

    async def subscribe(self, subject: str, cb: Any) -> Sub:
        assert subject == "_INBOX.test.*"
        self.cb = cb
        return Sub()

    async def publish(self, subject: str, payload: bytes, reply: str = "",
                      headers: dict[str, str] | None = None) -> None:
        if self.fail:
            raise ConnectionError("not connected")
        self.published.append((subject, payload, reply))
        self.changed.set()

    async def answer(self, index: int, body: bytes) -> None:
        await self.cb(Msg(self.published[index][2], body))


async def _published(nc: Recording, n: int) -> None:
    while len(nc.published) < n:
        nc.changed.clear()
        await nc.changed.wait()


async def test_each_ack_goes_to_its_own_caller_in_any_order() -> None:
    nc = Recording()
    publisher = AckedPublisher(nc, timeout_s=5)  # type: ignore[arg-type]
    calls = [asyncio.create_task(publisher.publish("s", str(i).encode())) for i in range(3)]
    await _published(nc, 3)
    await nc.answer(2, b'{"seq":12}')
    await nc.answer(0, b'{"seq":10,"duplicate":true}')
    await nc.answer(1, b'{"error":{"description":"wrong last sequence"}}')
    assert await calls[0] == Ack(10, True)
    with pytest.raises(AckError, match="wrong last sequence"):
        await calls[1]
    assert await calls[2] == Ack(12, False)
    await nc.answer(2, b'{"seq":12}')  # a late copy finds nobody waiting: no error
    await publisher.close()


async def test_a_publish_without_an_ack_times_out_and_the_others_do_not(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log_publish, "SWEEP_SLACK_S", 0.0)
    nc = Recording()
    publisher = AckedPublisher(nc, timeout_s=0.05)  # type: ignore[arg-type]
    lost = asyncio.create_task(publisher.publish("s", b"lost"))
    kept = asyncio.create_task(publisher.publish("s", b"kept"))
    await _published(nc, 2)
    await nc.answer(1, b'{"seq":1}')
    assert await kept == Ack(1, False)
    with pytest.raises(AckError, match=r"no ack within 0\.05 s"):
        await lost
    assert not publisher._waiting and not publisher._deadlines
    assert publisher._timer is None  # nothing waits: no timer left armed


async def test_a_publish_that_could_not_be_sent_raises_the_drivers_error() -> None:
    nc = Recording(fail=True)
    publisher = AckedPublisher(nc, timeout_s=5)  # type: ignore[arg-type]
    with pytest.raises(ConnectionError):
        await publisher.publish("s", b"x")
    assert not publisher._waiting and publisher._timer is None


async def test_close_fails_what_still_waits() -> None:
    nc = Recording()
    publisher = AckedPublisher(nc, timeout_s=5)  # type: ignore[arg-type]
    call = asyncio.create_task(publisher.publish("s", b"x"))
    await _published(nc, 1)
    await publisher.close()
    with pytest.raises(AckError, match="closed"):
        await call
