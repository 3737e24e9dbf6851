import pytest

from global_.hub import Heartbeat, HubMessageError
from global_.registry import RegistryState


def test_region_is_healthy_while_a_gateway_beats() -> None:
    state = RegistryState(interval_s=1.0)
    state.observe(Heartbeat("eu-west", "http://a", True, 1), now=10.0)
    assert state.health("eu-west", now=12.9).healthy
    assert state.health("eu-west", now=12.9).gateways_healthy == 1


def test_region_goes_down_when_heartbeats_stop_or_say_unhealthy() -> None:
    state = RegistryState(interval_s=1.0)
    state.observe(Heartbeat("eu-west", "http://a", True, 1), now=10.0)
    assert not state.health("eu-west", now=13.5).healthy
    state.observe(Heartbeat("eu-west", "http://a", False, 2), now=14.0)
    health = state.health("eu-west", now=14.0)
    assert not health.healthy and health.last_seen_s == 0.0


def test_unknown_region_was_never_seen() -> None:
    health = RegistryState(interval_s=1.0).health("ap-south", now=5.0)
    assert not health.healthy and health.last_seen_s is None


def test_heartbeat_round_trip_and_rejects_garbage() -> None:
    beat = Heartbeat("us-east", "http://x", True, 123)
    assert Heartbeat.decode(beat.encode()) == beat
    for bad in (b"[]", b"{}", b"not json", b'{"region": "a"}'):
        with pytest.raises(HubMessageError):
            Heartbeat.decode(bad)


def test_urls_are_the_ones_announced_lately() -> None:
    state = RegistryState(interval_s=1.0)
    state.observe(Heartbeat("eu-west", "https://lb", True, 1), now=10.0)
    state.observe(Heartbeat("eu-west", "https://lb", True, 2), now=10.5)
    state.observe(Heartbeat("eu-west", "http://old", True, 1), now=5.0)
    assert state.urls("eu-west", now=11.0) == ("https://lb",)
    assert state.urls("us-east", now=11.0) == ()


def test_gateways_remembered_are_bounded_the_stalest_forgotten_first() -> None:
    state = RegistryState(interval_s=1.0, max_gateways=3)
    for i in range(5):
        state.observe(Heartbeat("eu-west", f"http://g{i}", True, 1), now=float(i))
    assert len(state.seen) == 3
    assert state.urls("eu-west", now=4.0) == ("http://g2", "http://g3", "http://g4")
    state.observe(Heartbeat("eu-west", "http://g2", True, 2), now=5.0)  # known: kept
    assert len(state.seen) == 3
