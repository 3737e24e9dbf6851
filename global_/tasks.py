"""Tasks the global plane starts on demand (a late-join bootstrap, a presence refresh ahead of
expiry), each one owned: kept while it runs, bounded in number, cancelled and awaited on
shutdown, and the first that fails unexpectedly re-raised by `watch`, so the long-running
`run` that watches them (and with it the gateway) stops instead of going on without it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, NoReturn


class OwnedTasks:
    """At most ``limit`` tasks at once; `spawn` refuses more (and after `close`)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._tasks: set[asyncio.Task[object]] = set()
        self._failure: BaseException | None = None
        self._failed = asyncio.Event()
        self._closed = False

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, object], name: str) -> bool:
        """Starts ``coro``; False (and ``coro`` is closed unstarted) when full or closed."""
        if self._closed or len(self._tasks) >= self.limit:
            coro.close()
            return False
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return True

    def _done(self, task: asyncio.Task[object]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and self._failure is None:
            self._failure = exc
            self._failed.set()

    async def watch(self) -> NoReturn:
        """Waits for the first task to fail and raises its exception."""
        await self._failed.wait()
        assert self._failure is not None
        raise self._failure

    async def close(self) -> None:
        """Cancels every task and waits for them to end; later spawns are refused."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
