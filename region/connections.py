"""Which live connections a gateway takes: its total, each user's share, each address's share.

Every WebSocket, SSE stream and long-poll holds a `Ticket` from `Connections.admit` for its
whole life. Admission is synchronous (no await between the check and the count), so a burst
of a thousand opens cannot all pass the check before any of them is counted.

The caps bound what one token or one machine can take from a gateway (docs/security.md):
without them a single viewer token could hold every slot of ``max_connections_per_gateway``
and lock everyone else out. An IPv6 client counts by its /64, the block a single subscriber
usually gets; an IPv4-mapped IPv6 address counts as the IPv4 address.
"""

from __future__ import annotations

import ipaddress
from collections import Counter

from chorus.config import Limits
from region.errors import ApiError, ErrorCode


def address_key(remote: str | None) -> str | None:
    """What the per-address cap counts ``remote`` (a peer's IP address) as; None for a peer
    without one (a Unix socket) or an unparsable one, which only the other caps bound."""
    if not remote:
        return None
    try:
        ip = ipaddress.ip_address(remote.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class Ticket:
    """One admitted connection; `release` (or leaving the ``with`` block) gives its slot back,
    once."""

    def __init__(self, owner: Connections, user: str, address: str | None) -> None:
        self._owner = owner
        self.user = user
        self.address = address
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._owner._release(self)

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class Connections:
    """The live connections of one gateway, by user and by client address."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.total = 0
        self._users: Counter[str] = Counter()
        self._addresses: Counter[str] = Counter()

    def of_user(self, user: str) -> int:
        return self._users[user]

    def of_address(self, remote: str | None) -> int:
        key = address_key(remote)
        return self._addresses[key] if key is not None else 0

    def admit(self, user: str, remote: str | None) -> Ticket:
        """A slot for ``user`` connecting from ``remote``. Raises ApiError: 503
        ``unavailable`` when the gateway is full (another gateway may have room), 429
        ``too_many_connections`` when the user or the address is at its cap."""
        lim = self.limits
        if self.total >= lim.max_connections_per_gateway:
            raise ApiError(ErrorCode.UNAVAILABLE, "this gateway is full; try another of the "
                                                  "region's gateways", retry_after_s=1)
        if self._users[user] >= lim.max_connections_per_user:
            raise ApiError(ErrorCode.TOO_MANY_CONNECTIONS,
                           f"this user has {lim.max_connections_per_user} live connections on "
                           "this gateway (limits.max_connections_per_user); close one first",
                           retry_after_s=5)
        key = address_key(remote)
        cap = lim.max_connections_per_ip
        if key is not None and cap and self._addresses[key] >= cap:
            raise ApiError(ErrorCode.TOO_MANY_CONNECTIONS,
                           f"this address has {cap} live connections on this gateway "
                           "(limits.max_connections_per_ip); close one first", retry_after_s=5)
        self.total += 1
        self._users[user] += 1
        if key is not None:
            self._addresses[key] += 1
        return Ticket(self, user, key)

    def _release(self, ticket: Ticket) -> None:
        self.total -= 1
        self._users[ticket.user] -= 1
        if self._users[ticket.user] <= 0:
            del self._users[ticket.user]
        if ticket.address is not None:
            self._addresses[ticket.address] -= 1
            if self._addresses[ticket.address] <= 0:
                del self._addresses[ticket.address]
