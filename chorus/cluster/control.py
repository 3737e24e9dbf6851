"""Process control of a running `chorus up`, for chaos drills run from another process.

A drill kills, freezes and restarts the local cluster's servers. Only the `chorus up` that
started them can start them again (each child dies with its parent, and `chorus up` watches
and stops its own), so it listens on a unix socket in its run directory
(``RunLayout.control``, reachable only by the user who runs it) and does it on request. One
JSON object per line each way::

    {"op": "kill" | "start" | "freeze" | "thaw", "part": "us-east/nats"}  ->  {"ok": true}
    {"op": "parts", "region": "us-east"}                                 ->  {"ok": true,
                                                                              "parts": [...]}
    anything else                                                        ->  {"ok": false,
                                                                              "error": "..."}

Parts are the names `chorus status` and the logs use (``<region>/nats``, ``<region>/redis``,
``<region>/gateway-<i>``, ``<region>/cassandra``). Tests drive a `LocalCluster` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from chorus.cluster.local import LocalCluster
from chorus.errors import ChorusError, ClusterError

MAX_LINE = 4096
REPLY_TIMEOUT_S = 60.0   # starting a server waits for nothing, but stopping one may take 10 s


async def apply(cluster: LocalCluster, request: dict[str, Any]) -> dict[str, Any]:
    """Carries out one request on ``cluster``; the reply to send."""
    op = request.get("op")
    try:
        if op == "parts":
            return {"ok": True, "parts": cluster.parts(str(request.get("region")))}
        part = str(request.get("part", ""))
        match op:
            case "kill":
                cluster.child(part).kill()
            case "freeze":
                cluster.child(part).freeze()
            case "thaw":
                cluster.child(part).thaw()
            case "start":
                if cluster.child(part).alive:
                    return {"ok": True, "already": "running"}
                await cluster.restart(part)
            case _:
                return {"ok": False, "error": f"unknown op {op!r}"}
    except ChorusError as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": True}


@contextlib.asynccontextmanager
async def serving(cluster: LocalCluster, path: Path) -> AsyncIterator[None]:
    """Answers control requests on ``path`` while the context lasts."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                try:
                    request = json.loads(line[:MAX_LINE])
                    reply = (await apply(cluster, request) if isinstance(request, dict)
                             else {"ok": False, "error": "a request is a JSON object"})
                except ValueError:
                    reply = {"ok": False, "error": "a request is one line of JSON"}
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    _remove(path)  # left by a `chorus up` that was killed
    server = await asyncio.start_unix_server(handle, path=str(path), limit=MAX_LINE)
    os.chmod(path, 0o600)
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()
        _remove(path)


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


async def request(path: Path, message: dict[str, Any]) -> dict[str, Any]:
    """Sends one request to the `chorus up` listening on ``path``; `ClusterError` when it
    cannot be reached or refuses."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(str(path)), 5.0)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"no `chorus up` answers on {path}: {exc}") from exc
    try:
        writer.write(json.dumps(message).encode() + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), REPLY_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"`chorus up` at {path} did not answer: {exc}") from exc
    finally:
        writer.close()
    try:
        reply = json.loads(line)
    except ValueError as exc:
        raise ClusterError(f"`chorus up` at {path} answered nonsense") from exc
    if not isinstance(reply, dict) or not reply.get("ok"):
        raise ClusterError(f"`chorus up` refused {message}: "
                           f"{reply.get('error') if isinstance(reply, dict) else reply}")
    return reply
