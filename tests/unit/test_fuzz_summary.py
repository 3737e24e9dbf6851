"""The fuzz run's summary counts the properties that failed, not every failed test."""

from __future__ import annotations

from types import SimpleNamespace

from tests.fuzz.conftest import failed_properties


def test_only_failed_hypothesis_properties_are_counted() -> None:
    reports = [SimpleNamespace(keywords={"test_frames": 1, "hypothesis": 1, "fuzz": 1}),
               SimpleNamespace(keywords={"test_posts": 1, "hypothesis": 1}),
               SimpleNamespace(keywords={"test_the_api_answers": 1, "fuzz": 1}),
               SimpleNamespace(keywords={"test_failover": 1, "integration": 1})]
    assert failed_properties(reports) == 2
    assert failed_properties([]) == 0
