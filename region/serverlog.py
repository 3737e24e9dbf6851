"""What aiohttp's HTTP server logs about requests it could not handle, rate-limited.

aiohttp logs every malformed request (a bad request line, header or chunk) with a full
traceback, about 500 bytes each: anyone could fill a gateway's log and disk at no cost, no
token needed. `ServerLog` is the logger the gateway hands aiohttp instead: a malformed request
becomes one warning line without a traceback, at most `per_window` of them per `window_s`,
and the next line that gets through says how many were left out. Unhandled errors (bugs) keep
their tracebacks, under their own budget.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

MALFORMED = "malformed"
ERROR = "error"


class LogBudget:
    """At most ``per_window`` lines per ``window_s`` for each kind; counts what it refuses."""

    def __init__(self, per_window: int, window_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_window = per_window
        self.window_s = window_s
        self.clock = clock
        self._windows: dict[str, tuple[float, int]] = {}   # kind -> (window start, lines)
        self.suppressed: dict[str, int] = {}               # since the last line that went out

    def take(self, kind: str) -> int | None:
        """None when a line of ``kind`` must be left out now; else how many were left out
        since the last one (0 and more)."""
        now = self.clock()
        start, lines = self._windows.get(kind, (now, 0))
        if now - start >= self.window_s:
            start, lines = now, 0
        if lines >= self.per_window:
            self._windows[kind] = (start, lines)
            self.suppressed[kind] = self.suppressed.get(kind, 0) + 1
            return None
        self._windows[kind] = (start, lines + 1)
        return self.suppressed.pop(kind, 0)


class ServerLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The ``logger`` of aiohttp's request handler (it calls ``exception`` and ``debug``)."""

    def __init__(self, logger: logging.Logger, *, per_window: int = 10, window_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(logger, {})
        self.budget = LogBudget(per_window, window_s, clock)

    def exception(self, msg: object, *args: object, exc_info: Any = True,
                  **kwargs: Any) -> None:
        exc = exc_info if isinstance(exc_info, BaseException) else None
        if isinstance(exc, HttpProcessingError):
            left_out = self.budget.take(MALFORMED)
            if left_out is None:
                return
            more = f" ({left_out} more not logged)" if left_out else ""
            self.logger.warning(f"{msg}: malformed request: %s%s", *args,
                                exc.message or exc, more)
            return
        left_out = self.budget.take(ERROR)
        if left_out is None:
            return
        if left_out:
            self.logger.error("%d more request errors were not logged", left_out)
        self.logger.error(msg, *args, exc_info=exc_info, **kwargs)
