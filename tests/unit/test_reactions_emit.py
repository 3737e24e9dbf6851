"""When the emitter looks for closed seconds: just after each second's boundary."""

from __future__ import annotations

import pytest

from region.reactions_emit import AFTER_BOUNDARY_S, until_next_claim


@pytest.mark.parametrize(("now", "wait"), [
    (100.0, AFTER_BOUNDARY_S),            # on a boundary: the second that closed on it
    (100.5, 0.5 + AFTER_BOUNDARY_S),      # mid-second: nothing closes before the next one
    (100.05, 1.0),                        # just claimed the one that closed at 100
    (100.02, AFTER_BOUNDARY_S - 0.02),    # a pass ended before its claim was due
    (100.999, 0.001 + AFTER_BOUNDARY_S),
])
def test_the_next_claim_is_just_after_the_next_boundary(now: float, wait: float) -> None:
    assert until_next_claim(now) == pytest.approx(wait)


def test_an_idle_gateway_claims_once_a_second() -> None:
    now, claims = 1000.3, []
    while now < 1010.0:
        now += until_next_claim(now)
        claims.append(now)
        now += 0.004   # the claim itself
    assert claims == pytest.approx([1001.0 + n + AFTER_BOUNDARY_S for n in range(10)])
