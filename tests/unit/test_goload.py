"""The Go load client's answers as the benchmarks read them (bench/goload/figures.py): the
figures a run's tables are made of, and the failures that must stop a run rather than print
a wrong table. No Go is needed: these are the client's lines as plain text."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

# Loaded from its file: putting bench/ on sys.path would let its modules (profile.py, live.py)
# shadow others for the rest of the session.
_PATH = Path(__file__).resolve().parents[2] / "bench" / "goload" / "figures.py"
_SPEC = importlib.util.spec_from_file_location("goload_figures", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
figures = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = figures
_SPEC.loader.exec_module(figures)
GoLoadError = figures.GoLoadError
decode = figures.decode
fanout_figures = figures.fanout_figures
ingest_figures = figures.ingest_figures
viewers = figures.viewers

INGEST = (b'{"op":"ingest_run","stored":31012,"seconds":10.0004,'
          b'"errors":{"503 \\"busy\\"":2},"p50_ms":12.5,"p99_ms":48,"max_ms":120.25}\n')

FANOUT = {"op": "fanout_run", "viewers": 1000, "opened": 998, "deflate_negotiated": 0,
          "posted": 1000, "post_failures": 0, "posting_s": 10.01, "delivered": 999_000,
          "cut": 1, "missing": 0, "p50_ms": 20.0, "p99_ms": 80.5, "max_ms": 101.0,
          "post": {"p50_ms": 3.0, "p99_ms": 9.0, "max_ms": 12.0},
          "after_201": {"p50_ms": None, "p99_ms": None, "max_ms": None}}


def test_an_ingest_phase_reads_as_the_python_clients_columns() -> None:
    f = ingest_figures(decode(INGEST, "ingest_run"))
    assert f.stored == 31012 and f.seconds == pytest.approx(10.0004)
    assert f.latency.as_dict() == {"p50_ms": 12.5, "p99_ms": 48.0, "max_ms": 120.25}
    assert dict(f.errors) == {'503 "busy"': 2}
    assert f.queued is None


def test_the_open_loops_wait_for_a_connection_is_read_when_given() -> None:
    doc = {**json.loads(INGEST), "queued": {"p50_ms": 0.01, "p99_ms": 2.5, "max_ms": 9.0}}
    f = ingest_figures(doc)
    assert f.queued is not None and f.queued.as_dict("queued_")["queued_p99_ms"] == 2.5
    with pytest.raises(GoLoadError, match="'queued'"):
        ingest_figures({**doc, "queued": None})


def test_a_fanout_step_reads_with_its_three_latencies() -> None:
    f = fanout_figures(decode(json.dumps(FANOUT), "fanout_run"))
    assert (f.posted, f.delivered, f.cut, f.missing) == (1000, 999_000, 1, 0)
    assert f.viewers == viewers(FANOUT)
    assert f.viewers.opened == 998
    assert f.post.as_dict("post_") == {"post_p50_ms": 3.0, "post_p99_ms": 9.0,
                                       "post_max_ms": 12.0}
    # Nothing measured (null) is nan, as bench/rawclient.py's summary_ms of no values.
    assert all(math.isnan(v) for v in f.after_201.as_dict().values())


def test_a_failed_command_stops_the_run_with_its_reason() -> None:
    with pytest.raises(GoLoadError, match="ws_connect: no hello in 60 s on w3"):
        decode('{"op":"ws_connect","error":"no hello in 60 s on w3"}', "ws_connect")


@pytest.mark.parametrize("line", [
    "not json",
    "[1, 2]",
    '{"op":"http_connect","opened":64}',      # the answer to another command
])
def test_what_no_command_answers_is_refused(line: str) -> None:
    with pytest.raises(GoLoadError):
        decode(line, "ingest_run")


@pytest.mark.parametrize("change", [
    {"stored": "31012"}, {"stored": True}, {"stored": None}, {"seconds": None},
    {"errors": ["503"]}, {"errors": {"503": 1.5}}, {"p99_ms": "48"},
])
def test_a_figure_of_the_wrong_type_is_refused(change: dict[str, object]) -> None:
    doc = {**json.loads(INGEST), **change}
    with pytest.raises(GoLoadError):
        ingest_figures(doc)


def test_a_missing_latency_is_refused_not_taken_as_nothing_measured() -> None:
    doc = {k: v for k, v in FANOUT.items() if k != "post"}
    with pytest.raises(GoLoadError, match="'post'"):
        fanout_figures(doc)
    doc = {**FANOUT, "post": {"p50_ms": 1.0, "p99_ms": 2.0}}
    with pytest.raises(GoLoadError, match="max_ms"):
        fanout_figures(doc)
