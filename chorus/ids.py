"""Comment ids: time-ordered and unique without coordination.

An id is ``<ms:12 hex><seq:4 hex>-<node>``: the millisecond wall-clock time, a sequence
within that millisecond, and the node that made it (``<region>.<gateway index>``). Ids of one
node strictly increase even when the clock steps back; sorting ids as strings sorts them by
time (and then by node), so clients can render in id order across regions.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

# \A...\Z rather than ^...$: "$" also matches before a final newline.
_ID = re.compile(r"\A([0-9a-f]{12})([0-9a-f]{4})-([a-z][a-z0-9-]*\.[0-9]+)\Z")
_MAX_SEQ = 0xFFFF


class IdGenerator:
    """Makes ids for one node. ``clock`` returns milliseconds since the epoch."""

    def __init__(self, node: str, clock: Callable[[], int] | None = None) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9-]*\.[0-9]+", node):
            raise ValueError(f"node must look like 'us-east.0', not {node!r}")
        self.node = node
        self._clock = clock or (lambda: time.time_ns() // 1_000_000)
        self._ms = 0
        self._seq = -1

    def next(self) -> str:
        now = self._clock()
        if now > self._ms:
            self._ms, self._seq = now, 0
        elif self._seq < _MAX_SEQ:
            self._seq += 1  # same millisecond, or the clock went back: stay on our time
        else:
            self._ms, self._seq = self._ms + 1, 0  # 65536 ids in one ms: borrow the next
        return f"{self._ms:012x}{self._seq:04x}-{self.node}"


def id_time_ms(comment_id: str) -> int:
    """The millisecond timestamp inside an id; ValueError when it is not an id."""
    match = _ID.match(comment_id)
    if not match:
        raise ValueError(f"not a comment id: {comment_id!r}")
    return int(match.group(1), 16)


def is_id(value: str) -> bool:
    return bool(_ID.match(value))
