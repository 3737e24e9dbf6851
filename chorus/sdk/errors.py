"""What the client SDK raises.

Hierarchy::

    ChorusClientError       a request was refused for good, or no region could take it
    Unreachable             a gateway could not be reached; the watch loop tries the next
    └── HandshakeRefused    a gateway answered the WebSocket upgrade with an HTTP error
    MalformedFrame          a server frame of a known type with wrong fields (frames.py)

Only `ChorusClientError` reaches the application. `Unreachable` stays inside the watch loop,
and `MalformedFrame` is counted (``Client.malformed_frames``) and logged, then skipped.
aiohttp's errors never leave chorus/sdk/transports.py, history.py and regions.py.
"""

from __future__ import annotations


class ChorusClientError(Exception):
    """A request was refused for good (4xx other than 429), or no region could take it.

    ``status`` is the HTTP status (0: no gateway answered at all), ``code`` the error code of
    the body (docs/protocol.md), ``"unavailable"`` when no region took the request, and
    ``"outcome_unknown"`` when a post may have been stored by a region that never said so:
    post again later with ``client_key`` (the SDK sends it to that same region)."""

    def __init__(self, status: int, code: str, message: str, *,
                 client_key: str | None = None) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.client_key = client_key


class Unreachable(Exception):
    """A gateway could not be reached or refused the connection; try the next one.
    ``retry_after_s``: the refusal's ``Retry-After`` in seconds (None: it gave none)."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class HandshakeRefused(Unreachable):
    """The WebSocket upgrade was answered with HTTP ``status``: the SSE transport may still
    work there, unless the refusal is about the client (401, 403, 429)."""

    def __init__(self, status: int, message: str, *,
                 retry_after_s: float | None = None) -> None:
        super().__init__(f"WebSocket upgrade answered {status}: {message}",
                         retry_after_s=retry_after_s)
        self.status = status
