"""The garbage collector of a gateway process: its pauses measured, and its tuning.

A gateway holding a thousand live connections keeps a large heap of long-lived objects
(sockets, sessions, writers, aiohttp's per-connection state). Each collection of the oldest
generation walks all of it while the event loop waits: 120-137 ms pauses were seen on a busy
viewers' gateway (docs/benchmarks.md), longer than the whole delivery budget. `GcWatch` times
every collection (``gc.callbacks``) into ``chorus_gc_pause_seconds`` and logs a pause of the
whole heap longer than `LONG_PAUSE_S` (at most one line per `LOG_EVERY_S`), so an operator
sees what a latency spike was. `tune` is what the gateway process does about them: everything
built at start-up (modules, configuration, the composed cell) is moved out of the collector's
reach with ``gc.freeze()``, and the youngest generation is collected after `GEN0_THRESHOLD`
allocations instead of 700, so that far fewer objects of an in-flight delivery live long
enough to be promoted (and later walked by a full collection).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

LONG_PAUSE_S = 0.05   # a full collection longer than this is logged (a delivery budget's half)
LOG_EVERY_S = 10.0    # at most one such line this often (a storm becomes one line, counted)
GEN0_THRESHOLD = 20_000  # allocations between collections of the youngest generation (700)


def tune() -> None:
    """The gateway process's collector settings, once it is up: call after start-up, before
    viewers come. Process-wide: the process entry calls it, never a test that runs gateways
    in its own process."""
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GEN0_THRESHOLD, gen1, gen2)


class GcWatch:
    """Times each collection of this process. ``pause(generation, seconds)`` hears every one
    (from inside the collector: it must not take a lock nor await). Install with `start`,
    remove with `stop`."""

    def __init__(self, pause: Callable[[int, float], None],
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.pause = pause
        self.clock = clock
        self._began = 0.0
        self._last_log = -LOG_EVERY_S
        self._held = 0          # long pauses not logged since the last line
        self._longest = 0.0     # the longest of them, seconds

    def start(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def stop(self) -> None:
        if self._callback in gc.callbacks:
            gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._began = self.clock()
            return
        now = self.clock()
        seconds = now - self._began
        generation = int(info.get("generation", 0))
        self.pause(generation, seconds)
        if generation == 2 and seconds >= LONG_PAUSE_S:
            self._long_pause(now, seconds)

    def _long_pause(self, now: float, seconds: float) -> None:
        self._held += 1
        self._longest = max(self._longest, seconds)
        if now - self._last_log < LOG_EVERY_S:
            return
        more = f" ({self._held - 1} more since the last line)" if self._held > 1 else ""
        line = (seconds * 1000, self._longest * 1000, gc.get_freeze_count(), more)
        self._last_log, self._held, self._longest = now, 0, 0.0
        # Logged by the loop, not from inside the collector: a handler's lock may be held by
        # the very code the collection interrupted.
        try:
            asyncio.get_running_loop().call_soon(self._log, *line)
        except RuntimeError:
            pass  # no loop (a collection at exit): nobody to tell

    @staticmethod
    def _log(ms: float, longest_ms: float, frozen: int, more: str) -> None:
        log.warning("a full garbage collection paused this gateway %.0f ms (longest %.0f ms; "
                    "%d objects frozen at start-up)%s", ms, longest_ms, frozen, more)
