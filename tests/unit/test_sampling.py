"""The sample a sampled stream's viewers share: at most ``per_s`` a second whatever the rate,
spread uniformly over each second, the priority lane always, shadow-banned comments never."""

from __future__ import annotations

import random
from collections import Counter

from chorus.model import Badge, Comment
from region.sampling import ReplayThinner, Sampler, SecondStats, Verdict, priority


def comment(n: int, *, user: str = "u", badge: Badge = "", shadow: bool = False,
            ts: int = 0) -> Comment:
    return Comment(id=f"{n:016x}-us-east.0", stream="s", region="us-east", user=user,
                   name=user, text=f"c{n}", ts=ts, badge=badge, shadow=shadow)


def flood(sampler: Sampler, per_s: int, seconds: int, start: float = 100.0
          ) -> list[list[int]]:
    """``per_s`` comments a second, evenly spread; the positions in each second of the ones
    sampled."""
    out = []
    n = 0
    for s in range(seconds):
        taken = []
        for i in range(per_s):
            n += 1
            if sampler.offer(comment(n), start + s + i / per_s) is Verdict.SAMPLED:
                taken.append(i)
        out.append(taken)
    return out


def test_a_viewer_gets_at_most_per_s_comments_a_second_whatever_the_rate() -> None:
    for rate in (5, 50, 200, 5000):
        sampler = Sampler(10, rng=random.Random(rate))
        seconds = flood(sampler, rate, 6)
        assert all(len(taken) <= 10 for taken in seconds), rate
        # Once the rate is counted, the budget is used (and no more than it).
        assert all(len(taken) >= min(rate, 9) for taken in seconds[1:]), (rate, seconds)


def test_the_sample_is_spread_over_the_whole_second_not_its_first_comments() -> None:
    sampler = Sampler(10, rng=random.Random(7))
    positions = Counter()
    for taken in flood(sampler, 200, 400)[1:]:
        for i in taken:
            positions[i * 10 // 200] += 1    # which tenth of the second
    total = sum(positions.values())
    # Uniform: each tenth holds about a tenth of the sample (a test of ~4000 draws).
    assert all(abs(positions[d] / total - 0.1) < 0.02 for d in range(10)), positions


def test_every_comment_of_a_second_has_the_same_chance() -> None:
    sampler = Sampler(5, rng=random.Random(3))
    hits = Counter()
    for taken in flood(sampler, 50, 2000)[1:]:
        hits.update(taken)
    expected = sum(hits.values()) / 50
    assert all(abs(hits[i] - expected) < 0.25 * expected for i in range(50)), hits


def test_the_priority_lane_always_passes_and_does_not_use_the_budget() -> None:
    sampler = Sampler(2, expected=1000, rng=random.Random(1))
    verdicts = [sampler.offer(comment(i, badge="host" if i % 10 == 0 else ""), 5.0 + i / 1000)
                for i in range(1000)]
    assert all(v is Verdict.PRIORITY for i, v in enumerate(verdicts) if i % 10 == 0)
    assert sum(v is Verdict.SAMPLED for v in verdicts) <= 2
    assert all(priority(comment(0, badge=b)) for b in ("host", "moderator", "verified"))
    assert not priority(comment(0))


def test_a_shadow_banned_comment_is_never_in_the_sample() -> None:
    sampler = Sampler(10, rng=random.Random(1))
    assert sampler.offer(comment(1, shadow=True), 1.0) is Verdict.HIDDEN
    assert sampler.offer(comment(2, shadow=True, badge="verified"), 1.0) is Verdict.HIDDEN


def test_each_second_says_what_it_stood_for() -> None:
    sampler = Sampler(3, rng=random.Random(1))
    for i in range(20):
        sampler.offer(comment(i, badge="host" if i == 0 else ""), 10.0 + i / 20)
    assert sampler.stats(10.5) == SecondStats(shown=0, posted=0)     # second 9: nothing
    stats = sampler.stats(11.2)
    assert stats.posted == 20 and stats.shown == 4                   # 3 sampled + 1 host
    assert sampler.stats(13.0) == SecondStats(shown=0, posted=0)     # a quiet second


def test_a_replay_is_thinned_like_the_live_sample_but_keeps_ones_own() -> None:
    thinner = ReplayThinner("me", 2, expected=100, rng=random.Random(1))
    shown = [thinner.shows(comment(i, user="me" if i % 25 == 0 else "u", ts=1000 + i * 10))
             for i in range(100)]                       # 100 comments over one second
    assert all(shown[i] for i in range(0, 100, 25))     # one's own: all 4
    assert sum(shown) <= 4 + 2
