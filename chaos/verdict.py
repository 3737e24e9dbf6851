"""What a drill found, from what its clients recorded: counts, bounds, pass or fail. Pure.

Inputs are plain values the workload recorded (chaos/workload.py): every post and its
outcome, every viewer's final timeline and what arrived when. The checks are the guarantees
of DESIGN.md as a drill can see them from outside:

- G1: every acknowledged comment is in every viewer's timeline (``missing``);
- G2/G3: no comment rendered twice (two ids with one post's text: a retry stored twice) and
  no gap left in a timeline (``gaps``);
- G3: viewers of a region that went down moved elsewhere, 99 % of them within
  `FAILOVER_BOUND_S` (``failover_s``);
- G4: within the bounds a drill sets, no comment arrived later than its fault allowed
  (``max_late_ms``) or further out of its origin's order (``max_disorder_ms``) than a client's
  reorder window can hide.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

FAILOVER_BOUND_S = 10.0   # the promise: 99 % of a dead region's viewers within this
REORDER_WINDOW_MS = 5000  # the SDK's (chorus/sdk/history.py): disorder below it is invisible


@dataclass(frozen=True)
class Post:
    """One post of the workload. ``outcome``: "acked" (the system took it, ``id`` set),
    "unknown" (the SDK could not learn whether its region stored it), "refused"."""

    text: str
    region: str          # where the poster was told to post (its home region)
    outcome: str
    id: str | None = None


@dataclass(frozen=True)
class Arrival:
    """One comment reaching one viewer: ``at_s`` seconds since the drill began (monotonic),
    ``late_ms`` from its origin's clock to the viewer's (same machine, or synced clocks)."""

    viewer: str
    at_s: float
    id: str
    origin: str
    late_ms: float


@dataclass(frozen=True)
class ViewerEnd:
    """A viewer's state at the end: its timeline as (id, text) in id order, and how it
    moved. ``failover_s``: seconds from the fault to its first connection elsewhere (None:
    it did not move)."""

    name: str
    home: str
    region: str | None
    timeline: tuple[tuple[str, str], ...]
    gaps: int
    failovers: int
    failbacks: int
    failover_s: float | None = None
    malformed: int = 0       # server frames the SDK could not read (and skipped)


@dataclass(frozen=True)
class Bounds:
    """What a drill promises beyond G1-G3. None: not checked."""

    max_late_ms: float | None = None
    max_disorder_ms: float | None = None
    viewers_fail_over_from: str | None = None   # region-down: that region's viewers move
    viewers_stay_home: bool = False             # gateway-kill: nobody leaves for good


@dataclass
class ViewerCounts:
    name: str
    home: str
    region: str | None
    received: int
    missing: list[str]
    rendered_twice: int
    gaps: int
    failovers: int
    failbacks: int
    failover_s: float | None
    malformed: int = 0


@dataclass
class Verdict:
    passed: bool
    reasons: list[str]
    acknowledged: int
    unknown: int
    refused: int
    viewers: list[ViewerCounts]
    missing: list[str]            # acknowledged ids some viewer lacks
    duplicates: int               # posts rendered twice (summed over viewers)
    gaps: int
    failovers: int
    failover_p99_s: float | None
    max_late_ms: dict[str, float] = field(default_factory=dict)      # by origin region
    max_disorder_ms: dict[str, float] = field(default_factory=dict)  # by origin region


def percentile(values: Sequence[float], p: float) -> float | None:
    """The ``p``-th percentile (0..100, nearest rank) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def rendered_twice(timeline: Iterable[tuple[str, str]], texts: set[str]) -> int:
    """How many of the workload's posts (by their unique ``texts``) a timeline shows more than
    once, under different ids."""
    seen: dict[str, int] = {}
    for _, text in timeline:
        if text in texts:
            seen[text] = seen.get(text, 0) + 1
    return sum(1 for n in seen.values() if n > 1)


def lateness(arrivals: Iterable[Arrival]) -> tuple[dict[str, float], dict[str, float]]:
    """By origin region: the latest arrival (ms after its origin's clock) and the furthest
    out of origin order one arrived (ms of origin time between it and the newest comment of
    its origin the same viewer already had)."""
    late: dict[str, float] = {}
    disorder: dict[str, float] = {}
    newest: dict[tuple[str, str], str] = {}
    newest_ms: dict[tuple[str, str], float] = {}
    for a in sorted(arrivals, key=lambda a: a.at_s):
        late[a.origin] = max(late.get(a.origin, 0.0), a.late_ms)
        key = (a.viewer, a.origin)
        own_ms = _id_ms(a.id)
        if key in newest and a.id < newest[key]:
            disorder[a.origin] = max(disorder.get(a.origin, 0.0), newest_ms[key] - own_ms)
        elif key not in newest or a.id > newest[key]:
            newest[key], newest_ms[key] = a.id, own_ms
        disorder.setdefault(a.origin, 0.0)
    return late, disorder


