"""The durable-consumer worker (chorus/durable.py) without NATS: `sort_batch` on plain
messages, and `DurableWorker.process` driving fake messages that record what the worker told
JetStream about each (ack, in progress, term)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, cast

import pytest
from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js.client import JetStreamContext

from chorus.durable import ConsumerSpec, Delivery, DurableWorker, sort_batch
from chorus.errors import Unavailable
from chorus.ids import IdGenerator
from chorus.model import Comment

REGION = "us-east"


class FakeMsg:
    """What the worker uses of a JetStream message; every call lands in the shared ``events``
    as (what, subject), so a test can check the order of acknowledgements."""

    def __init__(self, subject: str, data: bytes, events: list[tuple[str, str]],
                 on_ack: Callable[[], None]) -> None:
        self.subject = subject
        self.data = data
        self.events = events
        self.on_ack = on_ack

    async def ack(self) -> None:
        self.events.append(("ack", self.subject))
        self.on_ack()

    async def in_progress(self) -> None:
        self.events.append(("in_progress", self.subject))

    async def term(self) -> None:
        self.events.append(("term", self.subject))

    async def nak(self) -> None:
        self.events.append(("nak", self.subject))


class Batch:
    """A batch of fake messages: ``own`` comments of this region (subjects own-0, own-1,
    ...), then optionally another region's and a message that is not a comment."""

    def __init__(self, own: int, *, foreign: int = 0, bad: int = 0) -> None:
        self.events: list[tuple[str, str]] = []
        self._ack_count = 0
        self._ack_event = asyncio.Event()
        gen = IdGenerator(f"{REGION}.0")
        other = IdGenerator("eu-west.0")
        self.msgs: list[FakeMsg] = []
        for i in range(own):
            self.msgs.append(FakeMsg(f"own-{i}", comment(gen.next(), REGION).encode(),
                                     self.events, self._acked))
        for i in range(foreign):
            self.msgs.append(FakeMsg(f"foreign-{i}", comment(other.next(), "eu-west").encode(),
                                     self.events, self._acked))
        for i in range(bad):
            self.msgs.append(FakeMsg(f"bad-{i}", b"{not json", self.events, self._acked))

    def _acked(self) -> None:
        self._ack_count += 1
        self._ack_event.set()

    async def acked(self, n: int) -> None:
        """Returns once ``n`` messages of the batch are acknowledged."""
        while self._ack_count < n:
            self._ack_event.clear()
            await self._ack_event.wait()

    def of(self, what: str) -> list[str]:
        return [subject for kind, subject in self.events if kind == what]

    def as_msgs(self) -> Sequence[Msg]:
        return cast(Sequence[Msg], self.msgs)


def comment(comment_id: str, region: str) -> Comment:
    return Comment(id=comment_id, stream="s", region=region, user="ana", name="Ana",
                   text="hi", ts=0)


class Recorder:
    """A handler whose answers are scripted per call: "all" (finished everything), "none"
    (kept everything), "raise" (Unavailable), "bug" (RuntimeError), or an int n (finished
    the first n)."""

    def __init__(self, *script: str | int) -> None:
        self.script = list(script)
        self.calls: list[list[str]] = []

    async def __call__(self, deliveries: Sequence[Delivery]) -> Sequence[Delivery]:
        self.calls.append([d.msg.subject for d in deliveries])
        step = self.script.pop(0)
        if step == "all":
            return ()
        if step == "none":
            return deliveries
        if step == "raise":
            raise Unavailable("the store is down")
        if step == "bug":
            raise RuntimeError("a bug")
        assert isinstance(step, int)
        return deliveries[step:]


def worker(handler: Recorder, *, in_flight: int = 1, **hooks: Any) -> DurableWorker:
    spec = ConsumerSpec(durable="test", filter_subject="cmt.us-east.>", ack_wait_s=30.0,
                        max_ack_pending=100, batch=10, in_flight=in_flight)
    # process() never touches NATS; a tiny backoff keeps retries instant.
    return DurableWorker(cast(Nats, None), spec, REGION, handler, name="test",
                         backoff_first_s=0.001, backoff_max_s=0.001, **hooks)


# -- sort_batch -----------------------------------------------------------------------------------


