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
    """What one viewer received: when it joined (its first ``hello``) and left (monotonic
    seconds), each post number it got once, how many it got twice, and the stretches of time
    it was told it cannot have (a ``recovered: false``, or a reconnection without a cursor)."""

    region: str
    stream: int
    transport: str
    joined: float
    left: float | None = None     # None: still watching
    seen: set[int] = field(default_factory=set)
    duplicates: int = 0
    gaps: list[tuple[float, float]] = field(default_factory=list)

    def receive(self, n: int) -> bool:
        """Records post ``n``; False when it is a duplicate."""
        if n in self.seen:
            self.duplicates += 1
            return False
        self.seen.add(n)
        return True

    def gap(self, since: float, until: float) -> None:
        """The viewer was told that what was acknowledged from ``since`` to ``until`` may be
        missing from its live feed (a real client pages it from history)."""
        self.gaps.append((since, until))

    def in_gap(self, at: float) -> bool:
        return any(since <= at <= until for since, until in self.gaps)


def left_at(now: float, *, run_ended: float | None, planned: float | None,
            gave_up_after: float | None) -> float:
    """When a viewer stopped watching: the run's end if the run ended it; else now, but no
    later than its life was planned to end (a controller late because the machine starved
    the run must not charge it with comments waiting unread on its socket), and, if it gave
    up reconnecting, no later than the end of its last connection (``gave_up_after``): it
    was not watching while it failed to come back."""
    if run_ended is not None:
        return run_ended
    return min(now, math.inf if planned is None else planned,
               math.inf if gave_up_after is None else gave_up_after)


def watched(timeline: Timeline, post: Post, settle_s: float) -> bool:
    """Whether ``timeline``'s viewer was watching all along while ``post`` was posted: its
    stream's, acknowledged, begun after the viewer's first ``hello`` and acknowledged at least
    ``settle_s`` before it left (a comment acknowledged as its viewer leaves is still on its
    way, not lost)."""
    if post.stream != timeline.stream or post.acked is None or post.began < timeline.joined:
        return False
    return timeline.left is None or post.acked <= timeline.left - settle_s


def expected(timeline: Timeline, posts: Iterable[Post], settle_s: float) -> set[int]:
    """The posts a viewer must have got: those it `watched`, outside the gaps it was told
    of."""
    return {post.n for post in posts if watched(timeline, post, settle_s)
            and not (timeline.in_gap(post.acked or 0.0) and post.n not in timeline.seen)}


def gapped(timeline: Timeline, posts: Iterable[Post], settle_s: float) -> set[int]:
    """The posts a viewer `watched` but did not get because a gap it was told of covers
    them: not owed live, and not a loss (G2 allows a gap that is said)."""
    return {post.n for post in posts if watched(timeline, post, settle_s)
            and post.n not in timeline.seen and timeline.in_gap(post.acked or 0.0)}


@dataclass(frozen=True)
class RegionLoss:
    """One viewer region's share of the accounting."""

    expected: int = 0
    missing: int = 0
    gapped: int = 0
    viewers_with_loss: int = 0


@dataclass(frozen=True)
class Accounting:
    expected: int
    missing: int
    duplicates: int
    viewers_with_loss: int
    missing_by_transport: dict[str, int] = field(default_factory=dict)
    gapped: int = 0
    by_region: dict[str, RegionLoss] = field(default_factory=dict)
    # Missing by (origin region, viewer region): which path lost them.
    missing_by_path: dict[tuple[str, str], int] = field(default_factory=dict)


def account(timelines: Iterable[Timeline], posts: Sequence[Post],
            settle_s: float) -> Accounting:
    """Missing: acknowledged, posted while its viewer watched (`watched`), not delivered, and
    not covered by a gap the viewer was told of. Counted in all and per viewer region."""
    by_stream: dict[int, list[Post]] = defaultdict(list)
    for post in posts:
        by_stream[post.stream].append(post)
    total = missing = dups = lossy = excused = 0
    by_transport: dict[str, int] = defaultdict(int)
    by_path: dict[tuple[str, str], int] = defaultdict(int)
    numbered = {post.n: post for post in posts}
    regions: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for timeline in timelines:
        mine = by_stream[timeline.stream]
        want = expected(timeline, mine, settle_s)
        lost = len(want - timeline.seen)
        told = len(gapped(timeline, mine, settle_s))
        total += len(want)
        missing += lost
        excused += told
        dups += timeline.duplicates
        lossy += lost > 0
        if lost:
            by_transport[timeline.transport] += lost
            for n in want - timeline.seen:
                by_path[(numbered[n].region, timeline.region)] += 1
        row = regions[timeline.region]
        row[0] += len(want)
        row[1] += lost
        row[2] += told
        row[3] += lost > 0
    return Accounting(expected=total, missing=missing, duplicates=dups, viewers_with_loss=lossy,
                      missing_by_transport=dict(by_transport), gapped=excused,
                      by_region={r: RegionLoss(*row) for r, row in sorted(regions.items())},
                      missing_by_path=dict(sorted(by_path.items())))


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
