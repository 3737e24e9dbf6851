"""The history fill: what a client fetches when its live connection cannot vouch for what it
missed (a first connect, a failover, a ``recovered: false``).

History pages come newest first (``GET /v1/streams/{stream}/comments``). The fill pages back
until it passes the client's anchor (`anchor_of`: how far its timeline is complete for every
origin region), less a reorder window: comments of other regions reach a region's log up to
that much out of id order, so a comment older than the anchor may still be new to the
client. `StopRule` is that decision, pure; `fill` is the
paging, the only I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp

from chorus.ids import id_time_ms, is_id
from chorus.model import Comment

REORDER_WINDOW_MS = 5000    # comments of other regions reach a log up to this much out of order
# An origin region whose newest comment here is this much older than the newest of all is
# taken to have gone quiet, not to have been cut off: the fill does not page back to it.
QUIET_REGION_MS = 300_000
HISTORY_PAGE = 200          # comments per page asked for
HISTORY_MAX_PAGES = 20      # pages per fill; a longer hole is left as a `Gap`


@dataclass(frozen=True)
class HistoryPage:
    """One page: comments newest first, and the ``before`` token of the next older page
    (None: history is exhausted)."""

    items: tuple[Comment, ...]
    next: str | None

    @classmethod
    def from_json(cls, doc: Any) -> HistoryPage:
        """ValueError when ``doc`` is not a history page."""
        if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
            raise ValueError("a history page is an object with a list of 'items'")
        nxt = doc.get("next")
        if nxt is not None and not isinstance(nxt, str):
            raise ValueError(f"a history page's 'next' is a string or null, not {nxt!r:.40}")
        return cls(tuple(Comment.from_json(c) for c in doc["items"]), nxt)


def anchor_of(comments: Iterable[Comment], quiet_ms: int = QUIET_REGION_MS) -> str | None:
    """The newest comment up to which a client can vouch for its timeline: the oldest of the
    newest comments it holds from each origin region (None: it holds none).

    A region's log receives the other regions' comments through their outboxes; while it is
    cut off from them (a link cut) its viewers get its own comments live and nobody else's.
    If the region then dies, its viewers fail over holding its newest comments, and a fill
    anchored on their very newest comment would stop just before the cut's end: the other
    regions' comments from the cut would never be fetched, a silent gap. What the client
    holds from each origin says how far it got with that origin; the fill goes back to the
    furthest behind. An origin whose newest comment is ``quiet_ms`` older than the newest of
    all has gone quiet rather than been cut off, and is left out, or every failover would
    page back to it."""
    newest: dict[str, str] = {}
    for comment in comments:
        if comment.id > newest.get(comment.region, ""):
            newest[comment.region] = comment.id
    valid = [i for i in newest.values() if is_id(i)]
    if not valid:
        return None
    latest = id_time_ms(max(valid))
    recent = [i for i in valid if latest - id_time_ms(i) <= quiet_ms]
    return min(recent)


@dataclass(frozen=True)
class StopRule:
    """When a fill has paged far enough. ``stop_ms`` is the id time (ms) that a page must
    reach below; None: the client had nothing to anchor on, so one page is its start."""

    stop_ms: int | None

    @classmethod
    def after(cls, anchor: str | None, reorder_window_ms: int = REORDER_WINDOW_MS) -> StopRule:
        """The rule for a client whose newest comment is ``anchor`` (None: it has none)."""
        if anchor is None or not is_id(anchor):
            return cls(None)
        return cls(id_time_ms(anchor) - reorder_window_ms)

    def done(self, page: HistoryPage) -> bool:
        """True when no older page is needed after ``page``."""
        if self.stop_ms is None or page.next is None:
            return True  # a fresh client's first page, or history is exhausted
        return bool(page.items) and id_time_ms(min(c.id for c in page.items)) < self.stop_ms


async def fill(http: aiohttp.ClientSession, url: str, stream: str, *, anchor: str | None,
               deliver: Callable[[Comment], object],
               max_pages: int = HISTORY_MAX_PAGES) -> bool:
    """Pages the history of ``stream`` at gateway ``url``, handing every comment to
    ``deliver``, until `StopRule.after(anchor)` holds. False when it could not get there
    (a failed request, a malformed page, or ``max_pages`` pages were not enough): comments
    after ``anchor`` may be missing."""
    rule = StopRule.after(anchor)
    before: str | None = None
    for _ in range(max_pages):
        params = {"limit": str(HISTORY_PAGE)} | ({"before": before} if before else {})
        try:
            async with http.get(f"{url}/v1/streams/{stream}/comments", params=params) as resp:
                if resp.status != 200:
                    return False
                page = HistoryPage.from_json(await resp.json())
        except (aiohttp.ClientError, OSError, ValueError):
            return False
        for comment in page.items:
            deliver(comment)
        if rule.done(page):
            return True
        before = page.next
    return False
