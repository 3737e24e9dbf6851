"""The Go load client's process (bench/goload, built by bench/goload/build.sh), as the
Python benchmarks drive it: one command at a time on its stdin, one answer a line on its
stdout, decoded by bench/goload/figures.py. Its pid is there for the CPU meter.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from types import TracebackType
from typing import Any

from goload.figures import GoLoadError, decode

BUILD = Path(__file__).resolve().parent / "build.sh"

# Past this, a command's answer is overdue: the longest phase and its drain are well under.
ANSWER_TIMEOUT_S = 600.0


def binary() -> Path:
    """Where build.sh puts the client (CHORUS_CACHE, else ~/.cache/chorus)."""
    cache = Path(os.environ.get("CHORUS_CACHE", Path.home() / ".cache" / "chorus"))
    return cache / "bin" / "goload"


class GoLoad:
    """A running Go load client; `async with await GoLoad.start() as go: await go.call(...)`."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    @classmethod
    async def start(cls, *flags: str, path: Path | None = None) -> GoLoad:
        """Starts the client; ``flags`` (``-server centrifugo -api-key K``) choose the server
        it loads (Chorus by default)."""
        path = path or binary()
        if not path.exists():
            raise GoLoadError(f"no Go load client at {path}: build it with {BUILD}")
        proc = await asyncio.create_subprocess_exec(
            str(path), *flags, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            limit=1 << 20)
        return cls(proc)

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def call(self, op: str, **fields: Any) -> dict[str, Any]:
        """Sends one command and returns its (decoded) answer."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"op": op, **fields}).encode() + b"\n")
        await self.proc.stdin.drain()
        line = await asyncio.wait_for(self.proc.stdout.readline(), ANSWER_TIMEOUT_S)
        if not line:
            raise GoLoadError(f"{op}: the client exited ({await self.proc.wait()})")
        return decode(line, op)

    async def close(self) -> None:
        if self.proc.returncode is None:
            try:
                await asyncio.wait_for(self.call("quit"), 10)
                await asyncio.wait_for(self.proc.wait(), 10)
            except (GoLoadError, TimeoutError, ConnectionError):
                self.proc.kill()
                await self.proc.wait()

    async def __aenter__(self) -> GoLoad:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()
