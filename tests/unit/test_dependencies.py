"""The health verdict on a dependency, from when it last answered (no I/O)."""

from __future__ import annotations

from region.dependencies import Freshness


def test_unknown_until_a_first_ping_finished() -> None:
    assert Freshness(down_after_s=10).up(0.0) is None


def test_up_while_it_answered_within_the_window() -> None:
    f = Freshness(down_after_s=10)
    f.observe(True, 100.0)
    assert f.up(100.0) is True
    # Pings that fail or time out on a busy loop do not flip it at once.
    f.observe(False, 103.0)
    f.observe(False, 107.0)
    assert f.up(109.9) is True
    assert f.up(110.1) is False
    f.observe(True, 111.0)
    assert f.up(111.0) is True


def test_down_when_it_never_answered() -> None:
    f = Freshness(down_after_s=10)
    f.observe(False, 1.0)
    assert f.up(1.0) is False
