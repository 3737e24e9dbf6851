"""The one retry policy (chorus/backoff.py): the n-th wait is uniform in [d/2, d] with
d = min(first_s * 2**n, max_s)."""

from __future__ import annotations

import random

import pytest

from chorus.backoff import Backoff


def ceilings(first_s: float, max_s: float, n: int) -> list[float]:
    return [min(first_s * 2**i, max_s) for i in range(n)]


def test_each_wait_lies_between_half_its_ceiling_and_its_ceiling() -> None:
    for seed in range(50):
        backoff = Backoff(first_s=0.2, max_s=10.0, rng=random.Random(seed))
        for ceiling in ceilings(0.2, 10.0, 12):
            assert ceiling / 2 <= backoff.next() <= ceiling


def test_the_ceiling_doubles_up_to_the_cap_and_stays_there() -> None:
    # An rng that always picks the top of the range shows the ceilings themselves.
    class Top(random.Random):
        def uniform(self, a: float, b: float) -> float:
            return b

    backoff = Backoff(first_s=0.25, max_s=3.0, rng=Top())
    assert [backoff.next() for _ in range(8)] == [0.25, 0.5, 1.0, 2.0, 3.0, 3.0, 3.0, 3.0]


def test_a_long_outage_neither_overflows_nor_exceeds_the_cap() -> None:
    backoff = Backoff(first_s=0.2, max_s=10.0, rng=random.Random(3))
    waits = [backoff.next() for _ in range(1000)]
    assert all(5.0 <= w <= 10.0 for w in waits[10:])


def test_reset_starts_over_at_the_first_wait() -> None:
    backoff = Backoff(first_s=0.2, max_s=10.0, rng=random.Random(1))
    for _ in range(6):
        backoff.next()
    backoff.reset()
    assert 0.1 <= backoff.next() <= 0.2
    assert 0.2 <= backoff.next() <= 0.4


def test_jitter_spreads_over_the_whole_upper_half() -> None:
    # Two gateways that fail together must not retry together: waits spread over [d/2, d].
    waits = [Backoff(first_s=1.0, max_s=1.0, rng=random.Random(seed)).next()
             for seed in range(500)]
    assert min(waits) < 0.55 and max(waits) > 0.95
    assert len({round(w, 6) for w in waits}) > 450


def test_a_seeded_rng_gives_the_same_waits() -> None:
    a = Backoff(first_s=0.2, max_s=10.0, rng=random.Random(42))
    b = Backoff(first_s=0.2, max_s=10.0, rng=random.Random(42))
    assert [a.next() for _ in range(10)] == [b.next() for _ in range(10)]


@pytest.mark.parametrize(("first_s", "max_s"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_nonsense_bounds_are_refused(first_s: float, max_s: float) -> None:
    with pytest.raises(ValueError, match="first_s"):
        Backoff(first_s=first_s, max_s=max_s)


async def test_wait_sleeps_the_wait_it_returns() -> None:
    backoff = Backoff(first_s=0.002, max_s=0.002, rng=random.Random(0))
    expected = Backoff(first_s=0.002, max_s=0.002, rng=random.Random(0)).next()
    assert await backoff.wait() == expected
