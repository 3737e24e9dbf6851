"""Publishing into JetStream with many stores in flight: one reply subscription, one timer.

nats-py's `JetStreamContext.publish` is a request: each call mints a random inbox token (a
``getrandom`` system call), arms a timeout timer of its own, and decodes the ack through the
general JSON decoder into a dataclass. A busy gateway stores hundreds of comments at once,
so `AckedPublisher` does less per store: each publish names a reply subject of the
publisher's own subscription (``<inbox>.<n>``, n a counter), nats-py's flusher sends every
publish of one event-loop step in one socket write, and each ack resolves its caller's
future by its token. Deadlines are all ``publish time + timeout_s`` with one ``timeout_s``,
so they are in the order of the publishes: a deque of them is swept by one timer armed for
the oldest (plus `SWEEP_SLACK_S`, so that one sweep takes every deadline of that stretch),
not a timer per store.

What the caller hears is what `JetStreamContext.publish` said, in the log's terms: an `Ack`
(stored, or a duplicate of the message with the same ``Nats-Msg-Id``), or `AckError` (the
stream refused it, nothing captured the subject, or no ack came within ``timeout_s``); the
driver's own errors (disconnected, closed) leave from `publish` as they are raised, for the
adapter to translate.
"""

from __future__ import annotations

import asyncio
import collections
import json
from dataclasses import dataclass

from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

# A sweep waits this long past the oldest deadline, so that it fails every publish whose
# deadline fell in that stretch at once: a timeout is heard up to this much late, and the
# timer fires at most about once per stretch however many stores are in flight.
SWEEP_SLACK_S = 0.5


@dataclass(frozen=True)
class Ack:
    """JetStream's answer to a stored publish."""

    seq: int
    duplicate: bool


class AckError(Exception):
    """The publish was not stored: refused, captured by no stream, or not acknowledged in
    time. Whether it was stored after all is unknown only in the last case."""


def parse_ack(data: bytes, status: str | None = None) -> Ack:
    """An ack's body (``{"stream": ..., "seq": n, "duplicate": true}``) as an `Ack`; `AckError`
    for an error body, a status-only answer (503: no stream captures the subject) or a body
    that is not an ack. Pure."""
    if status:
        raise AckError("no stream captures the subject" if status == "503"
                       else f"JetStream answered status {status}")
    try:
        doc = json.loads(data)
    except ValueError:
        raise AckError(f"the ack is not JSON: {data[:80]!r}") from None
    if not isinstance(doc, dict):
        raise AckError(f"the ack is not a JSON object: {data[:80]!r}")
    error = doc.get("error")
    if error is not None:
        described = error.get("description", error) if isinstance(error, dict) else error
        raise AckError(f"JetStream refused the message: {described}")
    seq = doc.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise AckError(f"the ack has no sequence: {data[:80]!r}")
    return Ack(seq=seq, duplicate=doc.get("duplicate") is True)


class AckedPublisher:
    """Publishes onto JetStream subjects and waits for each ack, many at once.

    ``timeout_s``: how long a publish waits for its ack before `AckError`. The reply
    subscription is made on first use and lives as long as the NATS connection (nats-py
    renews it after a reconnect); `close` fails what still waits."""

    def __init__(self, nc: Nats, *, timeout_s: float) -> None:
        self.nc = nc
        self.timeout_s = timeout_s
        self._prefix = ""
        self._sub: Subscription | None = None
        self._next = 0
        self._waiting: dict[str, asyncio.Future[Ack]] = {}
        # (deadline, token), oldest first: the order of the publishes.
        self._deadlines: collections.deque[tuple[float, str]] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None

    async def publish(self, subject: str, payload: bytes, *,
                      headers: dict[str, str] | None = None) -> Ack:
        """Publishes and returns the ack. Raises `AckError`, or the driver's error when the
        message could not be sent (nothing was stored then)."""
        if self._sub is None:
            await self._subscribe()
        self._next += 1
        token = str(self._next)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Ack] = loop.create_future()
        self._waiting[token] = future
        try:
            await self.nc.publish(subject, payload, reply=self._prefix + token,
                                  headers=headers)
        except BaseException:
            del self._waiting[token]
            raise
        deadlines = self._deadlines
        while deadlines and deadlines[0][1] not in self._waiting:
            deadlines.popleft()  # answered: its deadline no longer matters
        deadlines.append((loop.time() + self.timeout_s, token))
        if self._timer is None:
            self._timer = loop.call_at(deadlines[0][0] + SWEEP_SLACK_S, self._expire)
        try:
            return await future
        finally:
            self._waiting.pop(token, None)

    async def _subscribe(self) -> None:
        prefix = self.nc.new_inbox() + "."
        sub = await self.nc.subscribe(prefix + "*", cb=self._on_reply)
        if self._sub is None:
            self._prefix, self._sub = prefix, sub
        else:  # another caller subscribed meanwhile
            await sub.unsubscribe()

    async def _on_reply(self, msg: Msg) -> None:
        future = self._waiting.get(msg.subject[len(self._prefix):])
        if future is None or future.done():
            return  # its caller timed out or went away
        try:
            future.set_result(parse_ack(msg.data, (msg.headers or {}).get("Status")))
        except AckError as exc:
            future.set_exception(exc)

    def _expire(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        while self._deadlines and self._deadlines[0][0] <= now:
            _, token = self._deadlines.popleft()
            future = self._waiting.get(token)
            if future is not None and not future.done():
                future.set_exception(AckError(f"no ack within {self.timeout_s:g} s"))
        while self._deadlines and self._deadlines[0][1] not in self._waiting:
            self._deadlines.popleft()
        if self._deadlines:
            self._timer = loop.call_at(self._deadlines[0][0] + SWEEP_SLACK_S, self._expire)

    async def close(self) -> None:
        """Fails every publish still waiting and ends the reply subscription."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(AckError("the publisher was closed"))
        self._deadlines.clear()
        if self._sub is not None:
            sub, self._sub = self._sub, None
            await sub.unsubscribe()
