"""Resume cursors: where a viewer is in a region's sequence of a stream.

A cursor is ``<region>:<epoch>:<seq>``, opaque to clients. ``seq`` is the region log's
sequence of the last comment the viewer has (0: none yet); ``epoch`` names the life of the
region's log, so a cursor from a log that was wiped, or from another region, is recognised
and answered with ``recovered: false`` instead of a wrong replay.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from region.log_merge import Position

# \A...\Z rather than ^...$: "$" also matches before a final newline.
_CURSOR = re.compile(r"\A([a-z][a-z0-9-]{0,30}[a-z0-9]):([0-9a-z]{1,16}):([0-9]{1,19})\Z")


@dataclass(frozen=True, order=True)
class Cursor:
    region: str
    epoch: str
    seq: int

    def encode(self) -> str:
        return f"{self.region}:{self.epoch}:{self.seq}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """ValueError with a reason when ``text`` is not a cursor."""
        match = _CURSOR.match(text)
        if not match:
            raise ValueError(f"not a cursor: {text[:80]!r} (expected region:epoch:seq, as "
                             "sent in hello/comments frames or SSE ids)")
        return cls(match.group(1), match.group(2), int(match.group(3)))

    def same_log(self, region: str, epoch: str) -> bool:
        return self.region == region and self.epoch == epoch


# -- history marks -------------------------------------------------------------------------------
# A region whose log has hot partitions pages a stream's history over all of them, in the order
# of region/log_merge.py, so a page's ``next`` names a `Position` rather than a sequence:
# ``<region>:<epoch>:h<stored_ns>.<part>.<seq>``. The "h" keeps it apart from a cursor, which
# ``before`` still accepts (from a frame, or a ``next`` of a region without partitions).

_MARK = re.compile(r"\A([a-z][a-z0-9-]{0,30}[a-z0-9]):([0-9a-z]{1,16}):"
                   r"h([0-9]{1,19})\.([0-9]{1,3})\.([0-9]{1,19})\Z")


@dataclass(frozen=True)
class HistoryMark:
    """Where a history page stopped: its next page holds the comments older than ``at``."""

    region: str
    epoch: str
    at: Position

    def encode(self) -> str:
        return (f"{self.region}:{self.epoch}:h{self.at.stored_ns}.{self.at.part}."
                f"{self.at.seq}")

    @classmethod
    def parse(cls, text: str) -> HistoryMark:
        """ValueError with a reason when ``text`` is not a history mark."""
        match = _MARK.match(text)
        if not match:
            raise ValueError(f"not a history mark: {text[:80]!r} (expected "
                             "region:epoch:h<time>.<part>.<seq>, as sent in a history "
                             "page's 'next')")
        return cls(match.group(1), match.group(2), Position(
            int(match.group(3)), int(match.group(4)), int(match.group(5))))

    def same_log(self, region: str, epoch: str) -> bool:
        return self.region == region and self.epoch == epoch


def history_before(text: str) -> Cursor | HistoryMark:
    """A history request's ``before``: a page's ``next`` or a cursor. ValueError saying what
    to send when it is neither."""
    try:
        return HistoryMark.parse(text) if _MARK.match(text) else Cursor.parse(text)
    except ValueError:
        raise ValueError(f"'before' is neither a history page's 'next' nor a cursor: "
                         f"{text[:80]!r} (send a page's 'next' as it came, or a cursor "
                         "region:epoch:seq from a frame)") from None
