"""What a client renders: comments in id order, each once, and explicit gaps. Pure.

Comment ids sort by time across regions, so a timeline ordered by id is the same whichever
region delivered what, and a comment that arrives twice (a resume, a failover, a forwarded
copy) is recognised by its id. Where a client knows it may have missed comments and could
not fetch them, the timeline holds a `Gap` marker instead of silently joining the two sides.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from chorus.model import Comment


@dataclass(frozen=True)
class Gap:
    """Comments between ``after_id`` and ``before_id`` (exclusive) may be missing; page
    history to fill it. ``before_id`` None: up to now."""

    after_id: str
    before_id: str | None


@dataclass
class Timeline:
    """At most ``limit`` newest comments (older ones fall off), deduplicated by id."""

    limit: int = 10_000
    comments: list[Comment] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    _ids: set[str] = field(default_factory=set)
    duplicates: int = 0

    def add(self, comment: Comment) -> bool:
        """True when the comment is new here."""
        if comment.id in self._ids:
            self.duplicates += 1
            return False
        self._ids.add(comment.id)
        if not self.comments or comment.id > self.comments[-1].id:
            self.comments.append(comment)
        else:
            # Late arrivals (other regions' comments, history fills) are common: find the
            # place without copying every id.
            at = bisect.bisect(self.comments, comment.id, key=lambda c: c.id)
            self.comments.insert(at, comment)
        if len(self.comments) > self.limit:
            dropped = self.comments.pop(0)
            self._ids.discard(dropped.id)
        return True

    def remove(self, comment_id: str) -> bool:
        """Takes a retracted comment out; True when it was there."""
        if comment_id not in self._ids:
            return False
        self._ids.discard(comment_id)
        at = bisect.bisect_left(self.comments, comment_id, key=lambda c: c.id)
        if at < len(self.comments) and self.comments[at].id == comment_id:
            self.comments.pop(at)
        return True

    def extend(self, comments: list[Comment]) -> int:
        return sum(self.add(c) for c in comments)

    @property
    def last_id(self) -> str | None:
        return self.comments[-1].id if self.comments else None

    def __contains__(self, comment_id: str) -> bool:
        return comment_id in self._ids

    def ids(self) -> list[str]:
        return [c.id for c in self.comments]

    def mark_gap(self, after_id: str, before_id: str | None) -> None:
        self.gaps.append(Gap(after_id, before_id))

    def fill_gap(self, gap: Gap) -> None:
        """History pages covered ``gap``; a comment inside a gap alone proves nothing."""
        self.gaps = [g for g in self.gaps if g != gap]
