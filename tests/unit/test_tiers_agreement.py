"""The agreement's reading of a stream (global_/tiers.py): every region's viewers, read
globally, where a region that does not answer keeps the count it gave last rather than
dropping the stream out of its tier."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from chorus.config import Tiers
from chorus.metrics import Metrics
from global_.hub import Rejections
from global_.presence import Answer
from global_.tiers import TierAgreement
from region.presence import PresenceUnavailable
from region.tiers import Reading, Tier, TierBoard


class Directory:
    """The presence directory's answers, set by the test (None: no answer)."""

    def __init__(self, regions: Sequence[str]) -> None:
        self.regions = tuple(regions)
        self.counts: dict[str, int | None] = {}

    async def viewers(self, stream: str, region: str) -> Answer:
        return Answer(region, self.counts.get(region))


class Presence:
    def __init__(self) -> None:
        self.count_now: int | None = 1

    async def count(self, stream: str) -> int:
        if self.count_now is None:
            raise PresenceUnavailable("down")
        return self.count_now

    async def counts(self, streams: Sequence[str]) -> Mapping[str, int]:
        raise NotImplementedError


class Store:
    async def keep(self, gateway: str, streams: Iterable[str]) -> set[str]:
        return set(streams)


class Host:
    def followed(self) -> dict[str, float]:
        return {"s": 40.0}

    def apply_tier(self, stream: str, tier: Tier, *, keeper: bool,
                   reading: Reading | None) -> None:
        pass


def agreement(directory: Directory, presence: Presence) -> TierAgreement:
    metrics = Metrics("ap-south", "0")
    return TierAgreement(cast(Any, None), region="ap-south", gateway="ap-south.0",
                         tiers=Tiers(), board=TierBoard("ap-south"), store=Store(),
                         presence=cast(Any, presence), directory=cast(Any, directory),
                         host=Host(), metrics=metrics, rejections=Rejections(metrics))


async def test_a_region_that_stops_answering_counts_what_it_answered_last() -> None:
    directory, presence = Directory(["eu-west", "us-east"]), Presence()
    tiers = agreement(directory, presence)
    directory.counts = {"eu-west": 4, "us-east": 7}
    assert (await tiers._reading("s", 40.0)).viewers == 12
    directory.counts = {"eu-west": None, "us-east": 2}     # eu-west's link is slow
    presence.count_now = None                              # and our Redis does not answer
    assert await tiers._reading("s", 40.0) == Reading(viewers=1 + 4 + 2, rate_per_s=40.0)


async def test_a_region_never_heard_counts_for_nothing() -> None:
    directory, presence = Directory(["eu-west", "us-east"]), Presence()
    directory.counts = {"eu-west": None, "us-east": 3}
    assert (await agreement(directory, presence)._reading("s", 1.0)).viewers == 4
