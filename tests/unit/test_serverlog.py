"""The rate-limited log of aiohttp's server (region/serverlog.py)."""

from __future__ import annotations

import logging

import pytest
from aiohttp.http_exceptions import BadHttpMessage

from region.serverlog import LogBudget, ServerLog


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_budget_counts_what_it_leaves_out() -> None:
    clock = Clock()
    budget = LogBudget(2, 60.0, clock)
    assert [budget.take("m") for _ in range(5)] == [0, 0, None, None, None]
    assert budget.take("other") == 0          # kinds have their own budget
    clock.now = 61.0
    assert budget.take("m") == 3               # the next line says how many were left out
    assert budget.take("m") == 0


def test_malformed_requests_are_one_line_each_and_bounded(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    server_log = ServerLog(logging.getLogger("test.server"), per_window=3, clock=clock)
    with caplog.at_level(logging.DEBUG, "test.server"):
        for _ in range(1000):
            server_log.exception("Error handling request from %s", "203.0.113.9",
                                 exc_info=BadHttpMessage("Invalid method encountered"))
        clock.now = 100.0
        server_log.exception("Error handling request from %s", "203.0.113.9",
                             exc_info=BadHttpMessage("Invalid method encountered"))
    lines = caplog.records
    assert len(lines) == 4
    assert all(r.exc_info is None and r.levelno == logging.WARNING for r in lines)
    assert "203.0.113.9" in lines[0].getMessage()
    assert "997 more not logged" in lines[-1].getMessage()


def test_unhandled_errors_keep_their_traceback(caplog: pytest.LogCaptureFixture) -> None:
    server_log = ServerLog(logging.getLogger("test.server2"), per_window=2)
    with caplog.at_level(logging.DEBUG, "test.server2"):
        for _ in range(10):
            try:
                raise RuntimeError("bug")
            except RuntimeError as exc:
                server_log.exception("Unhandled exception", exc_info=exc)
    assert len(caplog.records) == 2 and caplog.records[0].exc_info is not None
