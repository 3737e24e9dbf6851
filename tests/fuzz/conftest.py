"""The long fuzzing run: skipped unless asked for with ``-m fuzz`` (``./dev test -m fuzz``),
and a count of the inputs each property saw at the end of the run."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest
from _pytest.terminal import TerminalReporter

from tests.fuzz.properties import TALLY


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "fuzz" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="the long fuzzing run runs alone: ./dev test -m fuzz")
    for item in items:
        if item.get_closest_marker("fuzz") is not None:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    if not TALLY:
        return
    failed = failed_properties(terminalreporter.stats.get("failed", []))
    terminalreporter.section("fuzzed inputs")
    for name, count in sorted(TALLY.items()):
        terminalreporter.write_line(f"{name:>18}: {count:>10,}")
    terminalreporter.write_line(f"{'total':>18}: {sum(TALLY.values()):>10,}  "
                                f"(properties that failed: {failed})")


def failed_properties(reports: Iterable[Any]) -> int:
    """How many of the failed tests ``reports`` are fuzz properties: the hypothesis tests that
    drive tests/fuzz/properties.py (hypothesis marks each one), short or long. Another test
    that failed in the same run (an integration test, the API fuzzing on a real gateway) is
    not an input that broke a property, and the summary says nothing about it."""
    return sum(1 for report in reports if "hypothesis" in getattr(report, "keywords", {}))
