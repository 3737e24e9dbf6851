"""What the Go load client (bench/goload, `--client go` of bench/ingest.py and
bench/fanout.py) answers, as typed figures: one JSON object a line per command, decoded
strictly here and nowhere else, so that a client that answers something else fails the run
with the command and the reason rather than a KeyError in a table.

No I/O: bench/goload/process.py runs the process and hands each line to `decode`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any


class GoLoadError(RuntimeError):
    """The Go load client failed a command, answered what no command answers, or exited."""


@dataclasses.dataclass(frozen=True)
class Latency:
    """p50, p99 and max in ms; nan when nothing was measured (the client's null)."""

    p50_ms: float
    p99_ms: float
    max_ms: float

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        """The keys of bench/rawclient.py's `summary_ms`, each after ``prefix``."""
        return {f"{prefix}p50_ms": self.p50_ms, f"{prefix}p99_ms": self.p99_ms,
                f"{prefix}max_ms": self.max_ms}


@dataclasses.dataclass(frozen=True)
class IngestFigures:
    """One ingest phase as the client saw it: posts stored (answered 201 or acked), the
    phase's length by the client's clock (s), their latency, failures by what went wrong, and
    (the open loop over HTTP only, else None) how long posts waited for a free connection,
    the client's share of their latency."""

    stored: int
    seconds: float
    latency: Latency
    errors: Mapping[str, int]
    queued: Latency | None = None


@dataclasses.dataclass(frozen=True)
class Viewers:
    """A fanout step's viewers: opened, greeted (``opened``, as bench/fanout.py counts it)
    and how many of them the gateway compresses for."""

    viewers: int
    opened: int
    deflate_negotiated: int


@dataclasses.dataclass(frozen=True)
class FanoutFigures:
    """One fanout step: comments posted (201) and failed, the posting time (s), deliveries
    counted by every viewer, viewers cut, deliveries missing from viewers not cut, and the
    latencies post -> viewer (sampled viewers), of the post to its 201, and from the 201 to
    the viewer."""

    viewers: Viewers
    posted: int
    post_failures: int
    posting_s: float
    delivered: int
    cut: int
    missing: int
    latency: Latency
    post: Latency
    after_201: Latency


def decode(line: bytes | str, op: str) -> dict[str, Any]:
    """The client's answer to command ``op`` as a JSON object; GoLoadError when the line is
    no such answer or says the command failed."""
    try:
        doc = json.loads(line)
    except ValueError as exc:
        raise GoLoadError(f"{op}: the client answered no JSON: {line[:200]!r}") from exc
    if not isinstance(doc, dict):
        raise GoLoadError(f"{op}: the client answered {type(doc).__name__}, not an object")
    if "error" in doc:
        raise GoLoadError(f"{op}: {doc['error']}")
    if doc.get("op") != op:
        raise GoLoadError(f"{op}: the client answered {doc.get('op')!r}")
    return doc


def _int(doc: Mapping[str, Any], key: str) -> int:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise GoLoadError(f"{doc.get('op')}: {key!r} is {value!r}, not an integer")
    return value


def _float(doc: Mapping[str, Any], key: str, *, null: bool = False) -> float:
    value = doc.get(key)
    if value is None and null and key in doc:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise GoLoadError(f"{doc.get('op')}: {key!r} is {value!r}, not a number")
    return float(value)


def _latency(doc: Mapping[str, Any], where: str = "") -> Latency:
    of = doc if not where else doc.get(where)
    if not isinstance(of, dict):
        raise GoLoadError(f"{doc.get('op')}: {where!r} is {of!r}, not an object")
    of = {"op": doc.get("op"), **of}
    return Latency(*(_float(of, k, null=True) for k in ("p50_ms", "p99_ms", "max_ms")))


def ingest_figures(doc: Mapping[str, Any]) -> IngestFigures:
    """An ``ingest_run`` answer (decoded)."""
    errors = doc.get("errors")
    if not isinstance(errors, dict) or not all(
            isinstance(k, str) and isinstance(v, int) for k, v in errors.items()):
        raise GoLoadError(f"ingest_run: 'errors' is {errors!r}, not counts by failure")
    return IngestFigures(stored=_int(doc, "stored"), seconds=_float(doc, "seconds"),
                         latency=_latency(doc), errors=dict(errors),
                         queued=_latency(doc, "queued") if "queued" in doc else None)


def viewers(doc: Mapping[str, Any]) -> Viewers:
    """A ``fanout_open`` answer (or the same fields of a ``fanout_run`` one)."""
    return Viewers(viewers=_int(doc, "viewers"), opened=_int(doc, "opened"),
                   deflate_negotiated=_int(doc, "deflate_negotiated"))


def fanout_figures(doc: Mapping[str, Any]) -> FanoutFigures:
    """A ``fanout_run`` answer (decoded)."""
    return FanoutFigures(
        viewers=viewers(doc), posted=_int(doc, "posted"),
        post_failures=_int(doc, "post_failures"), posting_s=_float(doc, "posting_s"),
        delivered=_int(doc, "delivered"), cut=_int(doc, "cut"), missing=_int(doc, "missing"),
        latency=_latency(doc), post=_latency(doc, "post"),
        after_201=_latency(doc, "after_201"))
