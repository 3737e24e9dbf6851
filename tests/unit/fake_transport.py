"""A `Transport` for unit tests: records what is written and acts as any peer a gateway meets.

- a reading peer: every `send` is recorded at once;
- a peer that stopped reading (`stop_reading`): sends wait until `resume_reading`, or until
  the connection is closed or aborted, as a socket whose buffer is full;
- a peer that is gone (`go_away`): sends raise `Gone`;
- with ``close_hangs``, a stopped peer does not take the goodbye either: `close` waits too,
  until `abort`.

Tests wait on `wait_for` (woken by every write and close, bounded by a timeout), never on a
sleep.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TypeVar

from region.protocol import Bye, CloseCode, Comments, ServerFrame
from region.writer import Gone

F = TypeVar("F", bound=ServerFrame)

WAIT_S = 5.0  # how long a test waits for a condition before it fails


class FakeTransport:
    def __init__(self) -> None:
        self.writes: list[list[ServerFrame]] = []
        self.closed_with: tuple[CloseCode, Bye | None] | None = None
        self.aborted = False
        self.close_hangs = False
        self.blocked_sends = 0  # sends that found the peer not reading
        self._reading = asyncio.Event()
        self._reading.set()
        self._gone = False
        self._changed = asyncio.Event()

    # -- peer behaviour ----------------------------------------------------------------------

    def stop_reading(self) -> None:
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    def go_away(self) -> None:
        self._gone = True
        self._reading.set()

    # -- Transport ---------------------------------------------------------------------------

    async def send(self, frames: Sequence[ServerFrame]) -> None:
        if not self._reading.is_set():
            self.blocked_sends += 1
            self._changed.set()
            await self._reading.wait()
        if self._gone:
            raise Gone("the peer is gone")
        self.writes.append(list(frames))
        self._changed.set()

    async def close(self, code: CloseCode, bye: Bye | None) -> None:
        if self.close_hangs and not self._reading.is_set():
            await self._reading.wait()
            if self.aborted:
                raise Gone("aborted")
        self.closed_with = (code, bye)
        self._gone = True
        self._reading.set()  # a write stuck on the socket fails once it is closed
        self._changed.set()

    def abort(self) -> None:
        self.aborted = True
        self._gone = True
        self._reading.set()
        self._changed.set()

    # -- what the peer got -------------------------------------------------------------------

    @property
    def frames(self) -> list[ServerFrame]:
        return [f for write in self.writes for f in write]

    def of_type(self, kind: type[F]) -> list[F]:
        return [f for f in self.frames if isinstance(f, kind)]

    @property
    def comment_ids(self) -> list[str]:
        return [c.id for f in self.frames if isinstance(f, Comments) for c in f.items]

    @property
    def bye(self) -> Bye | None:
        return self.closed_with[1] if self.closed_with else None

    async def wait_for(self, check: Callable[[], bool], what: str,
                       timeout_s: float = WAIT_S) -> None:
        """Returns once ``check()`` holds, re-checked after every write and close."""
        async def until() -> None:
            while not check():
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(until(), timeout_s)
        except TimeoutError:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; "
                                 f"frames: {self.frames}") from None
