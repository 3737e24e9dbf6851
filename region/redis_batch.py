"""One Lua script run for many concurrent callers in one Redis command.

Every post runs the admission script (region/admission.py). Sent one by one, each call pays
redis-py's whole path (a pooled connection taken and given back, one write, one read) and
Redis one read per command; under load that was a tenth of a gateway's CPU. `BatchedScript`
is called like redis-py's registered script (``await script(keys=..., args=...)``), but the
calls made while a batch is on its way wait and go out together in the next one: at most one
batch in flight, so a batch holds what arrived during the previous round trip (up to
`MAX_BATCH`), and a lone call goes out at once.

A batch is one ``EVALSHA`` of `batched_lua` (the script wrapped in a loop over the batch's
calls), not a pipeline of one ``EVALSHA`` per call: redis-py's cost is per command (packing
it, parsing its reply, its callbacks), and a pipeline of a hundred calls paid it a hundred
times (6 % of a busy gateway's CPU). The calls run one after the other, each as it would
alone; each caller gets its own reply, or its own error (an error reply, or a runtime error
of its call, caught in the script): the calls before and after it are done. A failed round
trip (Redis down, timeout) raises the driver's error in every caller of the batch, as a lone
call would.

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

MAX_BATCH = 256   # calls in one command; more wait for the next round trip


def batched_lua(script: str) -> str:
    """``script`` run once per call of a batch, in one script. ARGV: the number of calls,
    then per call its key count, its argument count and its arguments; KEYS: every call's
    keys in order. Returns one reply per call: the script's, or an error reply."""
    return f"""local function one(KEYS, ARGV)
{script}
end
local out = {{}}
local k, a = 1, 2
for i = 1, tonumber(ARGV[1]) do
  local nk, na = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local ok, reply = pcall(one, {{unpack(KEYS, k, k + nk - 1)}},
                          {{unpack(ARGV, a + 2, a + 1 + na)}})
  if ok then
    out[i] = reply
  else
    out[i] = redis.error_reply(tostring(reply))
  end
  k, a = k + nk, a + 2 + na
end
return out
"""

Call = tuple[Sequence[Any], Sequence[Any], "asyncio.Future[Any]"]


class BatchCancelled(ConnectionError):
    """The batch a call waited for was cancelled (the gateway is stopping)."""


class BatchedScript:
    def __init__(self, redis: aioredis.Redis, script: str, *, max_batch: int = MAX_BATCH
                 ) -> None:
        self.redis = redis
        self.script = batched_lua(script)
        self.sha = hashlib.sha1(self.script.encode()).hexdigest()
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
        keys: list[Any] = []
        args: list[Any] = [len(batch)]
        for call_keys, call_args, _ in batch:
            keys.extend(call_keys)
            args.extend((len(call_keys), len(call_args), *call_args))
        try:
            replies = await self._evalsha(keys, args)
        except NoScriptError:
            # Redis restarted or flushed its scripts: nothing of the batch ran; load it and
            # run the batch again.
            await self.redis.script_load(self.script)
            replies = await self._evalsha(keys, args)
        return list(replies)

    async def _evalsha(self, keys: list[Any], args: list[Any]) -> Any:
        # Not redis-py's `evalsha`: its annotation mixes the synchronous client's in.
        return await self.redis.execute_command(  # type: ignore[no-untyped-call]
            "EVALSHA", self.sha, len(keys), *keys, *args)
