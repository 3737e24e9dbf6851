"""region/replay_trim.py: which writes of the replay cache trim their key."""

from __future__ import annotations

from region.replay_trim import Trims


def test_a_key_is_trimmed_at_its_first_write_then_once_an_eighth_of_its_window_came() -> None:
    trims = Trims(age_s=1.0, share=8)
    assert trims.due("k", 1, keep=80, now=0.0)          # new: gets its expiry at once
    due = [trims.due("k", 3, keep=80, now=0.1) for _ in range(6)]
    # 3, 6, 9, 12 added since the trim: the fourth write passes 80 // 8 = 10, then anew
    assert due == [False, False, False, True, False, False]


def test_a_key_written_to_is_trimmed_at_least_once_per_age() -> None:
    trims = Trims(age_s=1.0, share=8)
    assert trims.due("k", 1, keep=1000, now=0.0)
    assert not trims.due("k", 1, keep=1000, now=0.5)
    assert trims.due("k", 1, keep=1000, now=1.0)
    assert not trims.due("k", 1, keep=1000, now=1.9)


def test_keys_are_counted_apart() -> None:
    trims = Trims(age_s=1.0, share=2)
    assert trims.due("a", 1, keep=4, now=0.0) and trims.due("b", 1, keep=4, now=0.0)
    assert not trims.due("a", 1, keep=4, now=0.1)
    assert trims.due("a", 1, keep=4, now=0.1)            # 2 since: 4 // 2
    assert not trims.due("b", 1, keep=4, now=0.1)


def test_a_tiny_window_is_trimmed_at_every_write() -> None:
    trims = Trims(age_s=1.0, share=8)
    assert all(trims.due("k", 1, keep=3, now=0.0) for _ in range(5))


def test_the_memory_keeps_only_recent_keys_and_is_bounded() -> None:
    trims = Trims(age_s=1.0, share=8, max_keys=3)
    for n in range(3):
        trims.due(f"k{n}", 1, keep=100, now=0.0)
    trims.prune(0.5)
    assert len(trims) == 3                                # all trimmed within the age
    trims.due("k3", 1, keep=100, now=0.8)
    trims.prune(1.2)
    assert len(trims) == 1                                # k0-k2 forgotten: they trim next
    assert trims.due("k0", 1, keep=100, now=1.2)
    for n in range(10):
        trims.due(f"x{n}", 1, keep=100, now=1.3)
    trims.prune(1.3)                                      # over max_keys: dropped at once
    assert len(trims) == 0
