"""The one table of driver errors, and their translation into Chorus's `Unavailable` family.

An adapter (region/log_jetstream.py, region/presence_redis.py, region/archive_cassandra.py,
...) wraps every driver call in ``with translated(LogUnavailable, "storing a comment"):``;
whatever the driver raises leaves as the interface's own error, with the driver's exception
as its ``__cause__``. Nothing above an adapter catches a driver exception.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Literal

from nats.errors import Error as NatsError
from nats.js.errors import Error as JsError
from redis.exceptions import RedisError

from chorus.errors import Unavailable

Driver = Literal["nats", "redis", "cassandra"]


def _cassandra_errors() -> tuple[type[BaseException], ...]:
    # Imported only when asked for: a cluster without the archive never loads the driver.
    from cassandra import DriverException
    from cassandra.cluster import NoHostAvailable
    from cassandra.connection import ConnectionException

    # None of these three derives from another: a refused or dropped connection is a
    # ConnectionException, not a DriverException.
    return (DriverException, NoHostAvailable, ConnectionException)


_TABLE: dict[Driver, tuple[type[BaseException], ...]] = {
    # nats.errors.TimeoutError is asyncio's TimeoutError's subclass; a bare TimeoutError
    # comes from asyncio.wait_for around a driver call.
    "nats": (NatsError, JsError, TimeoutError, OSError),
    "redis": (RedisError, OSError, TimeoutError),
}


def driver_errors(driver: Driver) -> tuple[type[BaseException], ...]:
    """What a call into ``driver`` raises when its server is away, slow or refusing."""
    if driver not in _TABLE:
        _TABLE[driver] = (*_cassandra_errors(), OSError, TimeoutError)
    return _TABLE[driver]


DESCRIBE_MAX_CHARS = 300  # NoHostAvailable lists every host's error: keep log lines short


def describe(exc: BaseException) -> str:
    """A driver error in words, at most `DESCRIBE_MAX_CHARS`: some (nats-py's timeouts)
    have an empty ``str``."""
    text = str(exc).strip()
    name = type(exc).__name__
    words = f"{name}: {text}" if text and name not in text else (text or name)
    return words[:DESCRIBE_MAX_CHARS]


@contextlib.contextmanager
def translated(into: type[Unavailable], doing: str, *, driver: Driver = "nats"
               ) -> Iterator[None]:
    """Raises ``into("<doing>: <driver error>")`` from any error of ``driver``'s table."""
    try:
        yield
    except driver_errors(driver) as exc:
        if isinstance(exc, Unavailable):
            raise
        raise into(f"{doing}: {describe(exc)}") from exc
