"""What a viewer of a sampled stream is shown: a uniform sample of each second, the priority
lane, and their own comments. Pure.

`Sampler` decides, for one stream on one gateway, as each comment arrives:

- the **priority lane** (`priority`: comments of hosts, moderators and verified users) is
  shown, always, and does not use the budget;
- a shadow-banned author's comment is never in the sample (it reaches its author alone);
- anything else is in the **sample** with probability ``p = per_s / m``, where ``m`` is the
  number of such comments the previous second carried: systematic sampling with a random
  start drawn afresh each second (a running sum of ``p`` per comment; a comment is taken when
  the sum crosses a whole number). Every comment of a second has the same chance ``p``, the
  taken ones spread over the whole second instead of being its first ones, and while the
  rate holds about ``per_s`` are taken a second. A hard cap of ``per_s`` a calendar second
  holds whatever the rate does; only when the rate jumps within a second (``m`` is then an
  underestimate) does the cap end that second's sample early.

The decision is made once per comment for every viewer of the gateway: viewers share one
sample (docs/design.md, "Hot streams", says why), so a viewer costs the same whether the
stream carries 50 comments a second or 50,000. A viewer's own comments are not the
sampler's business: the feed (region/tiers_feed.py) hands them to their author.

`SecondStats` is what a batch stands for ("showing n of m in the last second").
`ReplayThinner` applies the same rule to comments read back from the log, on a resume or a
repaired gap, with the comments' own times as the clock.
"""

from __future__ import annotations

import enum
import math
import random
from dataclasses import dataclass

from chorus.model import BADGES, Comment


def priority(comment: Comment) -> bool:
    """Whether ``comment`` is in the priority lane: its author is a host, a moderator or a
    verified user. (A pinned comment reaches every viewer in its own ``pin`` frame, in any
    tier.)"""
    return comment.badge in BADGES


class Verdict(enum.Enum):
    PRIORITY = "priority"   # shown to every viewer: the priority lane
    SAMPLED = "sampled"     # shown to every viewer: in the second's sample
    HIDDEN = "hidden"       # shown to its author only


@dataclass(frozen=True)
class SecondStats:
    """One second of a sampled stream: ``shown`` comments went to every viewer (sample and
    priority lane) of ``posted``."""

    shown: int
    posted: int


class Sampler:
    """The sample of one stream on one gateway. ``per_s``: comments of the sample a second
    (not counting the priority lane). ``expected``: comments a second to assume before the
    first whole second is counted (the rate that made the stream hot). ``now`` is any clock
    in seconds; calendar seconds are its whole seconds."""

    def __init__(self, per_s: int, *, expected: float = 0.0,
                 rng: random.Random | None = None) -> None:
        if per_s < 1:
            raise ValueError("per_s is at least 1")
        self.per_s = per_s
        self.rng = rng or random.Random()
        self.last = SecondStats(shown=0, posted=0)   # the last whole second
        self._second: int | None = None
        self._p = self._probability(expected)
        self._credit = self.rng.random()
        self._eligible = 0      # comments of this second that could be sampled
        self._sampled = 0
        self._shown = 0
        self._posted = 0

    def _probability(self, expected: float) -> float:
        return 1.0 if expected <= self.per_s else self.per_s / expected

    def _roll(self, now: float) -> None:
        second = math.floor(now)
        if second == self._second:
            return
        if self._second is not None:
            consecutive = second == self._second + 1
            self.last = (SecondStats(shown=self._shown, posted=self._posted) if consecutive
                         else SecondStats(shown=0, posted=0))
            # A quiet second in between means the rate is unknown again: take everything up
            # to the cap until it is counted.
            self._p = self._probability(self._eligible if consecutive else 0)
            self._credit = self.rng.random()
        self._second = second
        self._eligible = self._sampled = self._shown = self._posted = 0

    def offer(self, comment: Comment, now: float) -> Verdict:
        """Decides ``comment`` (comments are offered in the order of the region's log)."""
        self._roll(now)
        self._posted += 1
        if comment.shadow:
            return Verdict.HIDDEN
        if priority(comment):
            self._shown += 1
            return Verdict.PRIORITY
        self._eligible += 1
        if self._sampled >= self.per_s:
            return Verdict.HIDDEN
        self._credit += self._p
        if self._credit < 1.0:
            return Verdict.HIDDEN
        self._credit -= 1.0
        self._sampled += 1
        self._shown += 1
        return Verdict.SAMPLED

    def stats(self, now: float) -> SecondStats:
        """The last whole second before ``now`` (zeros when nothing was posted in it)."""
        self._roll(now)
        return self.last

    @property
    def probability(self) -> float:
        """The chance of a comment of this second to be sampled."""
        return self._p


class ReplayThinner:
    """Comments read back from the log for one viewer (a resume, a repaired gap), thinned as
    the live sample thins them: the priority lane and the viewer's own always, the rest
    sampled at ``per_s`` a second of the comments' own time, starting from the live rate
    ``expected``. A replay shows a sample too, not the flood it stands for."""

    def __init__(self, viewer: str | None, per_s: int, *, expected: float,
                 rng: random.Random | None = None) -> None:
        self.viewer = viewer
        self.sampler = Sampler(per_s, expected=expected, rng=rng)

    def shows(self, comment: Comment) -> bool:
        if self.viewer is not None and comment.user == self.viewer:
            return True
        return self.sampler.offer(comment, comment.ts / 1000) is not Verdict.HIDDEN