def _id_ms(comment_id: str) -> float:
    try:
        return float(int(comment_id[:12], 16))
    except ValueError:
        return 0.0


def judge(posts: Sequence[Post], ends: Sequence[ViewerEnd], arrivals: Sequence[Arrival],
          bounds: Bounds = Bounds(), *, steady_before: bool = True,
          steady_after: bool = True, excused: Mapping[str, str] | None = None) -> Verdict:
    """The verdict. ``excused``: acknowledged ids the drill knows cannot have arrived yet,
    with the reason (they are listed, not failed)."""
    excused = excused or {}
    acked = {p.id for p in posts if p.outcome == "acked" and p.id is not None}
    texts = {p.text for p in posts}
    reasons: list[str] = []
    if not steady_before:
        reasons.append("the steady state did not hold before the fault")
    if not steady_after:
        reasons.append("the steady state did not come back after the fault")
    if not acked:
        reasons.append("no comment was acknowledged")
    viewers: list[ViewerCounts] = []
    missing_all: set[str] = set()
    for end in ends:
        have = {i for i, _ in end.timeline}
        missing = sorted(acked - have - set(excused))
        missing_all |= set(missing)
        viewers.append(ViewerCounts(
            name=end.name, home=end.home, region=end.region, received=len(acked & have),
            missing=missing, rendered_twice=rendered_twice(end.timeline, texts),
            gaps=end.gaps, failovers=end.failovers, failbacks=end.failbacks,
            failover_s=end.failover_s, malformed=end.malformed))
    duplicates = sum(v.rendered_twice for v in viewers)
    gaps = sum(v.gaps for v in viewers)
    if missing_all:
        reasons.append(f"{len(missing_all)} acknowledged comments missing from some viewer")
    if duplicates:
        reasons.append(f"{duplicates} posts rendered twice")
    if gaps:
        reasons.append(f"{gaps} gaps left in timelines")
    malformed = sum(v.malformed for v in viewers)
    if malformed:
        # A frame the SDK skipped may have carried comments: the server and the SDK disagree
        # on the protocol (docs/protocol.md).
        reasons.append(f"{malformed} server frames the SDK could not read")
    moved: list[float] = []
    if bounds.viewers_fail_over_from is not None:
        away = [v for v in viewers if v.home == bounds.viewers_fail_over_from]
        moved = [v.failover_s if v.failover_s is not None else math.inf for v in away]
        p99 = percentile(moved, 99)
        if p99 is None or p99 > FAILOVER_BOUND_S:
            reasons.append(f"99 % of {bounds.viewers_fail_over_from}'s viewers did not fail "
                           f"over within {FAILOVER_BOUND_S:g} s (p99 {p99})")
    if bounds.viewers_stay_home:
        gone = [v.name for v in viewers if v.region != v.home]
        if gone:
            reasons.append(f"{len(gone)} viewers ended away from their region: {gone[:5]}")
    late, disorder = lateness(arrivals)
    if bounds.max_late_ms is not None:
        worst = max(late.values(), default=0.0)
        if worst > bounds.max_late_ms:
            reasons.append(f"a comment arrived {worst:.0f} ms after it was posted (bound "
                           f"{bounds.max_late_ms:.0f} ms)")
    if bounds.max_disorder_ms is not None:
        worst = max(disorder.values(), default=0.0)
        if worst > bounds.max_disorder_ms:
            reasons.append(f"a comment arrived {worst:.0f} ms out of its origin's order "
                           f"(bound {bounds.max_disorder_ms:.0f} ms)")
    finite = [m for m in moved if math.isfinite(m)]
    return Verdict(
        passed=not reasons, reasons=reasons, acknowledged=len(acked),
        unknown=sum(p.outcome == "unknown" for p in posts),
        refused=sum(p.outcome == "refused" for p in posts), viewers=viewers,
        missing=sorted(missing_all), duplicates=duplicates, gaps=gaps,
        failovers=sum(v.failovers for v in viewers),
        failover_p99_s=percentile(finite, 99) if finite else None,
        max_late_ms=late, max_disorder_ms=disorder)
