"""One Lua script run for many concurrent callers in one Redis round trip.

Every post runs the admission script (region/admission.py). Sent one by one, each call pays
redis-py's whole path (a pooled connection taken and given back, one write, one read) and
Redis one read per command; under load that was a tenth of a gateway's CPU. `BatchedScript`
is called like redis-py's registered script (``await script(keys=..., args=...)``), but the
calls made while a batch is on its way wait and go out together, pipelined, in the next one:
at most one batch in flight, so a batch holds what arrived during the previous round trip
(up to `MAX_BATCH`), and a lone call goes out at once. Each caller gets its own reply, or
the exception its own command raised; a failed round trip (Redis down, timeout) raises the
driver's error in every caller of the batch, as a lone call would.

The flush task is owned here: it runs while callers wait and ends when none is left; `close`
cancels it (its callers then get `BatchCancelled`).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

MAX_BATCH = 256   # calls in one pipeline; more wait for the next round trip

Call = tuple[Sequence[Any], Sequence[Any], "asyncio.Future[Any]"]


class BatchCancelled(ConnectionError):
    """The batch a call waited for was cancelled (the gateway is stopping)."""


class BatchedScript:
    def __init__(self, redis: aioredis.Redis, script: str, *, max_batch: int = MAX_BATCH
                 ) -> None:
        self.redis = redis
        self.script = script
        self.sha = hashlib.sha1(script.encode()).hexdigest()
        self.max_batch = max_batch
        self._waiting: list[Call] = []
        self._flusher: asyncio.Task[None] | None = None
        self.batches = 0   # round trips made (for tests and benchmarks)

    async def __call__(self, *, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append((keys, args, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="redis script batch")
        return await future

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)

    async def _flush(self) -> None:
        # Ends, in the same step as its last check, once nobody waits: a caller that comes
        # later finds it done and starts the next one.
        while self._waiting:
            batch = self._waiting[: self.max_batch]
            del self._waiting[: self.max_batch]
            try:
                replies = await self._run(batch)
            except asyncio.CancelledError:
                for *_, future in batch + self._waiting:
                    if not future.done():
                        future.set_exception(BatchCancelled("the Redis batch was cancelled"))
                self._waiting.clear()
                raise
            except Exception as exc:  # the round trip failed: every caller hears it
                for *_, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (*_, future), reply in zip(batch, replies, strict=True):
                if future.done():
                    continue
                if isinstance(reply, Exception):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)

    async def _run(self, batch: list[Call]) -> list[Any]:
        self.batches += 1
        replies = await self._pipeline(batch)
        again = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
        if again:
            # Redis restarted or flushed its scripts: load it, run again the calls it refused
            # (a refused call did nothing; the others must not run twice).
            await self.redis.script_load(self.script)
            for i, reply in zip(again, await self._pipeline([batch[i] for i in again]),
                                strict=True):
                replies[i] = reply
        return replies

    async def _pipeline(self, batch: list[Call]) -> list[Any]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for keys, args, _ in batch:
                pipe.evalsha(self.sha, len(keys), *keys, *args)
            return list(await pipe.execute(raise_on_error=False))