def test_a_batch_is_sorted_into_own_foreign_and_bad() -> None:
    gen = IdGenerator(f"{REGION}.0")
    mine = comment(gen.next(), REGION)
    theirs = comment(IdGenerator("eu-west.0").next(), "eu-west")
    bad_id = comment("not-an-id", REGION)
    msgs = [Msg(_client=None, subject="cmt.us-east.s", data=d)  # type: ignore[arg-type]
            for d in (mine.encode(), theirs.encode(), b"{nope", b'{"id": 1}', bad_id.encode(),
                      mine.encode(), b"\xff\xfe", b"[1, 2]")]
    batch = sort_batch(msgs, REGION)
    # A repeat is handed over again: the handler's writes are idempotent.
    assert [d.comment for d in batch.own] == [mine, mine]
    assert [d.msg for d in batch.own] == [msgs[0], msgs[5]]
    assert batch.foreign == (msgs[1],)
    assert batch.bad == (msgs[2], msgs[3], msgs[4], msgs[6], msgs[7])


def test_a_comment_claiming_this_region_is_ours_whatever_its_subject() -> None:
    # The region field decides (the origin archives and forwards), not where it was stored.
    mine = comment(IdGenerator(f"{REGION}.3").next(), REGION)
    msg = Msg(_client=None, subject="cmt.eu-west.s", data=mine.encode())  # type: ignore[arg-type]
    assert [d.comment for d in sort_batch([msg], REGION).own] == [mine]
    assert sort_batch([msg], "eu-west").foreign == (msg,)


# -- DurableWorker.process ------------------------------------------------------------------------


async def test_a_finished_batch_is_acknowledged_once_and_never_kept() -> None:
    batch = Batch(3)
    handler = Recorder("all")
    w = worker(handler)
    await w.process(batch.as_msgs())
    assert handler.calls == [["own-0", "own-1", "own-2"]]
    assert batch.events == [("ack", "own-0"), ("ack", "own-1"), ("ack", "own-2")]
    assert (w.stats.handled, w.stats.retries, w.stats.failing) == (3, 0, False)


async def test_a_handler_that_fails_then_succeeds_gets_the_batch_again() -> None:
    batch = Batch(2)
    handler = Recorder("none", "all")
    retries: list[None] = []
    w = worker(handler, on_retry=lambda: retries.append(None))
    await w.process(batch.as_msgs())
    assert handler.calls == [["own-0", "own-1"], ["own-0", "own-1"]]
    # Kept in progress while waiting (so JetStream does not hand it to another gateway),
    # acknowledged only once done.
    assert batch.events == [("in_progress", "own-0"), ("in_progress", "own-1"),
                            ("ack", "own-0"), ("ack", "own-1")]
    assert (w.stats.handled, w.stats.retries, len(retries)) == (2, 1, 1)
    assert not w.stats.failing


async def test_unavailable_means_nothing_was_done_and_the_batch_is_retried() -> None:
    batch = Batch(2)
    handler = Recorder("raise", "raise", "all")
    w = worker(handler)
    await w.process(batch.as_msgs())
    assert len(handler.calls) == 3 and all(c == ["own-0", "own-1"] for c in handler.calls)
    assert batch.of("in_progress") == ["own-0", "own-1", "own-0", "own-1"]
    assert batch.of("ack") == ["own-0", "own-1"]
    assert batch.events[-2:] == [("ack", "own-0"), ("ack", "own-1")]
    assert w.stats.retries == 2 and w.stats.last_error == "the store is down"
    assert not w.stats.failing


async def test_what_the_handler_finished_is_acknowledged_at_once_and_only_the_rest_retried(
) -> None:
    batch = Batch(4)
    handler = Recorder(1, 2, "all")
    w = worker(handler)
    await w.process(batch.as_msgs())
    assert handler.calls == [["own-0", "own-1", "own-2", "own-3"],
                             ["own-1", "own-2", "own-3"],
                             ["own-3"]]
    assert batch.events == [
        ("ack", "own-0"),
        ("in_progress", "own-1"), ("in_progress", "own-2"), ("in_progress", "own-3"),
        ("ack", "own-1"), ("ack", "own-2"),
        ("in_progress", "own-3"),
        ("ack", "own-3"),
    ]
    assert (w.stats.handled, w.stats.retries) == (4, 2)


