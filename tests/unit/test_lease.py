"""The lease's one decision, on plain values: when a holder that could not renew must stop."""

from __future__ import annotations

from chorus.lease import LAPSE_FRACTION, LeaseSpec, lapsed


def test_a_holder_stops_before_the_server_could_let_anyone_else_in() -> None:
    assert not lapsed(renewed_at=100.0, now=100.0, ttl_s=5.0)
    assert not lapsed(renewed_at=100.0, now=103.0, ttl_s=5.0)
    assert lapsed(renewed_at=100.0, now=100.0 + 5.0 * LAPSE_FRACTION, ttl_s=5.0)
    assert lapsed(renewed_at=100.0, now=105.0, ttl_s=5.0)   # the server may have expired it


def test_a_holder_renews_several_times_before_it_would_lapse() -> None:
    spec = LeaseSpec(bucket="b", key="k", ttl_s=5.0)
    assert spec.renew_every_s * 3 < spec.ttl_s * LAPSE_FRACTION
    config = spec.config()
    assert (config.bucket, config.ttl, config.history) == ("b", 5.0, 1)
