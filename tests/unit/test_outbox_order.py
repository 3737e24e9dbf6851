"""The outbox keeps a region's comments in order at the destination when attempts fail: a
batch that was not taken is retried in the line's order (after the batches fetched before it,
before those fetched after it), and a retry sends one comment before the rest (DESIGN G4; a
flapping link used to scramble order by 33 s)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from types import SimpleNamespace

import pytest
from nats.errors import TimeoutError as NatsTimeout

import global_.outbox as outbox_module
from chorus.durable import Delivery
from chorus.metrics import Metrics
from chorus.model import Comment
from global_.outbox import Outbox
from global_.presence import Answer


class FlakyDestination:
    """A destination's JetStream that refuses every publish until ``down_s`` have passed,
    then the next ``refused_after`` publishes (a link whose first messages back find no
    route yet), and that holds the publishes of comments in ``slow`` for ``slow_s`` before
    refusing them (lost in a link as it was cut: only the publish timeout tells)."""

    def __init__(self, down_s: float, *, refused_after: int = 0,
                 slow: frozenset[str] = frozenset(), slow_s: float = 0.0) -> None:
        self.up_at = time.monotonic() + down_s
        self.refused_after = refused_after
        self.slow = set(slow)
        self.slow_s = slow_s
        self.stored: list[str] = []
        self.attempts = 0
        self.refused = asyncio.Event()

    async def publish(self, subject: str, data: bytes, headers: dict[str, str],
                      timeout: float) -> SimpleNamespace:  # noqa: ASYNC109 (nats-py's)
        self.attempts += 1
        cid = headers["Nats-Msg-Id"]
        if cid in self.slow:
            self.slow.discard(cid)
            await asyncio.sleep(self.slow_s)
            raise NatsTimeout
        await asyncio.sleep(0.001)
        if time.monotonic() < self.up_at:
            self.refused.set()
            raise NatsTimeout
        if self.refused_after > 0:
            self.refused_after -= 1
            raise NatsTimeout
        self.stored.append(headers["Nats-Msg-Id"])
        return SimpleNamespace(domain=None)


class EveryoneWatches:
    async def viewers_of(self, streams: Iterable[str], region: str) -> dict[str, Answer]:
        return {stream: Answer(region, None) for stream in streams}


class Msg:
    def __init__(self) -> None:
        self.in_progress_calls = 0

    async def in_progress(self) -> None:
        self.in_progress_calls += 1


def delivery(n: int) -> Delivery:
    comment = Comment(f"{n:012x}0000-us-east.0", "s", "us-east", "u", "U", f"c{n}", n)
    return Delivery(Msg(), comment)  # type: ignore[arg-type]


def outbox(dest: FlakyDestination, directory: object | None = None) -> Outbox:
    nc = SimpleNamespace(jetstream=lambda timeout=None: dest)
    return Outbox(nc, region="us-east", dest="eu-west",  # type: ignore[arg-type]
                  directory=directory or EveryoneWatches(),  # type: ignore[arg-type]
                  metrics=Metrics("us-east", "0"))


async def test_batches_that_met_a_cut_arrive_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_module, "BACKOFF_MIN_S", 0.01)
    monkeypatch.setattr(outbox_module, "BACKOFF_MAX_S", 0.05)
    dest = FlakyDestination(down_s=0.3)
    box = outbox(dest)
    batches = [[delivery(10 * b + i) for i in range(3)] for b in range(8)]
    # The worker hands batches over one after the other, each while the others are in flight.
    tasks = []
    for batch in batches:
        tasks.append(asyncio.create_task(box.forward(batch)))
        await asyncio.sleep(0.02)
    results = await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert all(r == () for r in results)          # everything done: the worker acks it all
    expected = [d.comment.id for batch in batches for d in batch]
    assert sorted(dest.stored) == sorted(expected)
    # Every batch met the cut; each waited behind the one before, so none overtook another.
    assert dest.stored == expected


async def test_a_destination_that_answers_at_once_is_not_held_up() -> None:
    dest = FlakyDestination(down_s=0.0)
    box = outbox(dest)
    assert await box.forward([delivery(1), delivery(2)]) == ()
    assert dest.stored == [delivery(1).comment.id, delivery(2).comment.id]
    assert dest.attempts == 2


async def test_a_batch_lost_in_the_cut_goes_before_the_younger_ones_that_failed_first(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The first batch's publish vanished in the link as it was cut (its timeout comes late);
    # the next ones found no route at once and were first on the retry path. The line, not
    # the order of the failures, decides who goes first.
    monkeypatch.setattr(outbox_module, "BACKOFF_MIN_S", 0.01)
    monkeypatch.setattr(outbox_module, "BACKOFF_MAX_S", 0.05)
    batches = [[delivery(10 * b + i) for i in range(2)] for b in range(4)]
    dest = FlakyDestination(down_s=0.2, slow=frozenset({batches[0][0].comment.id}),
                            slow_s=0.3)
    box = outbox(dest)
    tasks = []
    for batch in batches:
        tasks.append(asyncio.create_task(box.forward(batch)))
        await asyncio.sleep(0.01)
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    assert dest.stored == [d.comment.id for batch in batches for d in batch]


async def test_a_retry_sends_one_comment_before_the_rest(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Back, but the first publish after the cut still finds no route: sent all at once, the
    # batch's end would be stored before its start. Counted in publishes, not in time (a
    # loaded machine could start the first attempt after a short outage was over): the
    # batch's five and the retry's first are refused.
    monkeypatch.setattr(outbox_module, "BACKOFF_MIN_S", 0.01)
    monkeypatch.setattr(outbox_module, "BACKOFF_MAX_S", 0.05)
    dest = FlakyDestination(down_s=0.0, refused_after=6)
    batch = [delivery(i) for i in range(5)]
    assert await asyncio.wait_for(outbox(dest).forward(batch), 10) == ()
    assert dest.stored == [d.comment.id for d in batch]


async def test_a_batch_handed_over_while_another_is_retried_waits_for_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_module, "BACKOFF_MIN_S", 0.01)
    monkeypatch.setattr(outbox_module, "BACKOFF_MAX_S", 0.05)
    dest = FlakyDestination(down_s=0.2)
    box = outbox(dest)
    first = asyncio.create_task(box.forward([delivery(1)]))
    await asyncio.wait_for(dest.refused.wait(), 5)    # the first batch is on the retry path
    late = [delivery(2)]
    assert await asyncio.wait_for(box.forward(late), 10) == ()
    await first
    assert dest.stored == [delivery(1).comment.id, delivery(2).comment.id]


async def test_the_line_lets_a_batch_go_once_every_older_one_has_left() -> None:
    line = outbox_module.Line()
    a, b, c = line.enter(), line.enter(), line.enter()
    waiting = asyncio.create_task(line.first(c))
    line.leave(b)
    await asyncio.sleep(0)
    assert not waiting.done()           # a is still out
    line.leave(a)
    await asyncio.wait_for(waiting, 1)
    await asyncio.wait_for(line.first(a), 1)   # nothing is older than the first
    line.leave(c)
    assert len(line) == 0


class SlowAnswerFor:
    """A presence directory that answers at once, except about ``stream``: that answer
    waits until ``release`` is set (a question not in the cache, a round trip away)."""

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self.release = asyncio.Event()
        self.asked = asyncio.Event()

    async def viewers_of(self, streams: Iterable[str], region: str) -> dict[str, Answer]:
        streams = list(streams)
        if self.stream in streams:
            self.asked.set()
            await self.release.wait()
        return {stream: Answer(region, None) for stream in streams}


async def test_a_batch_whose_answers_were_cached_does_not_overtake_one_still_asking() -> None:
    # Found draining a backlog into 200 streams: whole batches stored after younger ones.
    dest = FlakyDestination(down_s=0.0)
    directory = SlowAnswerFor("slow")
    box = outbox(dest, directory)
    older = [Delivery(Msg(), Comment(f"{n:012x}0000-us-east.0", "slow", "us-east", "u", "U",  # type: ignore[arg-type]
                                     f"c{n}", n)) for n in (1, 2)]
    younger = [delivery(3), delivery(4)]
    first = asyncio.create_task(box.forward(older))
    await asyncio.wait_for(directory.asked.wait(), 5)
    second = asyncio.create_task(box.forward(younger))
    # The younger batch has its answers; it waits for the older one's turn, publishing
    # nothing until the older batch's question is answered.
    done, _ = await asyncio.wait({second}, timeout=0.2)
    assert not done and dest.attempts == 0
    directory.release.set()
    assert await asyncio.wait_for(first, 5) == () and await asyncio.wait_for(second, 5) == ()
    assert dest.stored == [d.comment.id for d in older + younger]


async def test_the_line_lets_a_batch_publish_once_every_older_one_has_sent_or_left() -> None:
    line = outbox_module.Line()
    a, b, c = line.enter(), line.enter(), line.enter()
    waiting = asyncio.create_task(line.turn(c))
    line.sent(b)
    await asyncio.sleep(0)
    assert not waiting.done()           # a has not queued its publishes yet
    line.sent(a)
    await asyncio.wait_for(waiting, 1)
    assert len(line) == 3               # sent is not left: the retry path still waits (first)
    for t in (a, b, c):
        line.leave(t)
    await asyncio.wait_for(line.turn(line.enter()), 1)