async def test_foreign_comments_are_acknowledged_untouched_and_bad_ones_terminated() -> None:
    batch = Batch(1, foreign=2, bad=1)
    handler = Recorder("all")
    bad: list[int] = []
    w = worker(handler, on_bad=bad.append)
    await w.process(batch.as_msgs())
    assert handler.calls == [["own-0"]]  # the handler sees this region's own only
    assert batch.of("term") == ["bad-0"]
    assert batch.of("ack") == ["own-0", "foreign-0", "foreign-1"]
    assert bad == [1]
    assert (w.stats.handled, w.stats.foreign, w.stats.bad) == (1, 2, 1)


async def test_a_batch_without_own_comments_never_calls_the_handler() -> None:
    batch = Batch(0, foreign=1)
    handler = Recorder()
    w = worker(handler)
    await w.process(batch.as_msgs())
    assert handler.calls == [] and batch.of("ack") == ["foreign-0"]


async def test_a_bug_in_the_handler_surfaces_and_acknowledges_nothing() -> None:
    batch = Batch(2, foreign=1)
    w = worker(Recorder("bug"))
    with pytest.raises(RuntimeError, match="a bug"):
        await w.process(batch.as_msgs())
    # Unacknowledged, the batch is redelivered once the gateway restarts.
    assert batch.of("ack") == [] and batch.of("in_progress") == []


def test_a_backoff_that_outlasts_half_the_ack_wait_is_refused() -> None:
    spec = ConsumerSpec(durable="test", filter_subject="cmt.us-east.>", ack_wait_s=10.0,
                        max_ack_pending=100, batch=10)
    with pytest.raises(ValueError, match="ack_wait_s"):
        DurableWorker(cast(Nats, None), spec, REGION, Recorder(), name="test",
                      backoff_max_s=6.0)


class QuietSub:
    """A pull subscription that hands over ``batches``, then has nothing new, forever."""

    def __init__(self, *batches: Sequence[Msg]) -> None:
        self.batches = list(batches)
        self.fetches = 0

    async def fetch(self, batch: int, timeout: float) -> Sequence[Msg]:  # noqa: ASYNC109 (nats-py's)
        self.fetches += 1
        await asyncio.sleep(0)  # let the batches in flight run, as a real fetch would
        if self.batches:
            return self.batches.pop(0)
        raise NatsTimeout


async def test_a_bug_in_a_concurrent_batch_ends_the_worker_even_on_a_quiet_log() -> None:
    batch = Batch(1)
    sub = QuietSub(batch.as_msgs())
    w = worker(Recorder("bug"), in_flight=4)
    consume = w._consume(cast(JetStreamContext.PullSubscription, sub))
    with pytest.raises(RuntimeError, match="a bug"):
        await asyncio.wait_for(consume, timeout=5)
    assert sub.fetches < 10


async def test_concurrent_batches_are_each_acknowledged() -> None:
    first, second = Batch(2), Batch(1)
    sub = QuietSub(first.as_msgs(), second.as_msgs())
    w = worker(Recorder("all", "all"), in_flight=2)
    task = asyncio.create_task(w._consume(cast(JetStreamContext.PullSubscription, sub)))
    try:
        await asyncio.wait_for(asyncio.gather(first.acked(2), second.acked(1)), timeout=5)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert first.of("ack") == ["own-0", "own-1"] and second.of("ack") == ["own-0"]


async def test_a_stopped_worker_hands_back_what_it_had_not_done_in_order() -> None:
    # Cancelled mid-batch (a gateway stopping, or losing the outbox's lease): what is not
    # acknowledged goes back to JetStream at once, for the next worker to take first, rather
    # than after ack_wait_s behind what that worker sent meanwhile.
    stuck = asyncio.Event()

    async def handler(deliveries: Sequence[Delivery]) -> Sequence[Delivery]:
        if len(deliveries) == 3:
            return deliveries[1:]        # the first is done
        stuck.set()
        await asyncio.Event().wait()     # the rest hangs until the worker is cancelled
        return ()

    batch = Batch(own=3, foreign=1)
    w = DurableWorker(cast(Nats, None), worker(Recorder()).spec, REGION, handler, name="test",
                      backoff_first_s=0.001, backoff_max_s=0.001)
    task = asyncio.create_task(w.process(batch.as_msgs()))
    await asyncio.wait_for(stuck.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert batch.of("ack") == ["own-0"]
    assert batch.of("nak") == ["own-1", "own-2"]
