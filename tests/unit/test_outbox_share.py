"""The outbox leases' share (global_/outbox_share.py), on plain values: a gateway holding
more than its share of the region's leases gives one back, one at a time, never below it."""

from __future__ import annotations

from dataclasses import dataclass

from global_.outbox_share import SHED_EVERY_S, Share, fair_share, over_share, to_shed


@dataclass
class FakeLease:
    held: bool = False


def test_a_share_is_the_leases_over_the_gateways_rounded_up() -> None:
    assert fair_share(10, 2) == 5
    assert fair_share(10, 3) == 4
    assert fair_share(10, 20) == 1
    assert fair_share(10, 0) == 10     # unknown: as if alone
    assert over_share(6, 10, 2) and not over_share(5, 10, 2)
    assert not over_share(10, 10, 0)


def test_the_last_lease_held_goes_and_none_when_within_the_share() -> None:
    leases = [FakeLease(held=i < 7) for i in range(10)]
    assert to_shed(leases, 2) is leases[6]
    assert to_shed(leases, 1) is None
    assert to_shed([FakeLease() for _ in range(10)], 5) is None


def test_one_lease_given_back_at_a_time() -> None:
    now = [100.0]
    gateways = [2]
    share = Share(lambda: gateways[0], clock=lambda: now[0])
    leases = [FakeLease(held=True) for _ in range(4)]
    for lease in leases:
        share.add(lease)
    # Only the one to give back says so, and only once per SHED_EVERY_S.
    assert [share.shed(lease) for lease in leases] == [False, False, False, True]
    leases[3].held = False
    assert not share.shed(leases[2])
    now[0] += SHED_EVERY_S
    assert share.shed(leases[2])
    leases[2].held = False
    now[0] += SHED_EVERY_S
    assert not any(share.shed(lease) for lease in leases)     # 2 of 4: its share
    gateways[0] = 0                                          # the count is unknown
    leases[2].held = leases[3].held = True
    assert not any(share.shed(lease) for lease in leases)
