"""The API fuzzed from docs/openapi.yaml on a real gateway, short (tests/fuzz/api.py; the
long run is tests/fuzz/test_api_long.py, ``-m fuzz``)."""

from __future__ import annotations

from chorus.cluster.local import LocalCluster
from region.auth import issue_token
from tests.fuzz.api import fuzz_api


def test_the_api_answers_generated_requests_as_documented(cluster: LocalCluster) -> None:
    auth = cluster.config.auth
    tokens = [issue_token(auth, f"fuzz-{i}", roles=roles)
              for i, roles in enumerate([("viewer",), ("moderator",), ("host", "verified")])]
    statuses = fuzz_api(cluster.config.regions[0].gateway_urls[0], tokens, examples=150)
    assert 500 not in statuses and sum(statuses.values()) >= 150
