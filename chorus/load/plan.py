"""What a load run does, decided without I/O: its bounds, its profile over time, its
transports, and which addresses it may reach.

A run has N viewers and M posters per region, spread over ``streams`` streams, for
``duration_s`` seconds, following a profile:

- ``steady``: every viewer from the start (opened over the first second), a constant rate;
- ``ramp``: viewers and rate grow linearly from a tenth to all of them over the run;
- ``spike``: steady, and in the middle third a viral stream (the first) gets as many extra
  viewers again and four times the base rate on top;
- ``churn``: the viewer count is constant but each viewer lives a random time (mean a fifth of
  the run) and is replaced by a new one, so viewers join and leave all along.

Everything is bounded (`MAX_*`): a run never exceeds them whatever it is asked, and a run
targets only the gateways (client and operator ports) of the regions.yaml it was given,
and only loopback addresses unless the operator says the deployment is theirs.
"""

from __future__ import annotations

import ipaddress
import math
import random
from dataclasses import dataclass
from urllib.parse import urlsplit

from chorus.config import Config
from chorus.errors import ChorusError

PROFILES = ("steady", "ramp", "spike", "churn")
TRANSPORTS = ("ws", "sse", "poll")
MAX_VIEWERS_PER_REGION = 2000     # baseline; a spike adds as many again
MAX_POSTERS_PER_REGION = 100
MAX_RATE_PER_REGION = 500.0       # posts/s, baseline (a spike adds 4x on one stream)
MAX_DURATION_S = 900.0
MAX_STREAMS = 100
SPIKE_FACTOR = 4.0                # the viral stream's extra rate, in multiples of the base
RAMP_FLOOR = 0.1                  # a ramp starts at this share of viewers and rate


class LoadError(ChorusError):
    """A load run was refused: out of bounds, or a target not in the regions.yaml."""


@dataclass(frozen=True)
class LoadSpec:
    """One run. ``viewers``, ``posters`` and ``rate`` (posts/s) are per region."""

    profile: str = "steady"
    viewers: int = 20
    posters: int = 2
    rate: float = 5.0
    duration_s: float = 30.0
    streams: int = 4
    mix: tuple[tuple[str, float], ...] = (("ws", 0.6), ("sse", 0.3), ("poll", 0.1))
    settle_s: float = 3.0         # a leaving viewer owes nothing acknowledged this late
    drain_s: float = 10.0         # after the last post: how long comments may still arrive

    def check(self) -> None:
        if self.profile not in PROFILES:
            raise LoadError(f"profile is one of {', '.join(PROFILES)}, not {self.profile!r}")
        bounds = (("viewers", self.viewers, 0, MAX_VIEWERS_PER_REGION),
                  ("posters", self.posters, 1, MAX_POSTERS_PER_REGION),
                  ("rate", self.rate, 0.1, MAX_RATE_PER_REGION),
                  ("duration", self.duration_s, 1.0, MAX_DURATION_S),
                  ("streams", self.streams, 1, MAX_STREAMS),
                  ("drain", self.drain_s, 0.0, 60.0))
        for name, value, low, high in bounds:
            if not low <= value <= high:
                raise LoadError(f"--{name} is {low:g} to {high:g} (got {value:g}): a load run "
                                "is bounded")
        if not self.mix or abs(sum(w for _, w in self.mix) - 1.0) > 1e-6:
            raise LoadError("the transport mix must have shares summing to 100")


def parse_mix(text: str) -> tuple[tuple[str, float], ...]:
    """``ws=60,sse=30,poll=10`` (any positive weights) as shares summing to 1."""
    parts: list[tuple[str, float]] = []
    for item in text.split(","):
        name, _, weight = item.strip().partition("=")
        if name not in TRANSPORTS:
            raise LoadError(f"a transport is one of {', '.join(TRANSPORTS)}, not {name!r}")
        try:
            value = float(weight or "1")
        except ValueError:
            raise LoadError(f"the weight of {name} is a number, not {weight!r}") from None
        if value < 0 or not math.isfinite(value):
            raise LoadError(f"the weight of {name} must be positive")
        parts.append((name, value))
    total = sum(w for _, w in parts)
    if total <= 0:
        raise LoadError("the transport mix needs a positive weight")
    return tuple((n, w / total) for n, w in parts if w > 0)


def transport_of(index: int, mix: tuple[tuple[str, float], ...]) -> str:
    """The transport of a region's ``index``-th viewer: the mix's shares, interleaved so that
    any prefix of viewers follows the mix (a ramp's first tenth too)."""
    # Golden-ratio sequence: evenly spread points in [0, 1), deterministic.
    point = (index * 0.6180339887498949) % 1.0
    edge = 0.0
    for name, share in mix:
        edge += share
        if point < edge:
            return name
    return mix[-1][0]


def _share(spec: LoadSpec, t: float) -> float:
    if spec.profile == "ramp":
        return RAMP_FLOOR + (1 - RAMP_FLOOR) * min(1.0, max(0.0, t / spec.duration_s))
    return 1.0


def in_spike(spec: LoadSpec, t: float) -> bool:
    return spec.profile == "spike" and spec.duration_s / 3 <= t < 2 * spec.duration_s / 3


def viewers_at(spec: LoadSpec, t: float) -> dict[int, int]:
    """How many viewers each stream should have in one region at ``t`` seconds."""
    total = round(spec.viewers * _share(spec, t))
    out = {s: total // spec.streams + (1 if s < total % spec.streams else 0)
           for s in range(spec.streams)}
    if in_spike(spec, t):
        out[0] += spec.viewers
    return out


def rates_at(spec: LoadSpec, t: float) -> dict[int, float]:
    """Posts per second to each stream from one region at ``t`` seconds."""
    base = spec.rate * _share(spec, t)
    out = dict.fromkeys(range(spec.streams), base / spec.streams)
    if in_spike(spec, t):
        out[0] += SPIKE_FACTOR * spec.rate
    return out


def lifetime_s(spec: LoadSpec, rng: random.Random) -> float | None:
    """How long a new viewer stays (None: to the end). Churn: exponential, mean a fifth of
    the run, at least two seconds."""
    if spec.profile != "churn":
        return None
    return max(2.0, rng.expovariate(5.0 / spec.duration_s))


def users_needed(spec: LoadSpec, user_rate_per_s: float) -> int:
    """Distinct posting users per region so that none exceeds 80 % of its rate limit at the
    run's highest rate."""
    peak = spec.rate * (1 + (SPIKE_FACTOR if spec.profile == "spike" else 0))
    return max(spec.posters, math.ceil(peak / (0.8 * user_rate_per_s)))


# -- targets -------------------------------------------------------------------------------------


def allowed_targets(config: Config) -> frozenset[tuple[str, int]]:
    """Every (host, port) a run may connect to: the regions' gateways and operator ports."""
    out: set[tuple[str, int]] = set()
    for region in config.regions:
        for port in (*region.gateway_ports, *region.operator_ports):
            out.add((region.host, port))
    return frozenset(out)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_target(url: str, allowed: frozenset[tuple[str, int]], *, allow_remote: bool) -> None:
    """Raises `LoadError` unless ``url`` is one of ``allowed`` and, without
    ``allow_remote``, on a loopback address."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if (host, port) not in allowed:
        raise LoadError(f"{url} is not a gateway of the regions.yaml given: a load run "
                        "targets nothing else")
    if not allow_remote and not _loopback(host):
        raise LoadError(f"{url} is not a loopback address: pass --allow-remote to load a "
                        "deployment of your own")
