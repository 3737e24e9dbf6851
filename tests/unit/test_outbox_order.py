"""The outbox keeps a region's comments in order at the destination when attempts fail: a
batch that was not taken is retried at the head of the line, and later batches wait behind
it instead of overtaking it (DESIGN G4; a flapping link used to scramble order by 33 s)."""

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
    """A destination's JetStream that refuses every publish until ``down_s`` have passed."""

    def __init__(self, down_s: float) -> None:
        self.up_at = time.monotonic() + down_s
        self.stored: list[str] = []
        self.attempts = 0

    async def publish(self, subject: str, data: bytes, headers: dict[str, str],
                      timeout: float) -> SimpleNamespace:  # noqa: ASYNC109 (nats-py's)
        self.attempts += 1
        await asyncio.sleep(0.001)
        if time.monotonic() < self.up_at:
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


def outbox(dest: FlakyDestination) -> Outbox:
    nc = SimpleNamespace(jetstream=lambda timeout=None: dest)
    return Outbox(nc, region="us-east", dest="eu-west",  # type: ignore[arg-type]
                  directory=EveryoneWatches(),  # type: ignore[arg-type]
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
