"""Durable consumer names: one per region, so that acknowledgements cannot cross regions."""

from __future__ import annotations

import itertools

from chorus.names import (
    LEGACY_ARCHIVE_DURABLE,
    archive_durable,
    legacy_outbox_durable,
    outbox_durable,
)

REGIONS = ("us-east", "eu-west", "ap-south", "us")


def consumers_of(region: str) -> set[str]:
    return {archive_durable(region),
            *(outbox_durable(region, dest) for dest in REGIONS if dest != region)}


def test_no_two_regions_have_a_consumer_of_the_same_name() -> None:
    # Acks travel on $JS.ACK.<stream>.<durable>...: a name shared by two regions' consumers
    # lets one region's acks acknowledge the other's messages.
    for a, b in itertools.combinations(REGIONS, 2):
        assert not consumers_of(a) & consumers_of(b), (a, b)


def test_names_are_valid_durable_names() -> None:
    for region in REGIONS:
        for name in consumers_of(region):
            assert not set(name) & set(". *>\t"), name


def test_the_names_of_earlier_versions_are_kept_for_the_migration() -> None:
    assert legacy_outbox_durable("eu-west") == "fwd-eu-west"
    assert LEGACY_ARCHIVE_DURABLE == "archive"
    assert legacy_outbox_durable("eu-west") not in consumers_of("us-east")
