import math

import pytest

from chorus.sdk.regions import RegionInfo, next_region, parse_regions, post_order, rank


def region(name: str, *, healthy: bool = True, rtt: float = math.inf, link: int = 0,
           urls: tuple[str, ...] = ()) -> RegionInfo:
    return RegionInfo(name, urls or (f"http://{name}",), healthy, link, rtt)


def names(regions: list[RegionInfo]) -> list[str]:
    return [r.name for r in regions]


def test_parse_reads_the_regions_endpoint_and_drops_regions_without_a_url() -> None:
    doc = {"region": "a", "regions": [
        {"name": "a", "urls": ["http://a0", "http://a1"], "healthy": True,
         "gateways_healthy": 2, "last_seen_s": 0.5, "link_latency_ms": 20},
        {"name": "b", "urls": ["http://b0"], "healthy": False},
        {"name": "c", "urls": [], "healthy": True},
    ]}
    assert parse_regions(doc) == [RegionInfo("a", ("http://a0", "http://a1"), True, 20),
                                  RegionInfo("b", ("http://b0",), False, 0)]


@pytest.mark.parametrize("doc", [None, [], {}, {"regions": [{"name": "a"}]},
                                 {"regions": [{"name": "a", "urls": 3, "healthy": True}]}])
def test_parse_refuses_what_is_not_a_region_list(doc: object) -> None:
    with pytest.raises(ValueError, match="not a region list"):
        parse_regions(doc)


def test_rank_puts_preferred_then_healthy_then_nearest() -> None:
    regions = [region("far", rtt=80), region("sick", healthy=False, rtt=1),
               region("near", rtt=10), region("mine", rtt=200)]
    assert names(rank(regions, prefer="mine")) == ["mine", "near", "far", "sick"]
    assert names(rank(regions, prefer=None)) == ["near", "far", "mine", "sick"]


def test_rank_breaks_near_ties_by_configured_link_latency() -> None:
    # 1.2 ms and 3.9 ms are one machine's noise; the configured latency decides.
    regions = [region("a", rtt=1.2, link=80), region("b", rtt=3.9, link=20),
               region("c", rtt=7.0, link=0)]
    assert names(rank(regions, prefer=None)) == ["b", "a", "c"]


def test_rank_puts_unmeasured_last_among_healthy() -> None:
    regions = [region("unmeasured"), region("slow", rtt=900)]
    assert names(rank(regions, prefer=None)) == ["slow", "unmeasured"]


def test_failover_goes_to_the_best_healthy_other_region() -> None:
    ranked = [region("a"), region("b", healthy=False), region("c"), region("d")]
    assert next_region(ranked, "a").name == "c"
    assert next_region(ranked, "c").name == "a"
    assert next_region(ranked, None).name == "a"


def test_failover_with_no_healthy_other_takes_any_other_then_itself() -> None:
    assert next_region([region("a"), region("b", healthy=False)], "a").name == "b"
    assert next_region([region("a", healthy=False)], "a").name == "a"


def test_post_goes_to_the_current_region_first() -> None:
    ranked = [region("a", urls=("a0", "a1")), region("b", urls=("b0",)),
              region("c", urls=("c0",))]
    assert post_order(ranked, "b") == ["b0", "a0", "a1", "c0"]
    assert post_order(ranked, None) == ["a0", "a1", "b0", "c0"]
