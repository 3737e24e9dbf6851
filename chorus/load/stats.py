"""What a load run measured, summarised without I/O: latency percentiles per region pair,
loss and duplicates from each viewer's timeline, and per-second series for the plots."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

PERCENTILES = (50.0, 90.0, 99.0, 99.9)
MAX_SAMPLES = 1_000_000   # latencies kept in memory over the whole run; past it, counted only


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values (NaN when empty)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(round(p / 100 * len(sorted_values), 9)))  # 99.9 % of 1000: 999
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass(frozen=True)
class Post:
    """A comment the run posted: ``n`` is the run's own number, carried in its text."""

    n: int
    region: str
    stream: int
    began: float                  # monotonic seconds, just before the request
    acked: float | None = None    # when the 201 came back (None: refused or failed)


@dataclass
class Timeline:
    """What one viewer received: when it joined and left (monotonic seconds), each post
    number it got once, and how many it got twice."""

    region: str
    stream: int
    transport: str
    joined: float
    left: float | None = None     # None: stayed to the end
    seen: set[int] = field(default_factory=set)
    duplicates: int = 0

    def receive(self, n: int) -> bool:
        """Records post ``n``; False when it is a duplicate."""
        if n in self.seen:
            self.duplicates += 1
            return False
        self.seen.add(n)
        return True


def expected(timeline: Timeline, posts: Iterable[Post], settle_s: float) -> set[int]:
    """The posts a viewer must have got: its stream's, acknowledged, begun after it joined,
    and (if it left) acknowledged at least ``settle_s`` before it left."""
    out = set()
    for post in posts:
        if post.stream != timeline.stream or post.acked is None or post.began < timeline.joined:
            continue
        if timeline.left is not None and post.acked > timeline.left - settle_s:
            continue
        out.add(post.n)
    return out


@dataclass(frozen=True)
class Accounting:
    expected: int
    missing: int
    duplicates: int
    viewers_with_loss: int
    missing_by_transport: dict[str, int] = field(default_factory=dict)


def account(timelines: Iterable[Timeline], posts: Sequence[Post],
            settle_s: float) -> Accounting:
    by_stream: dict[int, list[Post]] = defaultdict(list)
    for post in posts:
        by_stream[post.stream].append(post)
    total = missing = dups = lossy = 0
    by_transport: dict[str, int] = defaultdict(int)
    for timeline in timelines:
        want = expected(timeline, by_stream[timeline.stream], settle_s)
        lost = len(want - timeline.seen)
        total += len(want)
        missing += lost
        dups += timeline.duplicates
        lossy += lost > 0
        if lost:
            by_transport[timeline.transport] += lost
    return Accounting(expected=total, missing=missing, duplicates=dups, viewers_with_loss=lossy,
                      missing_by_transport=dict(by_transport))


class Latencies:
    """Delivery latencies (seconds) per (origin region, viewer region), and per second of the
    run for the plots. Bounded by `MAX_SAMPLES` in all."""

    def __init__(self, max_samples: int = MAX_SAMPLES) -> None:
        self.samples: dict[tuple[str, str], list[float]] = defaultdict(list)
        self.by_second: dict[tuple[str, str], dict[int, list[float]]] = defaultdict(
            lambda: defaultdict(list))
        self.kept = 0
        self.dropped = 0
        self.max_samples = max_samples

    def add(self, origin: str, region: str, second: int, latency_s: float) -> None:
        if self.kept >= self.max_samples:
            self.dropped += 1
            return
        self.kept += 1
        self.samples[(origin, region)].append(latency_s)
        self.by_second[(origin, region)][second].append(latency_s)

    def summary(self) -> dict[tuple[str, str], dict[str, float]]:
        """n, max and each of `PERCENTILES` (seconds) per pair."""
        out = {}
        for pair, values in sorted(self.samples.items()):
            ordered = sorted(values)
            row = {"n": float(len(ordered)), "max": ordered[-1] if ordered else math.nan}
            for p in PERCENTILES:
                row[f"p{p:g}"] = percentile(ordered, p)
            out[pair] = row
        return out

    def series(self, p: float) -> dict[tuple[str, str], list[tuple[int, float]]]:
        """Per pair: (second, the p-th percentile of that second's latencies)."""
        return {pair: [(s, percentile(sorted(v), p)) for s, v in sorted(seconds.items())]
                for pair, seconds in sorted(self.by_second.items())}
