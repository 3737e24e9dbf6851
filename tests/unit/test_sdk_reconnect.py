"""The watch loop's wait before reconnecting (chorus/sdk/reconnect.py): the backoff starts
over only after a hello, and the server's hints are a floor under it."""

from __future__ import annotations

import random

from chorus.backoff import Backoff
from chorus.sdk.reconnect import CLOSE_RETRY_S, HINT_MAX_S, Attempt, wait_after


def backoff() -> Backoff:
    return Backoff(first_s=0.1, max_s=5.0, rng=random.Random(7))


def test_attempts_that_never_said_hello_keep_the_backoff_growing() -> None:
    b = backoff()
    waits = [wait_after(Attempt(), b) for _ in range(6)]
    ceilings = [min(0.1 * 2 ** n, 5.0) for n in range(6)]
    assert all(c / 2 <= w <= c for w, c in zip(waits, ceilings, strict=True))
    assert waits[-1] >= 1.6


def test_a_hello_starts_the_backoff_over() -> None:
    b = backoff()
    for _ in range(6):
        wait_after(Attempt(), b)
    assert 0.05 <= wait_after(Attempt(hello=True), b) <= 0.1


def test_close_codes_and_retry_after_are_a_floor() -> None:
    assert wait_after(Attempt(close_code=4429), backoff()) >= CLOSE_RETRY_S[4429] == 5.0
    assert wait_after(Attempt(close_code=4503), backoff()) >= 1.0
    assert wait_after(Attempt(retry_after_s=7), backoff()) >= 7
    # A hint does not hold the backoff back: it still grows underneath.
    b = backoff()
    wait_after(Attempt(close_code=4429), b)
    assert b.attempt == 1
    # Codes without a hint, and a hello's bye with one, as the hint says.
    assert wait_after(Attempt(close_code=4408), backoff()) <= 0.1
    assert wait_after(Attempt(hello=True, close_code=1001, retry_after_s=2), backoff()) >= 2


def test_a_hint_is_bounded() -> None:
    assert wait_after(Attempt(retry_after_s=86_400), backoff()) == HINT_MAX_S
    assert wait_after(Attempt(retry_after_s=float("inf")), backoff()) <= 0.1
    assert wait_after(Attempt(retry_after_s=-3), backoff()) <= 0.1
