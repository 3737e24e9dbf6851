"""Moderation as a gateway's handlers and ingest see it: check a post, make a decision, tell
the viewers.

`Moderation` puts together this gateway's `ModerationState` (region/moderation.py), the
prefilter built from its blocked terms (region/moderation_prefilter.py) and the decision log
of the global plane (the `DecisionLog` that region/compose.py hands in). Checking a post reads
memory only. When a decision is applied, whichever region made it, `on_applied` sends the
live frames: ``retract`` to the stream's viewers on this gateway, ``restore`` when a comment
taken down is approved, ``pin`` likewise.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from chorus.metrics import Metrics
from chorus.model import Comment
from region.auth import Claims
from region.errors import ApiError, ErrorCode
from region.moderation import (
    Action,
    Decision,
    DecisionLog,
    ModerationState,
    ModerationUnavailable,
    Outcome,
    Pin,
    Verdict,
)
from region.moderation_prefilter import Prefilter
from region.protocol import Pinned, Restore, Retract, ServerFrame


class Viewer(Protocol):
    """A live session as moderation sees it (region/session.py's `Session`)."""

    user: str | None

    def push(self, frame: ServerFrame) -> None: ...


@dataclass(frozen=True)
class PostCheck:
    """What moderation says of a post it lets through: store it shadowed (shown to its
    author only), and the slow-mode interval to enforce (ms; 0: none) at admission."""

    shadow: bool
    slow_ms: int


class Moderation:
    def __init__(self, state: ModerationState, *, metrics: Metrics,
                 viewers: Callable[[str], Iterable[Viewer]],
                 clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000) -> None:
        self.state = state
        self.metrics = metrics
        self.viewers = viewers
        self.clock_ms = clock_ms
        self.prefilter = Prefilter()
        self.log: DecisionLog | None = None
        state.on_terms = self._rebuild_prefilter

    def attach(self, log: DecisionLog) -> None:
        """The global plane's side; set once by the composition root."""
        self.log = log

    def _rebuild_prefilter(self) -> None:
        self.prefilter.rebuild(self.state.all_terms())

    # -- the post path (memory only) ----------------------------------------------------------

    def check_post(self, claims: Claims, stream: str, text: str) -> PostCheck:
        """Raises ApiError 403 (banned or timed out) or 422 ``blocked`` (a blocked term)."""
        standing = self.state.standing(claims.user, self.clock_ms())
        if standing.banned:
            if standing.until_ms is None:
                raise ApiError(ErrorCode.FORBIDDEN, "this user is banned from commenting")
            left_s = max(1.0, (standing.until_ms - self.clock_ms()) / 1000)
            raise ApiError(ErrorCode.FORBIDDEN, f"this user is timed out for {left_s:.0f} "
                                                "more seconds", retry_after_s=left_s)
        term = self.prefilter.blocked(stream, text)
        if term is not None:
            self.metrics.moderation_blocked.inc()
            raise ApiError(ErrorCode.BLOCKED, "the comment contains a blocked term")
        exempt = claims.is_moderator  # hosts and moderators are never slowed down
        slow_s = 0 if exempt else self.state.slow_mode_s(stream)
        return PostCheck(shadow=standing.shadow, slow_ms=slow_s * 1000)

    async def ready(self) -> None:
        """Raises ApiError 503 while this gateway is behind on decisions (global_/moderation.py
        says when and for how long)."""
        if self.log is None:
            return
        try:
            await self.log.ready()
        except ModerationUnavailable as exc:
            raise ApiError(ErrorCode.UNAVAILABLE, f"moderation is catching up ({exc}); "
                                                  "retry", retry_after_s=1) from exc

    def hidden(self, comment: Comment, viewer: str | None = None, *,
               moderator: bool = False) -> bool:
        return self.state.hidden(comment, viewer, moderator=moderator)

    # -- deciding ----------------------------------------------------------------------------

    async def decide(self, action: Action, *, by: str, reason: str = "") -> Outcome:
        if self.log is None:
            raise ApiError(ErrorCode.UNAVAILABLE, "moderation is not running on this gateway")
        try:
            return await self.log.decide(action, by=by, reason=reason)
        except ModerationUnavailable as exc:
            raise ApiError(ErrorCode.UNAVAILABLE, f"the region's moderation log did not take "
                                                  f"the decision ({exc}); retry",
                           retry_after_s=1) from exc

    # -- telling the viewers -----------------------------------------------------------------

    def on_applied(self, decision: Decision) -> None:
        """A decision was applied here (made in any region): the live frames it calls for."""
        match decision.action:
            case Verdict(stream=stream, state="approved", comment=comment):
                if comment is None:
                    return  # not found when approved: history and new viewers have it again
                restored = Restore(stream=stream, comment=comment)
                for viewer in tuple(self.viewers(stream)):
                    if comment.visible_to(viewer.user):  # a shadowed one stays its author's
                        viewer.push(restored)
            case Verdict(stream=stream, comment_id=comment_id, author=author, state=state):
                frame = Retract(stream=stream, ids=(comment_id,))
                for viewer in tuple(self.viewers(stream)):
                    if state == "held" and viewer.user == author:
                        continue  # held for review: its author still sees it
                    viewer.push(frame)
            case Pin(stream=stream, comment=comment):
                pinned = Pinned(stream=stream, comment=comment)
                for viewer in tuple(self.viewers(stream)):
                    viewer.push(pinned)
