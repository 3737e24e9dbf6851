"""Connection caps: the gateway's total, each user's, each address's (region/connections.py)."""

from __future__ import annotations

import pytest

from chorus.config import Limits
from region.connections import Connections, address_key
from region.errors import ApiError, ErrorCode

LIMITS = Limits(max_connections_per_gateway=6, max_connections_per_user=2,
                max_connections_per_ip=3)


def refused(connections: Connections, user: str, remote: str | None) -> ErrorCode:
    with pytest.raises(ApiError) as info:
        connections.admit(user, remote)
    return info.value.code


def test_one_user_cannot_take_more_than_its_share() -> None:
    c = Connections(LIMITS)
    first = c.admit("ana", "203.0.113.1")
    c.admit("ana", "198.51.100.7")        # another address: the user's cap still counts
    assert refused(c, "ana", "192.0.2.9") is ErrorCode.TOO_MANY_CONNECTIONS
    assert c.of_user("ana") == 2 and c.total == 2
    first.release()
    first.release()                       # a ticket gives its slot back once
    assert c.of_user("ana") == 1 and c.total == 1
    c.admit("ana", "192.0.2.9")


def test_one_address_cannot_take_more_than_its_share() -> None:
    c = Connections(LIMITS)
    for user in ("a", "b", "c"):
        c.admit(user, "203.0.113.1")
    assert refused(c, "d", "203.0.113.1") is ErrorCode.TOO_MANY_CONNECTIONS
    c.admit("d", "203.0.113.2")


def test_an_ipv6_client_counts_by_its_64() -> None:
    c = Connections(LIMITS)
    for i, user in enumerate(("a", "b", "c")):
        c.admit(user, f"2001:db8:1:2::{i + 1}")
    assert refused(c, "d", "2001:db8:1:2:ffff::9") is ErrorCode.TOO_MANY_CONNECTIONS
    c.admit("d", "2001:db8:1:3::1")
    assert address_key("::ffff:203.0.113.5") == "203.0.113.5"
    assert address_key("fe80::1%eth0") == "fe80::/64"
    assert address_key(None) is None and address_key("not an ip") is None


def test_the_gateway_total_is_503_and_comes_first() -> None:
    c = Connections(LIMITS)
    tickets = [c.admit(f"u{i}", f"203.0.113.{i}") for i in range(6)]
    assert refused(c, "new", "198.51.100.1") is ErrorCode.UNAVAILABLE
    with tickets[0]:
        pass                              # leaving the block releases the slot
    c.admit("new", "198.51.100.1")


def test_zero_means_no_per_address_cap() -> None:
    c = Connections(Limits(max_connections_per_ip=0, max_connections_per_user=100))
    for i in range(50):
        c.admit(f"u{i}", "10.0.0.1")
    assert c.of_address("10.0.0.1") == 50 and c.total == 50
