"""How long the watch loop waits before its next connection attempt. Pure.

An attempt counts as a connection only once the server said ``hello``. One that ended
before (a gateway past a connection cap closes with 4429 right after the upgrade, a gateway
shutting down closes before it served) or was refused (an HTTP status for the upgrade or the
SSE request) is a failed attempt: the backoff keeps growing, as after a connection that could
not be opened, and starts over only after a hello. Otherwise a client refused at once would
reconnect at the first, shortest wait forever, and a fleet of them would hammer the gateway
that refuses them.

The server's hints are a floor under the backoff: a refusal's ``Retry-After``, a ``bye``'s
``retry_in_ms``, and for a close code (which carries no header) the wait that the same
refusal gets over HTTP (`CLOSE_RETRY_S`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from chorus.backoff import Backoff

# What region/connections.py answers over HTTP for the refusals a WebSocket gets as a close
# code after its upgrade: Retry-After 5 for a user's or an address's connection cap
# (4429), 1 for a gateway at its own limit (4503).
CLOSE_RETRY_S = {4429: 5.0, 4503: 1.0}
# A hint above this is read as this: a broken or hostile server cannot park clients for good.
HINT_MAX_S = 60.0


@dataclass
class Attempt:
    """What one connection attempt showed, filled in as it goes."""

    hello: bool = False                 # the server said hello: the attempt connected
    close_code: int | None = None       # the WebSocket's close code, when it was closed
    retry_after_s: float | None = None  # the server's own hint (Retry-After, bye.retry_in_ms)

    def hint_s(self) -> float:
        """The earliest retry the server asked for, seconds (0: none)."""
        hints = [CLOSE_RETRY_S.get(self.close_code or 0, 0.0)]
        if self.retry_after_s is not None and math.isfinite(self.retry_after_s):
            hints.append(self.retry_after_s)
        return min(max(0.0, *hints), HINT_MAX_S)


def wait_after(attempt: Attempt, backoff: Backoff) -> float:
    """The wait before the next attempt, seconds: the backoff's next wait (started over
    when ``attempt`` connected), or the server's hint when that is longer."""
    if attempt.hello:
        backoff.reset()
    return max(backoff.next(), attempt.hint_s())


def retry_after(header: str | None) -> float:
    """Seconds to wait from a 429's ``Retry-After`` (our gateways send seconds); 1 when it
    is missing or not a number of seconds (an HTTP date, say)."""
    try:
        seconds = float(header) if header is not None else 1.0
    except ValueError:
        return 1.0
    return max(0.0, seconds) if math.isfinite(seconds) else 1.0
