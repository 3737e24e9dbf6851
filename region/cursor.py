"""Resume cursors: where a viewer is in a region's sequence of a stream.

A cursor is ``<region>:<epoch>:<seq>``, opaque to clients. ``seq`` is the region log's
sequence of the last comment the viewer has (0: none yet); ``epoch`` names the life of the
region's log, so a cursor from a log that was wiped, or from another region, is recognised
and answered with ``recovered: false`` instead of a wrong replay.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
